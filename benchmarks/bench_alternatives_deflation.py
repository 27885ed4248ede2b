"""`alternatives` with and without the deflated polish, on held-out problems.

    PYTHONPATH=. python benchmarks/bench_alternatives_deflation.py out/demo/model/best.pt \\
        --data out/demo/data.h5 -n 12

For each of the first ``-n`` problems of the test split: `workflows.alternatives` (k = 8, 64
samples, 10 polish iterations, seed 0) with ``deflate=False`` (each distinct decoded candidate
polished plainly) and with ``deflate=True`` (the default: polished under deflation against
those before it, then settled; restarted from the candidates until 2 k are polished). Prints
per problem and as medians: the distinct designs within 10 % of the stiffest, the share of
problems with at least 3, the stiffest design's compliance (deflated / plain) and seconds.
"""

from __future__ import annotations

import argparse

import numpy as np

from topovae.datasets import TopologyDataset
from topovae.models import load
from topovae.workflows import alternatives


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoint")
    ap.add_argument("--data", required=True, help="a dataset whose test split to use")
    ap.add_argument("-n", type=int, default=12, help="problems (the test split's first)")
    ap.add_argument("-k", type=int, default=8)
    ap.add_argument("--polish", type=int, default=10)
    a = ap.parse_args()
    model = load(a.checkpoint)
    fields = model.config.cond_channels > 7
    test = TopologyDataset(a.data, "test", in_memory=True, fields=fields)
    rows = []
    for pos in test.first_designs()[: a.n]:
        problem = test.problem(int(pos))
        kw = dict(k=a.k, samples=8 * a.k, polish=a.polish, seed=0)
        plain = alternatives(model, problem, deflate=False, **kw)
        defl = alternatives(model, problem, deflate=True, **kw)
        rows.append((int(plain.within.sum()), int(defl.within.sum()),
                     float(defl.compliance.min() / plain.compliance.min()),
                     plain.seconds, defl.seconds))  # fmt: skip
        print(f"#{int(test[int(pos)]['index']):5d}: distinct within 10 % {rows[-1][0]} -> "
              f"{rows[-1][1]}, stiffest C x{rows[-1][2]:.4f}, {rows[-1][3]:.1f} -> "
              f"{rows[-1][4]:.1f} s", flush=True)  # fmt: skip
    r = np.array(rows)
    print(f"{len(r)} problems: distinct within 10 % a median {np.median(r[:, 0]):g} -> "
          f"{np.median(r[:, 1]):g}; >= 3 of them on {100 * np.mean(r[:, 0] >= 3):.0f} -> "
          f"{100 * np.mean(r[:, 1] >= 3):.0f} %; stiffest C x{np.median(r[:, 2]):.4f} "
          f"(median); {np.median(r[:, 3]):.2f} -> {np.median(r[:, 4]):.2f} s")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
