"""How much of a file's reference alternatives SIMP itself finds again: the scale for coverage.

    python benchmarks/bench_coverage.py --data alt.h5 --limit 20 -k 16 --attempts 30

For the first ``--limit`` held-out problems of a file made with ``generate --alternatives``, the
alternatives search runs again with the file's own search settings but another seed (and ``-k``
designs from ``--attempts`` restarts), and the coverage of the stored references is measured as
`evaluate` measures a model's: `workflows._diversity.coverage` (Naeem et al.'s: the share of
references with a design nearer than their nearest other reference) and the stricter share
reproduced (a design within 1 - IoU 0.15). A model's figures are judged against these, not
against 100 %.
"""

from __future__ import annotations

import argparse
import json
import time

import h5py
import numpy as np

from topovae.datasets import TopologyDataset
from topovae.solvers import DISTINCT, find_alternatives
from topovae.solvers._alternatives import AlternativeSearch
from topovae.workflows._diversity import coverage, solids


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--limit", type=int, default=20)
    ap.add_argument("-k", type=int, default=16)
    ap.add_argument("--attempts", type=int, default=30)
    ap.add_argument("--seed", type=int, default=1234, help="the rerun's seed")
    a = ap.parse_args()
    with h5py.File(a.data, "r") as f:
        stored = json.loads(f.attrs["alternative_search"])
    fields = AlternativeSearch.__dataclass_fields__
    search = AlternativeSearch(**{**{k: v for k, v in stored.items() if k in fields},
                                  "attempts": a.attempts})  # fmt: skip
    test = TopologyDataset(a.data, "test", in_memory=True)
    covered, reproduced, found_n, ref_n = [], [], [], []
    t0 = time.perf_counter()
    for row in test.first_designs()[: a.limit]:
        problem = test.problem(row)
        refs = np.stack([test[int(j)]["density"][0].numpy() for j in test.group(row)])
        found = find_alternatives(problem, a.k, seed=a.seed, search=search)
        designs = np.stack([r.density for r in found])
        s, r = solids(designs, problem), solids(refs, problem)
        covered.append(coverage(s, r))
        reproduced.append(coverage(s, r, DISTINCT))
        found_n.append(len(found))
        ref_n.append(len(refs))
    print(f"{len(covered)} problems, {time.perf_counter() - t0:.0f} s: SIMP's search again (seed "
          f"{a.seed}, {a.attempts} restarts) found a median {np.median(found_n):g} designs and "
          f"covers a median {100 * np.median(covered):.0f} % (mean {100 * np.mean(covered):.0f} "
          f"%) of the stored references (a median {np.median(ref_n):g} per problem) and "
          f"reproduces a median {100 * np.median(reproduced):.0f} % (mean "
          f"{100 * np.mean(reproduced):.0f} %) within 1 - IoU {DISTINCT}")  # fmt: skip


if __name__ == "__main__":
    main()
