"""Where a dataset design's SIMP iterations go, and what stopping earlier costs the label.

For N problems of a distribution (default: 64x64 "mixed", the generator's settings: density
filter, rmin 2, tol 0.01 on the largest design change, at most 300 iterations), it runs SIMP to
its normal end, recording the compliance and the wall time of every iteration. For each
candidate stopping rule it then finds the iteration the rule would stop at and the label error
CE = C(early design) / C(converged design) - 1 (the compliance history is the compliance of
each analysed design, so no second solve is needed; ``--check`` re-solves a few problems to that
iteration and judges the early design with `topovae.workflows.score` to confirm it). Printed per
rule: mean and median iterations, the share of the solve time kept, the implied designs/s on
the given workers, and the label error's median, 95th percentile and max.

Rules: "change<=T" (the default criterion with another tolerance) and "ctol=E" (stop when the
compliance changed by less than a relative E over the last 5 iterations, `SIMPSettings.ctol`).

    python benchmarks/bench_labels.py -n 200 --workers 2
"""

import os

for _v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from concurrent.futures import ProcessPoolExecutor  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from topovae.datasets import distribution  # noqa: E402
from topovae.datasets._sampling import sample_problem  # noqa: E402
from topovae.solvers import solve  # noqa: E402

WINDOW = 5  # iterations over which the compliance change is measured (SIMPSettings.ctol's)


def history(args):
    """(compliance per iteration, change per iteration, seconds per iteration) of one sample."""
    name, size, seed, i = args
    problem = sample_problem(distribution(name, *size), seed, i)
    stamps = [time.perf_counter()]
    r = solve(problem, threads=1, callback=lambda info: stamps.append(time.perf_counter()))
    return (np.asarray(r.history["compliance"]), np.asarray(r.history["change"]),
            np.diff(stamps), r.converged)  # fmt: skip


def stop_change(c, ch, tol):
    hit = np.nonzero(ch <= tol)[0]
    return int(hit[0]) if hit.size else len(c) - 1


def stop_ctol(c, ch, eps, tol=0.01):
    """First iteration k >= WINDOW with |C_k - C_(k-WINDOW)| <= eps C_k, or the normal end."""
    k = np.arange(WINDOW, len(c))
    hit = k[np.abs(c[k] - c[k - WINDOW]) <= eps * c[k]]
    return int(min(hit[0], stop_change(c, ch, tol))) if hit.size else stop_change(c, ch, tol)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=200)
    ap.add_argument("--distribution", default="mixed")
    ap.add_argument("--size", default="64x64")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--check", type=int, default=5, help="problems re-solved to confirm CE")
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    nelx, nely = (int(v) for v in a.size.split("x"))
    t0 = time.perf_counter()
    tasks = [(a.distribution, (nelx, nely), a.seed, i) for i in range(a.n)]
    with ProcessPoolExecutor(a.workers) as ex:
        runs = list(ex.map(history, tasks, chunksize=4))
    wall = time.perf_counter() - t0
    total_s = sum(t.sum() for _, _, t, _ in runs)
    its = np.array([len(c) for c, _, _, _ in runs])
    print(
        f"{a.n} {a.distribution} {a.size} designs in {wall:.0f} s on {a.workers} workers "
        f"({a.n / wall:.2f} designs/s); iterations mean {its.mean():.0f}, median "
        f"{np.median(its):.0f}, max {its.max()}; converged {np.mean([r[3] for r in runs]):.0%}"
    )
    # where the iterations go: compliance within 1 % / 0.1 % of its final value from which one
    for lim in (1e-2, 1e-3):
        settle = [int(np.nonzero(np.abs(c / c[-1] - 1) > lim)[0].max(initial=-1)) + 1
                  for c, _, _, _ in runs]  # fmt: skip
        print(
            f"  within {100 * lim:g} % of the final compliance for good from iteration "
            f"{np.median(settle):.0f} (median), i.e. {np.mean(np.array(settle) / its):.0%} "
            "of the iterations in"
        )
    rules = [("change<=0.01 (default)", lambda c, ch: stop_change(c, ch, 0.01))]
    rules += [(f"change<={t}", lambda c, ch, t=t: stop_change(c, ch, t)) for t in (0.02, 0.05)]
    rules += [(f"ctol={e:g}", lambda c, ch, e=e: stop_ctol(c, ch, e))
              for e in (1e-4, 3e-4, 1e-3, 3e-3)]  # fmt: skip
    print(
        f"| rule | iterations mean | median | time kept | designs/s ({a.workers} workers) | "
        "CE median | CE p95 | CE max |"
    )
    print("|---|---|---|---|---|---|---|---|")
    out = {}
    for name, rule in rules:
        stops = [rule(c, ch) for c, ch, _, _ in runs]
        ce = np.array([c[k] / c[-1] - 1 for (c, _, _, _), k in zip(runs, stops, strict=True)])
        kept = sum(t[: k + 1].sum() for (_, _, t, _), k in zip(runs, stops, strict=True))
        rate = a.n / wall * total_s / kept
        n_it = np.array(stops) + 1
        out[name] = {"iterations_mean": float(n_it.mean()), "time_kept": kept / total_s,
                     "designs_per_s": rate, "ce_median": float(np.median(ce)),
                     "ce_p95": float(np.percentile(ce, 95)), "ce_max": float(ce.max())}  # fmt: skip
        print(
            f"| {name} | {n_it.mean():.0f} | {np.median(n_it):.0f} | {kept / total_s:.0%} | "
            f"{rate:.2f} | {100 * np.median(ce):.3f} % | {100 * np.percentile(ce, 95):.3f} % | "
            f"{100 * ce.max():.3f} % |"
        )
    if a.check:
        from topovae.workflows import greyness, score

        dist = distribution(a.distribution, nelx, nely)
        worst, moved, grey = 0.0, [], []
        for i in range(min(a.check, a.n)):
            c, ch, _, _ = runs[i]
            k = stop_ctol(c, ch, 1e-3)
            p = sample_problem(dist, a.seed, i)
            early = solve(p.with_settings(max_iter=k + 1), threads=1).density
            final = solve(p, threads=1).density
            judged = float(score(early[None], p, final[None])["ce"][0])
            worst = max(worst, abs(judged - (c[k] / c[-1] - 1)))
            moved.append(np.abs(early - final).mean())
            grey.append((greyness(early, p), greyness(final, p)))
        g = np.array(grey)
        print(f"check ({min(a.check, a.n)} problems re-solved to the ctol=1e-3 stop): judged CE "
              f"matches the history's within {worst:.2e}; mean |early - converged| density "
              f"{np.mean(moved):.4f} (max {np.max(moved):.4f}); greyness {g[:, 0].mean():.3f} "
              f"early vs {g[:, 1].mean():.3f} converged")  # fmt: skip
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
