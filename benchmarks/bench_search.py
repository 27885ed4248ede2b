"""Latent search: best compliance error against FE evaluations for each method.

    python benchmarks/bench_search.py runs/x/best.pt data.h5 --problems 8 --budget 200

For the first ``--problems`` problems of the held-out split it runs random search, CMA-ES and
gradient search with the same budget and seed, and prints the median and mean over problems of
the best CE (against the SIMP design stored in the file) after 10, 25, 50, 100, ... FE
evaluations, then after ``--polish`` SIMP iterations from each method's best design, and the
wall time per FE evaluation. A curve figure goes to ``--out`` when given.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from topovae.datasets import TopologyDataset
from topovae.models import load
from topovae.solvers import ProblemError
from topovae.workflows import METHODS, score, search


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint")
    ap.add_argument("data")
    ap.add_argument("--split", default="test")
    ap.add_argument("--problems", type=int, default=8)
    ap.add_argument("--budget", type=int, default=200)
    ap.add_argument("--polish", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", help="PNG of the median best-CE curves")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    model = load(args.checkpoint)
    ds = TopologyDataset(args.data, split=args.split, in_memory=True)
    marks = [m for m in (10, 25, 50, 100, 200, 400, 800) if m <= args.budget]
    if args.budget not in marks:
        marks.append(args.budget)
    curves = {m: [] for m in METHODS}
    polished = {m: [] for m in METHODS}
    seconds = {m: 0.0 for m in METHODS}
    done = 0
    for row in range(len(ds)):
        if done == args.problems:
            break
        try:
            problem = ds.problem(row)
        except ProblemError:
            continue
        simp = ds[row]["density"][0].numpy().astype(np.float64)
        c_ref = score(simp[None], problem)["compliance"][0]
        for m in METHODS:
            t = time.perf_counter()
            r = search(model, problem, method=m, budget=args.budget, seed=args.seed,
                       polish=args.polish, reference=simp, device=args.device)  # fmt: skip
            seconds[m] += time.perf_counter() - t
            curves[m].append(r.best_so_far / c_ref - 1)
            polished[m].append(r.polished_score["ce"][0] if args.polish else np.nan)
        done += 1
    print(f"{done} problems of {args.data} ({args.split}), budget {args.budget}, "
          f"polish {args.polish}, seed {args.seed}")  # fmt: skip
    head = "method    " + "".join(f"{f'@{m}':>16}" for m in marks) + f"{'+polish':>16}  s/eval"
    print("best CE, median (mean) over problems, in %")
    print(head)
    for m in METHODS:
        c = np.stack(curves[m])
        cells = "".join(
            f"{100 * np.median(c[:, k - 1]):>8.2f} ({100 * np.mean(c[:, k - 1]):>5.1f})"
            for k in marks
        )
        p = np.asarray(polished[m])
        cells += f"{100 * np.median(p):>8.2f} ({100 * np.mean(p):>5.1f})"
        print(f"{m:<10}{cells}  {seconds[m] / (done * args.budget):.4f}")
    if args.out:
        from topovae.plotting import save_search_curves

        med = {m: 1 + np.median(np.stack(curves[m]), axis=0) for m in METHODS}
        save_search_curves(med, args.out, reference=1.0)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
