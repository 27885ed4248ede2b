"""How many distinct near-optimal designs the problems hold, and what finding them costs.

    PYTHONPATH=. python benchmarks/bench_alternatives.py --n 40 --size 32 -k 8
    PYTHONPATH=. python benchmarks/bench_alternatives.py --n 40 --variants restarts,deflate

For the first ``n`` problems of a distribution (the demo's, topodiff-like, by default), runs
`find_alternatives` with each variant of the search and prints, per variant: the median number
of distinct designs (1 - IoU >= 0.15) within 5 % and within 10 % of the best found, their
median pairwise 1 - IoU, how often a restart beat the uniform start, and seconds per problem
(one process per core, one BLAS thread each).
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import dataclasses
import os
import time

import numpy as np

from topovae.datasets import distribution, sample_problem
from topovae.solvers._alternatives import (
    AlternativeSearch,
    find_alternatives,
    pairwise_distances,
    solid,
)

VARIANTS = {
    "restarts": AlternativeSearch(tol=0.10, deflate=False),
    "deflate": AlternativeSearch(tol=0.10),
    "deflate-strong": AlternativeSearch(tol=0.10, gamma=0.15, delta=3.0),
    "restarts-same-radius": AlternativeSearch(tol=0.10, deflate=False, radius=(1.0, 1.0)),
    # the demo's budget: 3 restarts, and the same with shorter restarts and a looser re-solve
    "demo": AlternativeSearch(tol=0.10, attempts=3),
    "demo-cheap": AlternativeSearch(tol=0.10, attempts=3, explore_iter=30, ctol=1e-3),
}


def one(args):
    dist, seed, i, k, search = args
    p = sample_problem(dist, seed, i)
    t = time.perf_counter()
    uniform = []

    def first(attempt, result, kept):
        if attempt == 0:
            uniform.append(result.compliance)

    res = find_alternatives(p, k, seed=i, search=search, callback=first)
    sec = time.perf_counter() - t
    c = np.array([r.compliance for r in res])
    solids = np.stack([solid(r.density, p) for r in res])
    d = pairwise_distances(solids)
    pair = d[np.triu_indices(len(res), 1)]
    return {
        "within5": int((c <= 1.05 * c[0]).sum()),
        "within10": len(res),
        "pair": float(np.median(pair)) if pair.size else np.nan,
        "beat": float(uniform[0] / c[0] - 1),
        "seconds": sec,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=40)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("-k", type=int, default=8)
    ap.add_argument("--attempts", type=int, default=None)
    ap.add_argument("--distribution", default="topodiff-like")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--workers", type=int, default=os.cpu_count())
    a = ap.parse_args()
    dist = distribution(a.distribution, a.size, a.size)
    print(f"{a.n} problems of {a.distribution} {a.size}x{a.size}, k={a.k}, {a.workers} workers")
    print(
        "variant               | distinct<=5% | distinct<=10% | pair 1-IoU | restart beat "
        "uniform (share, median gain) | s/problem"
    )
    for name in a.variants.split(","):
        search = VARIANTS[name]
        if a.attempts is not None:
            search = dataclasses.replace(search, attempts=a.attempts)
        t = time.perf_counter()
        with cf.ProcessPoolExecutor(a.workers) as ex:
            rows = list(ex.map(one, [(dist, 0, i, a.k, search) for i in range(a.n)]))
        wall = time.perf_counter() - t
        col = {key: np.array([r[key] for r in rows]) for key in rows[0]}
        beat = col["beat"][col["beat"] > 1e-6]
        w5, w10 = np.median(col["within5"]), np.median(col["within10"])
        print(f"{name:21s} | {w5:12.1f} | {w10:13.1f} | {np.nanmedian(col['pair']):10.3f} "
              f"| {len(beat) / a.n:5.0%}, "
              f"{np.median(beat) if beat.size else 0:6.2%}{'':17s} | "
              f"{wall / a.n * a.workers:.2f} ({wall / a.n:.2f} wall)")  # fmt: skip
        print(f"{'':21s}   within 5 %: {np.bincount(col['within5']).tolist()}  "
              f"within 10 %: {np.bincount(col['within10']).tolist()} (count of problems "
              f"with 0, 1, ... designs)")  # fmt: skip


if __name__ == "__main__":
    main()
