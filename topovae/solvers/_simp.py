"""The SIMP minimum-compliance loop (top88 structure, with MMA as an alternative update).

    minimise   c(x) = sum_k f_k^T u_k,   K(x^) u_k = f_k
    subject to sum_e x^_e <= volfrac * nele,   0 <= x <= 1,

where x are the design variables and x^ the physical densities (filtered, projected, passive
elements held at 0 / 1). Each iteration, numbered as in the code below:

1. physical densities x^ from x (`DesignMap.physical`);
2. SIMP penalisation E_e = Emin + x^_e^p (E0 - Emin) and the FE solve (top88 eq. (1)-(2));
3. compliance c = sum_e E_e u_e^T k0 u_e and its sensitivity
   dc/dx^_e = -p x^_e^(p-1) (E0 - Emin) u_e^T k0 u_e (top88 eq. (3)-(4));
4. chain rule through the filter and projection (`DesignMap.chain`);
5. design update: OC with bisection on the Lagrange multiplier (top88 eq. (7)-(8)) or one MMA step;
6. convergence: stop when max |x_new - x| <= tol, or, with ``ctol`` > 0, when the compliance moved
   by at most a relative ctol over the last `CTOL_WINDOW` iterations (`compliance_settled`); with
   projection only once beta has reached beta_max;
   with projection, beta doubles every `beta_every` iterations or on convergence (continuation).

The reported design is the physical density analysed in the last iteration, so `density` and
`compliance` belong together (top88 prints the same compliance).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._checks import check_unit_range, real_array
from ._backend import check_backend, choose_backend, torch_unsupported
from ._deflation import Deflation
from ._fe import E0, EMIN, FEModel, simp_modulus, to_field, to_vector
from ._filters import ConeFilter, _heaviside, heaviside_grad
from ._mma import MMA
from ._problem import MAX_PENAL, Problem, ProblemError, _finite_number, check_problem


@dataclass
class IterationInfo:
    """What a callback sees after each iteration."""

    iteration: int
    compliance: float
    volume: float
    change: float
    beta: float | None


MAX_THREADS = 1024  # BLAS / torch threads a solve may ask for
CTOL_WINDOW = 5  # iterations over which ``ctol`` measures the compliance change


def compliance_settled(compliances: list[float], ctol: float) -> bool:
    """|C_k - C_(k-5)| <= ctol C_k for the latest compliance C_k (False with ctol = 0)."""
    if ctol <= 0 or len(compliances) <= CTOL_WINDOW:
        return False
    c = compliances[-1]
    return abs(c - compliances[-1 - CTOL_WINDOW]) <= ctol * abs(c)


@dataclass
class SolveResult:
    """Outcome of `solve`. ``history`` holds per-iteration arrays: compliance, volume, change
    (and beta with projection)."""

    density: np.ndarray  # (nely, nelx) physical density of the last analysed design
    compliance: float
    volume: float
    iterations: int
    converged: bool
    history: dict[str, np.ndarray]
    linear_solver: str
    seconds: float  # wall time of the iterations (set-up excluded)
    setup_seconds: float
    problem: Problem = field(repr=False)
    factorizations: int = 0  # of the stiffness matrix (the direct route; reuse_tol saves some)
    reuse_tol: float = 0.0  # the factor-reuse tolerance the solve ran with (0: none)

    @property
    def seconds_per_iteration(self) -> float:
        return self.seconds / max(self.iterations, 1)

    def summary(self) -> dict[str, Any]:
        """JSON-able figures of the solve."""
        return {
            "problem": self.problem.metadata(),
            "compliance": self.compliance,
            "volume": self.volume,
            "iterations": self.iterations,
            "converged": self.converged,
            "optimizer": self.problem.settings.update_rule,
            "linear_solver": self.linear_solver,
            "seconds": self.seconds,
            "setup_seconds": self.setup_seconds,
            "seconds_per_iteration": self.seconds_per_iteration,
            "factorizations": self.factorizations,
            "reuse_tol": self.reuse_tol,
        }


class DesignMap:
    """Design variables x -> physical densities x^, and the chain rule back (vectors)."""

    def __init__(self, problem: Problem) -> None:
        s = check_problem(problem).settings
        self.kind, self.eta = s.filter, s.eta
        self.beta = s.beta_init if s.filter == "heaviside" else None
        self.h = ConeFilter(problem.nelx, problem.nely, s.rmin)  # H @ v, sparse or by FFT
        self.hs = self.h @ np.ones(problem.nelx * problem.nely)
        self.solid = to_vector(problem.passive_solid)
        self.void = to_vector(problem.passive_void)
        self.active = ~(self.solid | self.void)
        self._n_solid = float(self.solid.sum())
        self._passive = not self.active.all()
        self._dphys: np.ndarray | None = None  # d x^ / d x~, stored by `physical`
        # The density-filtered volume is linear in x: sum(x^) = w . x + #solid (no filter call
        # needed inside the OC bisection).
        self._volume_weights = self.h @ (self.active / self.hs)

    def fix_passive(self, x: np.ndarray) -> np.ndarray:
        if self._passive:
            x[self.solid] = 1.0
            x[self.void] = 0.0
        return x

    def physical(self, x: np.ndarray) -> np.ndarray:
        """Physical densities x^ (n,) of design variables x (n,), as the filter says."""
        if not isinstance(x, np.ndarray) or x.shape != self.active.shape:
            raise ProblemError(
                f"x must be an array of shape {self.active.shape}, got "
                + (f"shape {x.shape}" if isinstance(x, np.ndarray) else type(x).__name__)
            )
        if self.kind == "sensitivity":
            xphys = x.copy()
        else:
            xt = np.clip((self.h @ x) / self.hs, 0.0, 1.0)  # round-off can exceed 1
            if self.kind == "heaviside":
                self._dphys = heaviside_grad(xt, self.beta, self.eta)
                xphys = _heaviside(xt, self.beta, self.eta)
            else:
                xphys = xt
        return self.fix_passive(xphys)

    def volume(self, x: np.ndarray) -> float:
        """sum(x^) of a candidate x, as cheaply as the filter allows."""
        if not isinstance(x, np.ndarray) or x.shape != self.active.shape:
            raise ProblemError(f"x must be an array of shape {self.active.shape}")
        return self._volume(x)

    def _volume(self, x: np.ndarray) -> float:
        if self.kind == "sensitivity":
            return float((x[self.active] if self._passive else x).sum() + self._n_solid)
        if self.kind == "density":
            return float(self._volume_weights @ x) + self._n_solid
        t = np.clip((self.h @ x) / self.hs, 0.0, 1.0)
        return float(self.fix_passive(_heaviside(t, self.beta, self.eta)).sum())

    def volume_gradient(self) -> np.ndarray:
        """d sum(x^) / dx at the last `physical` call."""
        if self.kind == "density":
            return self._volume_weights
        return self.chain(np.ones(self.active.size))

    def chain(self, dc: np.ndarray) -> np.ndarray:
        """Exact chain rule: d/dx^ -> d/dx through passive masks, projection and density filter.

        Call after `physical` (which stores the projection's derivative). With the sensitivity
        filter x^ = x (passive entries are returned too; their variables never move).
        """
        if self.kind == "sensitivity":
            return dc
        scale = self.active / self.hs
        if self.kind == "heaviside":
            scale *= self._dphys
        return self.h @ (dc * scale)  # H is symmetric: H^T = H

    def filter_sensitivity(self, x: np.ndarray, dc: np.ndarray) -> np.ndarray:
        """Sigmund's heuristic sensitivity filter (top88 eq. (5))."""
        return (self.h @ (x * dc)) / self.hs / np.maximum(1e-3, x)


def objective(
    x: np.ndarray, fe: FEModel, design: DesignMap, penal: float
) -> tuple[float, np.ndarray, np.ndarray]:
    """Steps 1-4: (compliance, exact dc/dx, physical densities x^) of design variables x."""
    # 1. physical densities
    xphys = design.physical(x)
    # 2. penalised moduli and FE solve
    young = simp_modulus(xphys, penal)
    u = fe.solve(young)
    # 3. compliance and its sensitivity w.r.t. x^
    ce = fe.element_energy(u)
    c = float(young @ ce)
    dc = -penal * (E0 - EMIN) * xphys ** (penal - 1) * ce
    # 4. chain rule through projection and filter
    return c, design.chain(dc), xphys


def oc_update(
    x: np.ndarray,
    dc: np.ndarray,
    dv: np.ndarray,
    move: float,
    volume: Callable[[np.ndarray], float],
    target: float,
    fix: Callable[[np.ndarray], np.ndarray],
) -> np.ndarray:
    """Optimality-criteria update with top88's bisection on the multiplier (eq. (7)-(8)): x,
    dc, dv (n,) finite, x in [0, 1], dv >= 0; ``volume`` and ``fix`` callables (as
    `DesignMap.volume` and `DesignMap.fix_passive`); the arguments are checked (the solver's
    loop calls `_oc_update`)."""
    x, dc, dv = (
        real_array(v, name, ProblemError) for v, name in ((x, "x"), (dc, "dc"), (dv, "dv"))
    )
    if x.ndim != 1 or dc.shape != x.shape or dv.shape != x.shape:
        raise ProblemError(
            f"x, dc and dv must be 1D arrays of one length, got {x.shape}, {dc.shape}, {dv.shape}"
        )
    check_unit_range(x, "x", ProblemError)
    if not (np.isfinite(dc).all() and np.isfinite(dv).all()):
        raise ProblemError("dc and dv must be finite")
    if not 0 < _finite_number("move", move) <= 1:
        raise ProblemError(f"move must be in (0, 1], got {move!r}")
    _finite_number("target", target)
    if not (callable(volume) and callable(fix)):
        raise TypeError("volume and fix must be callables (DesignMap.volume, .fix_passive)")
    return _oc_update(x, dc, dv, move, volume, target, fix)


def _oc_update(x, dc, dv, move, volume, target, fix) -> np.ndarray:
    ratio = np.divide(np.maximum(-dc, 0.0), dv, out=np.zeros_like(dc), where=dv > 0)
    scaled = x * np.sqrt(ratio)  # x sqrt(ratio / l) = scaled / sqrt(l): one division per step
    lo, hi = np.maximum(0.0, x - move), np.minimum(1.0, x + move)
    l1, l2 = 0.0, 1e9
    xnew = np.empty_like(x)
    # top88's (l2 - l1) / (l1 + l2) > 1e-3, safe when the move limit keeps the volume below the
    # target for every multiplier (a warm start far from it): l2 then falls towards 0 and stops
    while l2 - l1 > 1e-3 * (l1 + l2) and l2 > 1e-40:
        lmid = 0.5 * (l2 + l1)
        np.divide(scaled, math.sqrt(lmid), out=xnew)
        np.maximum(xnew, lo, out=xnew)
        xnew = fix(np.minimum(xnew, hi, out=xnew))
        if volume(xnew) > target:
            l1 = lmid
        else:
            l2 = lmid
    return xnew


def initial_design(design: DesignMap, volfrac: float) -> np.ndarray:
    """Uniform density on the design domain so that the total volume is volfrac * nele."""
    n, n_active = design.active.size, int(design.active.sum())
    x0 = (volfrac * n - design.solid.sum()) / n_active
    return design.fix_passive(np.full(n, x0))


def solve(
    problem: Problem,
    *,
    callback: Callable[[IterationInfo], None] | None = None,
    progress: bool = False,
    threads: int | None = 1,
    x0: np.ndarray | None = None,
    deflation: Deflation | None = None,
    backend: str = "auto",
    device: str = "auto",
) -> SolveResult:
    """Run SIMP on ``problem`` with its settings; see the module docstring for the steps.

    ``x0`` (nely, nelx) in [0, 1] starts from a given design instead of the uniform one (a warm
    start, e.g. to polish a generated design with a few iterations: set ``max_iter``).

    ``deflation`` (a `Deflation`) adds a penalty that keeps the design away from known designs,
    so the loop finds another local optimum (direct backend); the reported compliance is the
    plain one, without the penalty.

    ``progress`` shows a tqdm bar (rate, ETA, compliance); ``callback`` is called after each
    iteration with an `IterationInfo`. ``threads`` caps the BLAS threads during the solve (None
    leaves them alone): on small machines one thread is several times faster than BLAS's default,
    and parallelism comes from solving several problems at once instead.

    ``backend``: "direct" (sparse Cholesky / LU, this module), "torch" (the batched multigrid-PCG
    of `topovae.solvers.batched` on ``device``, OC with the sensitivity or density filter, no
    ``x0``; ``threads`` then also sets torch's threads) or "auto", the default: by grid size, see
    `choose_backend` (direct for every grid at which it was measured faster, which with CHOLMOD
    is every grid up to 1200x400). ``result.linear_solver`` names the route taken.
    """
    check_problem(problem)
    check_backend(backend, device)
    if threads is not None and (
        isinstance(threads, bool)
        or not isinstance(threads, int | np.integer)
        or not 1 <= threads <= MAX_THREADS
    ):
        raise ProblemError(
            f"threads must be None (leave BLAS alone) or an integer in 1..{MAX_THREADS}, "
            f"got {threads!r}"
        )
    threads = None if threads is None else int(threads)  # threadpoolctl takes no numpy ints
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable, got {type(callback).__name__}")
    if x0 is not None:
        x0 = real_array(x0, "x0", ProblemError)
        if x0.shape != problem.shape:
            raise ProblemError(f"x0 must have shape {problem.shape} (nely, nelx), got {x0.shape}")
        if not np.all(np.isfinite(x0)) or x0.min() < 0 or x0.max() > 1:
            raise ProblemError("x0 values must be finite and in [0, 1]")
    if deflation is not None:
        if not isinstance(deflation, Deflation):
            raise TypeError(f"deflation must be a Deflation, got {type(deflation).__name__}")
        if deflation.designs.shape[1:] != problem.shape:
            raise ProblemError(
                f"deflation designs must have shape (n, {problem.nely}, {problem.nelx}), got "
                f"{deflation.designs.shape}"
            )
    if backend == "torch":
        why = torch_unsupported(problem.settings)
        if why is None and x0 is not None:
            why = "the torch backend starts from the uniform design; use the direct one for x0"
        if why is None and deflation is not None:
            why = "the torch backend has no deflation; use the direct one"
        if why is not None:
            raise ProblemError(why)
    warm = x0 is not None or deflation is not None
    route = choose_backend(problem, backend, device, warm_start=warm)
    if threads is None:
        return _run(route, problem, callback, progress, x0, deflation, device, threads)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=threads):
        return _run(route, problem, callback, progress, x0, deflation, device, threads)


def _run(route, problem, callback, progress, x0, deflation, device, threads) -> SolveResult:
    if route == "direct":
        return _solve(problem, callback, progress, x0, deflation)
    from .batched import solve_batch

    hook = None if callback is None else lambda _, info: callback(info)
    [result] = solve_batch(
        [problem], device=device, progress=progress, threads=threads, callback=hook
    )
    return result


def _solve(
    problem: Problem,
    callback: Callable[[IterationInfo], None] | None,
    progress: bool,
    x0: np.ndarray | None,
    deflation: Deflation | None = None,
) -> SolveResult:
    t0 = time.perf_counter()
    s = problem.settings
    nele = problem.nelx * problem.nely
    fe = FEModel(problem, reuse_tol=s.reuse_tol)
    design = DesignMap(problem)
    if x0 is None:
        x = initial_design(design, problem.volfrac)
    else:
        x = design.fix_passive(to_vector(x0))
    target = problem.volfrac * nele
    mma = None
    if s.update_rule == "mma":
        mma = MMA(n=int(design.active.sum()), m=1, xmin=0.0, xmax=1.0, move=s.move)
    c_scale = c_deflate = None
    hist: dict[str, list[float]] = {"compliance": [], "volume": [], "change": []}
    if design.beta is not None:
        hist["beta"] = []
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=s.max_iter, desc=f"SIMP {problem.name}", unit="it", leave=True)
    t1 = time.perf_counter()

    converged, it, beta_age = False, 0, 0
    try:
        while it < s.max_iter:
            it += 1
            beta_age += 1
            c, dc, xphys = objective(x, fe, design, s.penal)  # steps 1-4
            if deflation is not None:  # c + c_1 P(x^): the penalty in units of the first c
                c_deflate = c_deflate or c
                dc = dc + c_deflate * design.chain(deflation.gradient(xphys))
            dv = design.volume_gradient()
            if design.kind == "sensitivity":
                dc = design.filter_sensitivity(x, dc)
            # 5. design update
            if mma is None:
                xnew = _oc_update(x, dc, dv, s.move, design._volume, target, design.fix_passive)
            else:
                act = design.active
                c_scale = c_scale or c  # objective scaled to start at 1 (Svanberg's advice)
                g = np.array([xphys.sum() / target - 1.0])
                xnew = x.copy()
                xnew[act] = mma.update(
                    x[act], c / c_scale, dc[act] / c_scale, g, (dv[act] / target)[None, :]
                )
            # 6. convergence and continuation
            change = float(np.max(np.abs(xnew - x)))
            x = xnew
            volume = float(xphys.mean())
            hist["compliance"].append(c)
            hist["volume"].append(volume)
            hist["change"].append(change)
            if design.beta is not None:
                hist["beta"].append(design.beta)
            if bar is not None:
                bar.set_postfix(
                    c=f"{c:.4g}", vol=f"{volume:.3f}", ch=f"{change:.3f}", refresh=False
                )
                bar.update()
            if callback is not None:
                callback(IterationInfo(it, c, volume, change, design.beta))
            if design.beta is not None and design.beta < s.beta_max:
                if beta_age >= s.beta_every or change <= s.tol:
                    design.beta = min(2.0 * design.beta, s.beta_max)
                    beta_age = 0
                continue
            if change <= s.tol or compliance_settled(hist["compliance"], s.ctol):
                converged = True
                break
    finally:
        if bar is not None:
            bar.total = bar.n
            bar.refresh()
            bar.close()
    if not fe.last_solve_exact:  # the figure reported is always an exact solve's
        young = simp_modulus(xphys, s.penal)
        c = float(young @ fe.element_energy(fe.solve(young, exact=True)))
    t2 = time.perf_counter()
    return SolveResult(
        density=to_field(xphys, problem.nely, problem.nelx).copy(),
        compliance=c,
        volume=volume,
        iterations=it,
        converged=converged,
        history={k: np.asarray(v) for k, v in hist.items()},
        linear_solver=fe.linear_solver_name,
        seconds=t2 - t1,
        setup_seconds=t1 - t0,
        problem=problem,
        factorizations=fe.factorizations,
        reuse_tol=fe.reuse_tol,
    )


def compliance(density: np.ndarray, problem: Problem, *, penal: float | None = None) -> float:
    """FE compliance sum_k f_k^T u_k of a given density field (nely, nelx) on ``problem``.

    Moduli follow the SIMP interpolation with ``penal`` (default: the problem's); a 0/1 design
    gets the same value for any penalty. This is the scorer the rest of the package uses.
    """
    check_problem(problem)
    if penal is not None and not 1 <= _finite_number("penal", penal) <= MAX_PENAL:
        raise ProblemError(
            f"penal must be in [1, {MAX_PENAL:g}] (None: the problem's), got {penal!r}"
        )
    rho = real_array(density, "density", ProblemError)
    if rho.shape != problem.shape:
        raise ProblemError(f"density must have shape {problem.shape} (nely, nelx), got {rho.shape}")
    check_unit_range(rho, "density", ProblemError)
    fe = FEModel(problem)
    u = fe.solve(simp_modulus(to_vector(rho), problem.settings.penal if penal is None else penal))
    return fe.compliance(u)
