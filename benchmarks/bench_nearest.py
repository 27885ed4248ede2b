"""What "nearest" should measure for the nearest-training-design yardstick (`NearestDesign`).

    python benchmarks/bench_nearest.py --data alt.h5 --limit 80

For the first ``--limit`` held-out problems of the file's test split, the k training designs
nearest by each candidate distance are placed on the problem (volume fraction, passive regions)
and judged by `score` against the problem's stiffest SIMP design. Prints, per distance, the
median compliance error of the nearest design and of the best of k, and the pass rate (CE <
100 %). The candidates: the raw condition images, the same with every channel divided by its
root mean square over the training set, with the full-material fields added, the fields alone,
and the fields with the volume fraction (the yardstick's choice).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from topovae.datasets import TopologyDataset
from topovae.models import NearestDesign
from topovae.workflows._judge import score
from topovae.workflows._latent import Placement

CANDIDATES = {
    "condition images, raw": (None, False),
    "condition images, standardised": (None, True),
    "images + fields, standardised": ("all", True),
    "fields, standardised": (("strain_energy", "von_mises"), True),
    "volfrac + fields, standardised": (("volfrac", "strain_energy", "von_mises"), True),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--data", required=True, help="a dataset with problems (e.g. generate -k 6)")
    ap.add_argument("--limit", type=int, default=80)
    ap.add_argument("-k", type=int, default=16)
    a = ap.parse_args()
    t0 = time.perf_counter()
    train = TopologyDataset(a.data, "train", in_memory=True, fields=True)
    test = TopologyDataset(a.data, "test", in_memory=True, fields=True)
    names = train.condition_channels
    conditions = torch.stack([train[i]["condition"] for i in range(len(train))])
    designs = torch.stack([train[i]["density"][0] for i in range(len(train))])
    rows = test.first_designs()[: a.limit]
    print(f"{len(train)} training designs, {len(rows)} held-out problems, k = {a.k} "
          f"({time.perf_counter() - t0:.0f} s to read and make the fields)")  # fmt: skip
    base = [i for i, n in enumerate(names) if n not in ("strain_energy", "von_mises")]
    print(f"{'distance':<34} {'first CE':>10} {'best of k':>10} {'pass':>6}")
    for label, (channels, standard) in CANDIDATES.items():
        where = base if channels is None else (
            list(range(len(names))) if channels == "all" else [names.index(c) for c in channels]
        )  # fmt: skip
        nearest = NearestDesign(conditions, designs, where, standardise=standard)
        first, best = [], []
        for r in rows:
            item, problem = test[r], test.problem(r)
            cand = Placement(problem).densities(nearest.designs(item["condition"], a.k))
            ce = score(cand, problem, item["density"][0].numpy().astype(np.float64))["ce"]
            first.append(ce[0])
            best.append(ce.min())
        first, best = np.asarray(first), np.asarray(best)
        print(f"{label:<34} {100 * np.median(first):>9.1f}% {100 * np.median(best):>9.1f}% "
              f"{100 * np.mean(first < 1):>5.0f}%")  # fmt: skip


if __name__ == "__main__":
    main()
