"""Which route runs a SIMP solve: the sparse direct solver or the batched torch multigrid-PCG.

    from topovae.solvers import choose_backend, preset, solve
    choose_backend(preset("mbb", 1200, 400))   # "direct" (with CHOLMOD, at every measured size)
    solve(problem, backend="auto")             # the same choice, then that route's solve

- "direct": `FEModel` with CHOLMOD (the `fast` extra) or SuperLU, one factorisation per iteration.
- "torch": `batched.solve_batch` on one problem, matrix-free multigrid-preconditioned CG (CPU, or
  CUDA with ``device``). OC with the sensitivity or density filter only; CG stops at a relative
  residual of 1e-5, so compliances agree with the direct route to ~1e-5, not to the last digit.
- "auto": direct, unless the grid has at least `AUTO_TORCH_MIN_ELEMENTS` elements for the
  device the torch route would run on and the direct solver that is installed, and the torch
  route can run the problem's settings. Below every threshold torch is not even imported.
"""

from __future__ import annotations

from ._linear import cholmod_available
from ._problem import Problem, ProblemError, SIMPSettings, check_problem

BACKENDS = ("auto", "direct", "torch")

# Smallest grid (nelx * nely) at which backend="auto" takes the torch route, per (device type of
# the torch route, direct linear solver); None: never. Measured 2026-12 on 2 shared CPU cores, one
# thread per route, MBB half beam with the density filter, seconds per iteration after a warm-up
# iteration (torch route: CG to 1e-5, float32 V-cycle), with
#     python benchmarks/bench_simp.py --large
#     python benchmarks/bench_simp.py --large --timed 40 --runs 2 \
#         --sizes 120x40,180x60,210x70,240x80
# - CHOLMOD beat the torch route at every size from 60x20 to 1200x400, in two full runs: torch
#   took 8.5x, 4.5-4.7x, 2.3-2.6x, 1.9-2.0x and 2.1-2.2x its time (1200x400: 4.6-4.8 s against
#   2.2 s per iteration), so with CHOLMOD auto is the direct route everywhere on the CPU.
# - SuperLU (no `fast` extra) beat the torch route at 4,800 and 7,500 elements (torch 1.30x and
#   1.36-1.39x its time) and lost from 10,800 on (0.83x at 180x60, 0.43-0.47x at 1200x400): the
#   threshold is the smallest measured grid where torch won. It is above the largest preset
#   (l-bracket, 100x100 = 10,000 elements), so every preset at its own size keeps the direct route.
# - CUDA: never measured (no GPU was available; the torch route has not run on one), so auto
#   stays direct there until `bench_simp.py --large --device cuda` has been run on a GPU.
AUTO_TORCH_MIN_ELEMENTS: dict[tuple[str, str], int | None] = {
    ("cpu", "cholmod"): None,
    ("cpu", "superlu"): 10_800,
    ("cuda", "cholmod"): None,
    ("cuda", "superlu"): None,
}


def torch_unsupported(settings: SIMPSettings) -> str | None:
    """Why the torch route cannot run these settings (None: it can)."""
    if settings.filter == "heaviside":
        return (
            "the batched SIMP supports the sensitivity and density filters; "
            "use the direct backend for the heaviside filter"
        )
    if settings.update_rule == "mma":
        return "the batched SIMP uses OC; use the direct backend for MMA"
    if settings.reuse_tol:  # None (auto) and 0 mean the same on a route without a factor
        return "reuse_tol reuses the direct backend's Cholesky factor; the batched SIMP has none"
    return None


def direct_solver_name(settings: SIMPSettings) -> str:
    """The linear solver the direct route would use: "cholmod" or "superlu"."""
    if settings.linear_solver == "auto":
        return "cholmod" if cholmod_available() else "superlu"
    return settings.linear_solver


def check_backend(backend: object, device: object = "auto") -> str:
    """Refuse an unknown backend, or a device name the torch route would not know (checked by
    name only: whether CUDA is there is asked when the torch route starts)."""
    if not isinstance(backend, str) or backend not in BACKENDS:
        raise ProblemError(f"unknown backend {backend!r}; choose one of: {', '.join(BACKENDS)}")
    if not isinstance(device, str):
        if type(device).__module__ != "torch" or type(device).__name__ != "device":
            raise ProblemError(f"device must be a name or a torch.device, got {device!r}")
    elif not (device in ("auto", "cpu", "cuda") or device.startswith("cuda:")):
        raise ProblemError(f"unknown device {device!r}; choose one of: auto, cpu, cuda")
    return backend


def choose_backend(
    problem: Problem,
    backend: str = "auto",
    device: object = "auto",
    *,
    warm_start: bool = False,
) -> str:
    """The route a solve takes: "direct" or "torch" (``backend`` "auto" resolved, see the module
    docstring). ``device`` is the torch route's ("auto": CUDA when available); ``warm_start``:
    a start design x0 is given, which only the direct route takes."""
    check_problem(problem)
    check_backend(backend, device)
    if backend != "auto":
        return backend
    if warm_start or torch_unsupported(problem.settings) is not None:
        return "direct"
    direct = direct_solver_name(problem.settings)
    n = problem.nelx * problem.nely
    limits = [v for (_, d), v in AUTO_TORCH_MIN_ELEMENTS.items() if d == direct and v is not None]
    if not limits or n < min(limits):
        return "direct"  # decided without importing torch
    limit = AUTO_TORCH_MIN_ELEMENTS.get((_device_type(device), direct))
    return "torch" if limit is not None and n >= limit else "direct"


def _device_type(device: object) -> str:
    """ "cpu" or "cuda": where the torch route would run."""
    from .batched import resolve_device

    return resolve_device(device).type
