"""Speed of the batched, matrix-free PyTorch path against the sparse-direct solver.

What it measures, in one run:

1. Linear solves. For the half MBB beam at 64x64, 128x64, 256x128 and 512x256 elements, one
   solve K(E) u = f with matrix-free multigrid-preconditioned CG (`BatchedFE`, one problem, torch
   on the CPU, CG in float64 with the default float32 V-cycle, relative residual 1e-8, cold start
   x0 = 0; the time includes building the multigrid levels for these moduli) against the
   sparse-direct solver (`FEModel.solve`: CHOLMOD numeric factorisation + triangular solves, or
   SuperLU without cvxopt). Each on two density fields: a realistic SIMP design, made by running
   the direct `solve` for ``--design-iter`` (default 40) OC iterations at that size with
   rmin = max(1.5, nelx / 40) (density filter, vf 0.5, penal 3), and the uniform density 0.5.
   The moduli are E = Emin + x^3 (E0 - Emin), i.e. a contrast of up to 1e9. Printed per size:
   the PCG iteration count (should stay about flat as the grid grows: the multigrid claim), the
   median time per solve of each, their ratio, the one-time set-up of each (direct: `FEModel`
   construction, which finds the nested-dissection order and the sparsity pattern, plus
   CHOLMOD's symbolic analysis in the first solve; torch: `ProblemBatch` + the grid hierarchy,
   built once per grid size), the share of the MG time spent building the level operators, and
   the relative difference ||u_mg - u_direct|| / ||u_direct|| (must be <= 1e-6).

2. Batched SIMP throughput on the CPU at 64x64. A seeded set of mixed problems, cycling the
   mbb, cantilever and michell presets with volume fractions uniform in [0.3, 0.5], density
   filter rmin 2, penal 3, OC move 0.2, tol 0.01, runs through `solve_batch` (float64, cg_tol
   1e-5, warm-started CG) for B = 1, 32, 256 (``--batches``) and each torch thread count in
   ``--threads`` (default 1,2), every problem capped at ``--max-iter`` SIMP iterations (default
   10) so that the run stays short; the same problems, with the same settings and cap, also run
   one at a time through the sparse-direct `solve` (1 thread). How the figures are defined:

   - problem-it/s: SIMP iterations done, summed over the problems, per second of wall time
     (set-up included). A capped run cannot give designs per second directly, since (almost) no
     design is finished.
   - mean its: the mean number of iterations a problem of this distribution needs to converge,
     measured by running the first ``--converged`` (default 32) problems to convergence with the
     direct solver (and with the batched path, ``--converged-threads`` threads, default the
     largest of ``--threads``; it takes the same number of iterations within a few).
   - designs/s (extrapolated) = problem-it/s / mean its. It assumes every iteration costs what
     the capped run's did; the first iterations need the most CG iterations (the design moves
     most), and a real batch ends with a tail in which only the slowest problems are left (up to
     ~2.6x the mean here), at a smaller and less efficient B. The fully converged run therefore
     also reports the measured designs/s (problems / wall time to finish them all) next to its
     own extrapolation; it is the honest figure for that B. Target from the issue: >= 10
     designs/s at 64x64 on 2 CPU cores.

   The batched runs also give a time breakdown of the SIMP loop (wall shares): building the
   multigrid levels for the new moduli ("MG set-up": Galerkin products, coarse Cholesky), the PCG
   iterations ("PCG": operator, V-cycles, dot products), the density filter convolutions, the
   element energies, the OC bisection, and the rest (indexing the shrinking batch, the
   per-problem history). It comes from wrapping those functions of
   `topovae.solvers.batched._simp` with timers in this process (on the CPU this costs a few
   microseconds a call and needs no synchronisation).

3. The same on a GPU when ``torch.cuda.is_available()`` (skip with ``--no-gpu``): the linear
   solves of part 1 (float64), then the batched SIMP for B = 1, 32, 256 (``--gpu-batches``;
   ``--gpu-large`` adds 1024) in float64 (cg_tol 1e-5) and float32 (cg_tol ``--f32-cg-tol``,
   default 1e-4), capped at ``--max-iter``, and fully converged runs of ``--gpu-converged``
   (default 256) problems in both dtypes. The clock starts and stops after
   `torch.cuda.synchronize()`; a short warm-up run first pays CUDA's context and kernel loading.
   The step breakdown on the GPU needs a synchronisation around every timed call, which slows the
   loop, so it is a separate, labelled run of ``--gpu-breakdown-iter`` iterations at the largest
   B. Target from the issue: >= 200 designs/s on an H100/H200. ``--skip-cpu`` leaves out the
   torch CPU timings of parts 1 and 2 (the direct reference of the checks then runs on the first
   32 problems); ``--accel cpu`` runs this part's code on the CPU (only to test the script on a
   machine without a GPU).

BLAS runs single-threaded (OMP/MKL/OPENBLAS_NUM_THREADS=1 are set before NumPy and torch are
imported); torch's intra-op threads are set explicitly per run (`torch_threads`). On a shared
2-core machine two torch threads are fragile: an occupied core makes OpenMP's barriers wait, and
a run can take 10-50x its usual time. Part 1 therefore shows medians of ``--repeat`` solves, and
the capped batched runs of parts 2 and 3 are repeated (at most 3 runs, the one of median wall time
is shown) while together they took less than ``--repeat-budget`` seconds (default 8): the short
runs are repeated, the long ones (B = 256 on the CPU, the converged runs) run once.

Run (from the repository root; the defaults take about 4 to 5 minutes on 2 CPU cores)::

    PYTHONPATH=. .venv/bin/python benchmarks/bench_torch_fe.py
    PYTHONPATH=. .venv/bin/python benchmarks/bench_torch_fe.py --quick          # ~1 minute
    PYTHONPATH=. .venv/bin/python benchmarks/bench_torch_fe.py --skip-simp --sizes 64x64,512x256
    PYTHONPATH=. .venv/bin/python benchmarks/bench_torch_fe.py --skip-linear --batches 1,32
    PYTHONPATH=. .venv/bin/python benchmarks/bench_torch_fe.py --gpu-large --max-iter 50  # GPU
    PYTHONPATH=. .venv/bin/python benchmarks/bench_torch_fe.py --skip-cpu --gpu-large  # GPU only

The exit status is 1 when a check fails: a displacement difference > 1e-6 (part 1), or a batched
compliance that differs from the direct solver's on the same problem and iteration count by more
than ``--c-tol`` (default 1e-3 in float64, 10x that in float32), in parts 2 and 3.
"""

import os

os.environ["OMP_NUM_THREADS"] = "1"
os.environ["MKL_NUM_THREADS"] = "1"
os.environ["OPENBLAS_NUM_THREADS"] = "1"

import argparse
import contextlib
import platform
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import scipy
import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # so that `python benchmarks/bench_torch_fe.py` finds topovae

from topovae.solvers import FEModel, preset, solve  # noqa: E402
from topovae.solvers._fe import simp_modulus, to_vector  # noqa: E402
from topovae.solvers.batched import (  # noqa: E402
    BatchedFE,
    ProblemBatch,
    grid_hierarchy,
    solve_batch,
    torch_threads,
)
from topovae.solvers.batched import _simp as batched_simp  # noqa: E402

SIZES = ((64, 64), (128, 64), (256, 128), (512, 256))
QUICK_SIZES = ((64, 64), (128, 64), (256, 128))
PRESET_MIX = ("mbb", "cantilever", "michell")
PENAL = 3.0
U_TOL = 1e-6  # ||u_mg - u_direct|| / ||u_direct||
CPU_TARGET = 10.0  # designs/s at 64x64 on 2 CPU cores (the issue)
GPU_TARGET = 200.0  # designs/s at 64x64 on an H100/H200
STEP_NAMES = ("MG set-up", "PCG", "filter", "energy", "OC")
clock = time.perf_counter


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def no_sync() -> None:
    pass


def sync_for(device: torch.device) -> Callable[[], None]:
    return torch.cuda.synchronize if device.type == "cuda" else no_sync


def direct_to_torch(u: np.ndarray, nely: int, nelx: int) -> np.ndarray:
    """Direct solver's (ndof, C) vector -> the torch layout (C, 2, Ny, Nx).

    u[2n + d, c] with node n = j (nely + 1) + i  ->  out[c, d, i, j]."""
    c = u.shape[1]
    return u.reshape(nelx + 1, nely + 1, 2, c).transpose(3, 2, 1, 0)


def rel_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def median_time(fn: Callable[[], object], repeat: int, sync: Callable[[], None]) -> float:
    times = []
    for _ in range(repeat):
        sync()
        t = clock()
        fn()
        sync()
        times.append(clock() - t)
    return statistics.median(times)


def parse_sizes(text: str) -> list[tuple[int, int]]:
    sizes = []
    for item in text.split(","):
        nx, _, ny = item.strip().lower().partition("x")
        sizes.append((int(nx), int(ny)))
    return sizes


def parse_ints(text: str) -> list[int]:
    values = [int(v) for v in text.split(",") if v.strip()]
    if not values or min(values) < 1:
        raise ValueError(text)
    return values


def table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    print("  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True)))
    for r in rows:
        print("  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)))
    sys.stdout.flush()


def environment(accel: torch.device | None) -> None:
    try:
        import cvxopt

        cvx = f", cvxopt {cvxopt.__version__}"
    except ImportError:
        cvx = ", no cvxopt (SuperLU)"
    print(
        f"python {platform.python_version()}, torch {torch.__version__}, numpy {np.__version__}, "
        f"scipy {scipy.__version__}{cvx}"
    )
    print(
        f"{os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), torch default "
        f"threads {torch.get_num_threads()}, BLAS threads {os.environ['OPENBLAS_NUM_THREADS']}, "
        f"CUDA available: {torch.cuda.is_available()}"
    )
    if accel is not None and accel.type == "cuda":
        props = torch.cuda.get_device_properties(accel)
        print(
            f"GPU: {props.name}, {props.total_memory / 2**30:.0f} GiB, CUDA {torch.version.cuda}, "
            f"{props.multi_processor_count} SMs"
        )
    sys.stdout.flush()


# --------------------------------------------------------------------------------------------
# 1. linear solves
# --------------------------------------------------------------------------------------------


def make_designs(
    sizes: list[tuple[int, int]], design_iter: int
) -> dict[tuple[int, int], tuple[object, dict[str, np.ndarray], str]]:
    """Per size: (problem, {density name: (nely, nelx) field}, linear solver name)."""
    out = {}
    for nelx, nely in sizes:
        rmin = max(1.5, nelx / 40)
        p = preset("mbb", nelx, nely, 0.5, filter="density", rmin=rmin, max_iter=design_iter)
        t = clock()
        res = solve(p)
        print(
            f"  design {nelx}x{nely}: {res.iterations} direct SIMP its, rmin {rmin:g}, "
            f"c = {res.compliance:.4g}, {clock() - t:.1f} s",
            flush=True,
        )
        densities = {"SIMP design": res.density, "uniform 0.5": np.full((nely, nelx), 0.5)}
        out[(nelx, nely)] = (p, densities, res.linear_solver)
    return out


def warm_up(device: torch.device, threads_list: list[int]) -> None:
    """Pay torch's one-off costs (thread pool, CUDA context, first kernels) before any timing."""
    p = preset("mbb", 16, 8, 0.5)
    for threads in threads_list if device.type == "cpu" else [None]:
        with torch_threads(threads), torch.no_grad():
            young = torch.full((1, 8, 16), 0.5, device=device, dtype=torch.float64)
            BatchedFE(ProblemBatch.build([p], device, torch.float64)).solve(young)
    sync_for(device)()


def bench_direct_linear(p, x: np.ndarray, repeat: int) -> dict:
    t = clock()
    model = FEModel(p)
    t_build = clock() - t
    young = simp_modulus(to_vector(x), PENAL)
    t = clock()
    u = model.solve(young)
    t_first = clock() - t
    s = median_time(lambda: model.solve(young), repeat, no_sync)
    return {"u": u, "s": s, "setup": t_build + max(0.0, t_first - s)}


def bench_mg_linear(p, x: np.ndarray, device, threads: int, repeat: int) -> dict:
    sync = sync_for(device)
    young = torch.as_tensor(simp_modulus(x, PENAL), device=device, dtype=torch.float64)[None]
    with torch_threads(threads if device.type == "cpu" else None), torch.no_grad():
        grid_hierarchy.cache_clear()  # time the one-time set-up cold
        sync()
        t = clock()
        batch = ProblemBatch.build([p], device, torch.float64)
        fe = BatchedFE(batch, tol=1e-8)
        sync()
        t_setup = clock() - t
        u = fe.solve(young)  # warm-up: first calls of the kernels at this size
        s = median_time(lambda: fe.solve(young), repeat, sync)
        its = fe.last_iterations.amax().item()
        pcg = batched_simp.MultigridPCG
        s_levels = median_time(lambda: pcg(fe.grid, young, batch.free), repeat, sync)
    return {"u": u[0].cpu().numpy(), "s": s, "its": its, "setup": t_setup, "levels": s_levels}


def run_linear(
    designs, device, threads_list: list[int], repeat: int, direct_cache: dict
) -> tuple[list, bool]:
    """Rows of the linear-solve table; ``direct_cache`` keeps the direct timings between calls."""
    rows, ok = [], True
    for (nelx, nely), (p, densities, solver_name) in designs.items():
        for dname, x in densities.items():
            key = (nelx, nely, dname)
            if key not in direct_cache:
                direct_cache[key] = bench_direct_linear(p, x, repeat)
            d = direct_cache[key]
            u_ref = direct_to_torch(d["u"], nely, nelx)
            for threads in threads_list:
                m = bench_mg_linear(p, x, device, threads, repeat)
                rel = rel_diff(m["u"], u_ref)
                good = rel <= U_TOL
                ok &= good
                where = str(threads) if device.type == "cpu" else device.type
                rows.append(
                    (
                        f"{nelx}x{nely}",
                        dname,
                        where,
                        str(m["its"]),
                        f"{1e3 * m['s']:.1f}",
                        f"{100 * m['levels'] / m['s']:.0f}%",
                        f"{1e3 * d['s']:.1f}",
                        f"{d['s'] / m['s']:.2f}x",
                        f"{m['setup']:.3f}",
                        f"{d['setup']:.3f}",
                        f"{rel:.1e}" + ("" if good else " FAIL"),
                    )
                )
                print(
                    f"  {nelx}x{nely} {dname}, threads {where}: MG-PCG {1e3 * m['s']:.1f} ms "
                    f"({m['its']} its), {solver_name} {1e3 * d['s']:.1f} ms",
                    flush=True,
                )
    return rows, ok


LINEAR_HEADER = ("size", "density", "threads", "PCG its", "MG ms/solve", "levels")
LINEAR_HEADER += ("direct ms", "direct/MG", "MG setup s", "direct setup s", "rel diff u")


def print_linear(rows, solver_name: str, where: str) -> None:
    print(f"\nlinear solve K u = f, MBB half beam, {where}, one problem, median per solve:")
    table(LINEAR_HEADER, rows)
    print(
        "MG = matrix-free multigrid PCG (float64 CG, float32 V-cycle, ||r|| <= 1e-8 ||f||, x0 = 0),"
        " its time includes building the levels for these moduli ('levels' = that share); "
        f"direct = {solver_name} numeric factorisation + solve on the fixed pattern; direct/MG > 1"
        " means MG is faster; set-up = once per grid (MG: ProblemBatch + grid hierarchy; direct:"
        " FEModel + symbolic analysis); rel diff u = ||u_MG - u_direct|| / ||u_direct||."
    )


# --------------------------------------------------------------------------------------------
# 2./3. batched SIMP
# --------------------------------------------------------------------------------------------


def make_problems(n: int, seed: int, max_iter: int, nelx: int = 64, nely: int = 64) -> list:
    rng = np.random.default_rng(seed)
    vfs = rng.uniform(0.3, 0.5, n)
    return [
        preset(
            PRESET_MIX[k % len(PRESET_MIX)],
            nelx,
            nely,
            float(vfs[k]),
            filter="density",
            rmin=2.0,
            max_iter=max_iter,
        )
        for k in range(n)
    ]


@contextlib.contextmanager
def step_timers(sync: Callable[[], None]) -> Iterator[dict[str, float]]:
    """Wrap the batched loop's steps (module attributes of `_simp`) with timers."""
    totals: dict[str, float] = defaultdict(float)
    base = batched_simp.MultigridPCG

    def timed(name: str, fn: Callable) -> Callable:
        def wrapper(*args, **kwargs):
            sync()
            t = clock()
            out = fn(*args, **kwargs)
            sync()
            totals[name] += clock() - t
            return out

        return wrapper

    class TimedPCG(base):
        __init__ = timed("MG set-up", base.__init__)
        solve = timed("PCG", base.solve)

    saved = {
        "MultigridPCG": base,
        "_oc_batched": batched_simp._oc_batched,
        "element_energy": batched_simp.element_energy,
    }
    call = batched_simp.ConvFilter.__call__
    batched_simp.MultigridPCG = TimedPCG
    batched_simp._oc_batched = timed("OC", batched_simp._oc_batched)
    batched_simp.element_energy = timed("energy", batched_simp.element_energy)
    batched_simp.ConvFilter.__call__ = timed("filter", call)
    try:
        yield totals
    finally:
        for name, value in saved.items():
            setattr(batched_simp, name, value)
        batched_simp.ConvFilter.__call__ = call


def run_batched(
    problems, device, dtype, cg_tol: float, threads: int | None, breakdown: bool
) -> dict:
    """One `solve_batch` call, timed from synchronised start to synchronised end."""
    sync = sync_for(device)
    timers = step_timers(sync) if breakdown else contextlib.nullcontext(None)
    with timers as steps:
        sync()
        t = clock()
        res = solve_batch(problems, device=device, dtype=dtype, cg_tol=cg_tol, threads=threads)
        sync()
        wall = clock() - t
    its = [r.iterations for r in res]
    cg = np.concatenate([r.history["cg_iterations"] for r in res])
    loop = res[0].seconds
    return {
        "results": res,
        "wall": wall,
        "loop": loop,
        "ms_step": 1e3 * loop / max(its),  # one batched iteration (of a shrinking batch)
        "its": its,
        "converged": sum(r.converged for r in res),
        "cg": f"{cg.mean():.1f}",
        "steps": dict(steps) if steps is not None else None,
    }


def run_batched_median(
    problems, device, dtype, cg_tol: float, threads: int | None, breakdown: bool, budget: float
) -> dict:
    """`run_batched` repeated while the runs so far took less than ``budget`` seconds (at most 3
    runs); the run of median wall time. Short runs vary a lot on a shared machine."""
    runs = [run_batched(problems, device, dtype, cg_tol, threads, breakdown)]
    while len(runs) < 3 and sum(r["wall"] for r in runs) < budget:
        runs.append(run_batched(problems, device, dtype, cg_tol, threads, breakdown))
    runs.sort(key=lambda r: r["wall"])
    out = runs[(len(runs) - 1) // 2]
    out["runs"] = len(runs)
    return out


def runs_text(r: dict) -> str:
    return "1 run" if r["runs"] == 1 else f"median of {r['runs']} runs"


def run_direct(problems) -> dict:
    """The sparse-direct `solve`, one problem after the other (1 thread)."""
    t = clock()
    res = [solve(p) for p in problems]
    wall = clock() - t
    its = [r.iterations for r in res]
    loop = sum(r.seconds for r in res)
    return {
        "results": res,
        "wall": wall,
        "loop": loop,
        "ms_step": 1e3 * loop / sum(its),  # one problem's iteration
        "its": its,
        "converged": sum(r.converged for r in res),
        "cg": "-",
        "steps": None,
    }


def rate(r: dict) -> float:
    """Problem-iterations per second of wall time."""
    return sum(r["its"]) / r["wall"]


def compliance_check(batched: list, direct: list, tol: float) -> tuple[float, int, bool]:
    """Max relative compliance difference over the problems that both codes ran for the same
    number of iterations (converged runs may stop an iteration or two apart), and their count."""
    worst, n = 0.0, 0
    for rb, rd in zip(batched, direct, strict=False):
        if rb.iterations == rd.iterations:
            worst = max(worst, abs(rb.compliance - rd.compliance) / abs(rd.compliance))
            n += 1
    return worst, n, worst <= tol


def check_text(label: str, check: tuple[float, int, bool]) -> str:
    worst, n, good = check
    return f"{label}: {worst:.1e} over {n}" + ("" if good else " FAIL")


def breakdown_cells(r: dict) -> tuple[str, ...]:
    if r["steps"] is None:
        return ("-",) * (len(STEP_NAMES) + 1)
    loop = r["loop"]
    shares = [r["steps"].get(k, 0.0) / loop for k in STEP_NAMES]
    return (*(f"{100 * s:.0f}%" for s in shares), f"{100 * (1 - sum(shares)):.0f}%")


THROUGHPUT_HEADER = ("backend", "B", "threads", "runs", "problem-its", "converged", "wall s")
THROUGHPUT_HEADER += ("ms/step",)
THROUGHPUT_HEADER += ("CG its", "problem-it/s", "designs/s (extrap.)", "target")


def throughput_row(label: str, threads: str, r: dict, mean_its: float, target: float) -> tuple:
    b = len(r["its"])
    return (
        label,
        str(b),
        threads,
        str(r.get("runs", 1)),
        str(sum(r["its"])),
        f"{r['converged']}/{b}",
        f"{r['wall']:.2f}",
        f"{r['ms_step']:.1f}",
        r["cg"],
        f"{rate(r):.0f}",
        f"{rate(r) / mean_its:.2f}",
        f">= {target:g}",
    )


CONVERGED_HEADER = ("backend", "B", "threads", "mean its", "max its", "converged", "wall s")
CONVERGED_HEADER += ("designs/s (measured)", "(extrap. from capped)", "target")


def converged_row(label: str, threads: str, r: dict, capped: dict | None, target: float):
    b = len(r["its"])
    mean_its = float(np.mean(r["its"]))
    return (
        label,
        str(b),
        threads,
        f"{mean_its:.1f}",
        str(max(r["its"])),
        f"{r['converged']}/{b}",
        f"{r['wall']:.1f}",
        f"{b / r['wall']:.2f}",
        f"{rate(capped) / mean_its:.2f}" if capped else "-",
        f">= {target:g}",
    )


def print_simp_tables(
    where: str, cap: int, conv_cap: int, rows, brows, crows, mean_its: float, mean_from: str
) -> None:
    print(
        f"\nbatched SIMP at 64x64, mixed mbb/cantilever/michell, vf 0.3-0.5, density filter rmin 2,"
        f" {where}; every problem capped at {cap} iterations:"
    )
    table(THROUGHPUT_HEADER, rows)
    print(
        "runs = repeats of a short run (the median is shown); problem-its = SIMP iterations"
        " summed over the problems; problem-it/s = that / wall time"
        " (set-up included); ms/step = loop time per batched iteration (direct: per problem"
        " iteration, one process on one core: N processes on N cores would give up to N times"
        " its problem-it/s); CG its = mean PCG iterations per solve (warm-started);"
        f" designs/s (extrap.) = problem-it/s / {mean_its:.1f}, the mean iterations to converge"
        f" of {mean_from}."
    )
    if brows:
        print("\nwhere the batched loop's time goes (share of the loop's wall time):")
        table(("backend", "B", "threads", *STEP_NAMES, "rest"), brows)
    print(f"\nfully converged (change <= 0.01, at most {conv_cap} its), same settings:")
    table(CONVERGED_HEADER, crows)
    print(
        "measured = problems / wall time to finish all of them (tail included); extrap. from"
        " capped = problem-it/s of the capped run with the same B and threads / this run's mean"
        " its (- when there was no such capped run)."
    )


def part_cpu_simp(args) -> tuple[bool, dict]:
    cpu = torch.device("cpu")
    threads_list, cap, n_conv = args.threads, args.max_iter, args.converged
    nmax = max(args.batches)
    print(
        f"\n[2] batched SIMP on the CPU: B in {args.batches}, threads {threads_list}, cap {cap} "
        f"its; {n_conv} problems to convergence (threads {args.converged_threads})",
        flush=True,
    )
    problems = make_problems(max(nmax, n_conv), args.seed, cap)
    for threads in {*threads_list, args.converged_threads}:  # warm-up
        run_batched(problems[:2], cpu, torch.float64, 1e-5, threads, False)
    ok, checks = True, []

    t = clock()
    direct = run_direct(problems[:nmax])
    print(f"  direct, {nmax} problems x {cap} its: {clock() - t:.1f} s", flush=True)
    conv = [p.with_settings(max_iter=args.converged_cap) for p in problems[:n_conv]]
    t = clock()
    direct_conv = run_direct(conv)
    mean_its = float(np.mean(direct_conv["its"]))
    print(
        f"  direct, {n_conv} problems to convergence: mean {mean_its:.1f} its (min "
        f"{min(direct_conv['its'])}, max {max(direct_conv['its'])}), {clock() - t:.1f} s",
        flush=True,
    )
    rows = [throughput_row("direct", "1", direct, mean_its, CPU_TARGET)]
    brows, capped = [], {}
    for threads in threads_list:
        for b in args.batches:
            r = run_batched_median(
                problems[:b], cpu, torch.float64, 1e-5, threads, True, args.repeat_budget
            )
            capped[(b, threads)] = r
            rows.append(throughput_row("torch cpu f64", str(threads), r, mean_its, CPU_TARGET))
            brows.append(("torch cpu f64", str(b), str(threads), *breakdown_cells(r)))
            check = compliance_check(r["results"], direct["results"], args.c_tol)
            ok &= check[2]
            checks.append(check_text(f"B={b} t={threads}", check))
            print(
                f"  torch B={b} threads={threads}: {r['wall']:.1f} s ({runs_text(r)})",
                flush=True,
            )
    t0 = args.converged_threads
    batched_conv = run_batched(conv, cpu, torch.float64, 1e-5, t0, True)
    print(f"  torch, {n_conv} problems to convergence: {batched_conv['wall']:.1f} s", flush=True)
    check = compliance_check(batched_conv["results"], direct_conv["results"], args.c_tol)
    ok &= check[2]
    checks.append(check_text(f"converged B={n_conv}", check))
    brows.append(("converged f64", str(n_conv), str(t0), *breakdown_cells(batched_conv)))
    crows = [
        converged_row("direct", "1", direct_conv, direct, CPU_TARGET),
        converged_row("torch cpu f64", str(t0), batched_conv, capped.get((n_conv, t0)), CPU_TARGET),
    ]
    print_simp_tables(
        "CPU, float64, cg_tol 1e-5",
        cap,
        args.converged_cap,
        rows,
        brows,
        crows,
        mean_its,
        f"the first {n_conv} problems run to convergence by the direct solver",
    )
    print(
        f"compliance check (max rel diff batched vs direct, same iteration count, <= "
        f"{args.c_tol:g}): " + "; ".join(checks)
    )
    return ok, {"problems": problems, "direct": direct}


def part_gpu_simp(args, accel: torch.device, shared: dict | None) -> bool:
    batches = list(args.gpu_batches) + ([1024] if args.gpu_large else [])
    batches = sorted(set(batches))
    cap, n_conv = args.max_iter, args.gpu_converged
    nmax = max(batches)
    # (dtype, label, cg_tol, tolerance of the compliance check)
    dtypes = (
        (torch.float64, "f64", 1e-5, args.c_tol),
        (torch.float32, "f32", args.f32_cg_tol, 10 * args.c_tol),
    )
    print(
        f"\n[3b] batched SIMP on {accel}: B in {batches}, float64 (cg_tol 1e-5) and float32 "
        f"(cg_tol {args.f32_cg_tol:g}), cap {cap} its; {n_conv} problems to convergence",
        flush=True,
    )
    if shared is not None and len(shared["problems"]) >= nmax:
        problems = shared["problems"]
    else:
        problems = make_problems(max(nmax, n_conv), args.seed, cap)
    if shared is not None:
        direct = shared["direct"]
    else:  # the reference of the compliance check, on a few problems
        t = clock()
        direct = run_direct(problems[: min(nmax, 32)])
        print(f"  direct reference, {len(direct['its'])} problems: {clock() - t:.1f} s", flush=True)
    threads = None if accel.type == "cuda" else args.threads[0]
    tlabel = accel.type if accel.type == "cuda" else f"cpu{threads}"
    ok, checks = True, []
    conv = [p.with_settings(max_iter=args.converged_cap) for p in problems[:n_conv]]
    for dtype, name, tol, _ in dtypes:
        t = clock()
        short = [p.with_settings(max_iter=3) for p in problems[:2]]
        run_batched(short, accel, dtype, tol, threads, False)  # warm-up: context, kernels
        print(f"  warm-up {name}: {clock() - t:.1f} s", flush=True)
    runs, convs = {}, {}
    for dtype, name, tol, ctol in dtypes:
        for b in batches:
            r = run_batched_median(
                problems[:b], accel, dtype, tol, threads, False, args.repeat_budget
            )
            runs[(name, b)] = r
            check = compliance_check(r["results"], direct["results"], ctol)
            ok &= check[2]
            checks.append(check_text(f"{name} B={b}", check))
            print(
                f"  {name} B={b}: {r['wall']:.2f} s ({runs_text(r)}), {rate(r):.0f} problem-it/s",
                flush=True,
            )
        convs[name] = run_batched(conv, accel, dtype, tol, threads, False)
        print(f"  {name} {n_conv} to convergence: {convs[name]['wall']:.1f} s", flush=True)
    # the step breakdown needs a synchronisation around every timed call: a separate run
    brows = []
    if args.gpu_breakdown_iter > 0:
        short = [p.with_settings(max_iter=args.gpu_breakdown_iter) for p in problems[:nmax]]
        for dtype, name, tol, _ in dtypes:
            r = run_batched(short, accel, dtype, tol, threads, True)
            brows.append((f"{accel.type} {name}", str(nmax), tlabel, *breakdown_cells(r)))
    for _, name, tol, _ in dtypes:
        c = convs[name]
        mean_its = float(np.mean(c["its"]))
        rows = [
            throughput_row(
                f"torch {accel.type} {name}", tlabel, runs[(name, b)], mean_its, GPU_TARGET
            )
            for b in batches
        ]
        crows = [
            converged_row(
                f"torch {accel.type} {name}", tlabel, c, runs.get((name, n_conv)), GPU_TARGET
            )
        ]
        print_simp_tables(
            f"{accel}, {name}, cg_tol {tol:g}",
            cap,
            args.converged_cap,
            rows,
            [r for r in brows if r[0].endswith(name)],
            crows,
            mean_its,
            f"the {n_conv} problems of the converged run below (this dtype)",
        )
        if args.gpu_breakdown_iter > 0:
            print(
                f"(breakdown: a separate run of {args.gpu_breakdown_iter} iterations at B={nmax}"
                " with a synchronisation around every timed call)"
            )
    print(
        "compliance check (max rel diff vs the direct solver, same iteration count, <= "
        f"{args.c_tol:g} f64 / {10 * args.c_tol:g} f32): " + "; ".join(checks)
    )
    return ok


# --------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="smaller sizes and batches (~1 minute)")
    ap.add_argument("--sizes", help="part 1 grids, NELXxNELY,... (default 64x64,...,512x256)")
    ap.add_argument("--design-iter", type=int, help="direct SIMP its for the designs (40)")
    ap.add_argument("--repeat", type=int, help="part 1: median of this many solves (5)")
    ap.add_argument("--threads", default="1,2", help="torch CPU threads to try (1,2)")
    ap.add_argument("--batches", help="part 2 batch sizes (1,32,256)")
    ap.add_argument("--max-iter", type=int, help="SIMP iterations per problem, capped runs (10)")
    ap.add_argument("--converged", type=int, help="problems run to convergence, CPU (32)")
    ap.add_argument("--converged-threads", type=int, help="threads of that run (max of --threads)")
    ap.add_argument("--converged-cap", type=int, default=500, help="max its when converging")
    ap.add_argument(
        "--repeat-budget",
        type=float,
        default=8.0,
        help="capped batched runs: repeat (up to 3 runs, median) while they took less (s)",
    )
    ap.add_argument("--seed", type=int, default=0, help="seed of the volume fractions")
    ap.add_argument("--c-tol", type=float, default=1e-3, help="compliance check, float64")
    ap.add_argument("--skip-linear", action="store_true", help="skip the linear solves (1, 3a)")
    ap.add_argument("--skip-simp", action="store_true", help="skip the batched SIMP (2, 3b)")
    ap.add_argument("--no-gpu", action="store_true", help="skip part 3")
    ap.add_argument(
        "--skip-cpu", action="store_true", help="skip the torch CPU timings (part 3 only)"
    )
    ap.add_argument("--accel", default="cuda", help="part 3 device (cpu: test the code path)")
    ap.add_argument("--gpu-batches", default="1,32,256", help="part 3 batch sizes")
    ap.add_argument("--gpu-large", action="store_true", help="add B = 1024 in part 3")
    ap.add_argument("--gpu-converged", type=int, help="problems to convergence, GPU (256)")
    ap.add_argument("--f32-cg-tol", type=float, default=1e-4, help="cg_tol in float32")
    ap.add_argument("--gpu-breakdown-iter", type=int, default=10, help="0: no GPU breakdown")
    args = ap.parse_args(argv)

    quick = args.quick
    defaults = {
        "design_iter": 30 if quick else 40,
        "repeat": 3 if quick else 5,
        "batches": "1,32" if quick else "1,32,256",
        "max_iter": 5 if quick else 10,
        "converged": 12 if quick else 32,
        "gpu_converged": 32 if quick else 256,
    }
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    try:
        sizes = parse_sizes(args.sizes) if args.sizes else list(QUICK_SIZES if quick else SIZES)
    except ValueError:
        ap.error(f"--sizes: expected e.g. 64x64,512x256, got {args.sizes!r}")
    try:
        args.threads = parse_ints(args.threads)
        args.batches = parse_ints(args.batches)
        args.gpu_batches = parse_ints(args.gpu_batches)
    except ValueError as e:
        ap.error(f"expected comma-separated positive integers, got {e}")
    if args.converged_threads is None:
        args.converged_threads = max(args.threads)
    for key in ("design_iter", "repeat", "max_iter", "converged", "converged_cap"):
        if getattr(args, key) < 1:
            ap.error(f"--{key.replace('_', '-')} must be >= 1")
    accel = None
    if not args.no_gpu:
        if args.accel == "cpu" or torch.cuda.is_available():
            accel = torch.device(args.accel)
        elif args.accel.startswith("cuda"):
            print("no CUDA GPU: part 3 is skipped")

    t_start = clock()
    print(
        "bench_torch_fe: matrix-free multigrid PCG (torch) vs sparse direct (FEModel), "
        f"{'quick' if quick else 'default'} settings"
    )
    environment(accel)
    ok = True
    designs, direct_cache = None, {}
    if not args.skip_linear:
        print(f"\n[1] linear solves, designs by {args.design_iter} direct SIMP iterations:")
        designs = make_designs(sizes, args.design_iter)
        solver_name = next(iter(designs.values()))[2]
        if not args.skip_cpu:
            warm_up(torch.device("cpu"), args.threads)
            rows, good = run_linear(
                designs, torch.device("cpu"), args.threads, args.repeat, direct_cache
            )
            ok &= good
            print_linear(rows, solver_name, "torch on the CPU")
    shared = None
    if not args.skip_simp and not args.skip_cpu:
        good, shared = part_cpu_simp(args)
        ok &= good
    if accel is not None:
        if designs is not None:
            print(f"\n[3a] linear solves on {accel}:", flush=True)
            warm_up(accel, args.threads[:1])
            rows, good = run_linear(designs, accel, [args.threads[0]], args.repeat, direct_cache)
            ok &= good
            print_linear(rows, solver_name, f"torch on {accel}")
        if not args.skip_simp:
            ok &= part_gpu_simp(args, accel, shared)
    print(f"\ntotal {clock() - t_start:.0f} s; checks {'passed' if ok else 'FAILED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
