"""Batched SIMP and differentiable compliance in PyTorch (CPU or GPU), on the multigrid FE.

    from topovae.solvers import preset
    from topovae.solvers.batched import compliance, solve_batch

    results = solve_batch([preset("mbb", 64, 32, vf) for vf in (0.3, 0.4, 0.5)], device="auto")
    c = compliance(rho, problems)          # (B,) tensor; c.sum().backward() gives d c / d rho

A batch holds problems on one grid with the same SIMP settings (filter, radius, penalty, move,
tolerance); loads, supports, passive regions and volume fractions differ freely. Each problem
follows the same steps as `topovae.solvers.solve` (see its module docstring) and stops on its own
criterion; converged problems leave the batch, so the batch shrinks as it goes.
"""

from __future__ import annotations

import contextlib
import functools
import math
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .._backend import torch_unsupported
from .._fe import E0, EMIN, grid_fe, simp_modulus, to_field, to_vector
from .._filters import cone_kernel
from .._problem import Problem, ProblemError
from .._simp import IterationInfo, SolveResult, compliance_settled
from ._multigrid import GridHierarchy, MultigridPCG, element_energy, element_ke


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """ "auto" -> CUDA when available, else CPU; "cuda" without a GPU is an error."""
    if isinstance(device, torch.device):
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ProblemError(f"device {str(device)!r} asked for, but no CUDA GPU is available")
        return device
    if not isinstance(device, str):
        raise ProblemError(
            f"device must be 'auto', 'cpu', 'cuda', 'cuda:N' or a torch.device, got {device!r}"
        )
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise ProblemError(f"unknown device {device!r}; choose one of: auto, cpu, cuda")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ProblemError(f"device {device!r} asked for, but no CUDA GPU is available")
    return torch.device(device)


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Temporarily set torch's intra-op threads (None: leave them)."""
    if n is None:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


@functools.lru_cache(maxsize=16)
def grid_hierarchy(nely: int, nelx: int, device: torch.device, dtype: torch.dtype) -> GridHierarchy:
    return GridHierarchy(nely, nelx, device, dtype)


class ConvFilter:
    """The cone filter of top88 as a 2-D convolution with zero padding: (B, ny, nx) -> same."""

    def __init__(self, rmin: float, nely: int, nelx: int, device, dtype) -> None:
        k = torch.as_tensor(cone_kernel(rmin), device=device, dtype=dtype)
        self.kernel = k[None, None]
        self.pad = (k.shape[0] - 1) // 2
        self.hs = self(torch.ones(1, nely, nelx, device=device, dtype=dtype))

    def __call__(self, v: torch.Tensor) -> torch.Tensor:
        out = torch.nn.functional.conv2d(v[:, None], self.kernel, padding=self.pad)
        return out[:, 0]


@dataclass
class ProblemBatch:
    """Tensors of a batch of problems on one grid (see the module docstring)."""

    problems: list[Problem]
    free: torch.Tensor  # (B, 2, Ny, Nx) 0/1
    forces: torch.Tensor  # (B, C, 2, Ny, Nx), zero-padded to the largest number of load cases
    solid: torch.Tensor  # (B, ny, nx) bool
    void: torch.Tensor  # (B, ny, nx) bool
    volfrac: torch.Tensor  # (B,)

    @classmethod
    def build(cls, problems: Sequence[Problem], device, dtype) -> ProblemBatch:
        problems = list(problems)
        if not problems:
            raise ProblemError("the batch holds no problem")
        first = problems[0]
        for p in problems:
            if not isinstance(p, Problem):
                raise ProblemError(f"expected Problem values, got {type(p).__name__}")
            if p.shape != first.shape:
                raise ProblemError(
                    f"a batch needs one grid: got {p.nelx}x{p.nely} and {first.nelx}x{first.nely}"
                )
        c = max(p.ncases for p in problems)
        forces = np.zeros((len(problems), c, 2, first.nely + 1, first.nelx + 1))
        for b, p in enumerate(problems):
            forces[b, : p.ncases] = p.loads
        t = functools.partial(torch.as_tensor, device=device)
        free = np.stack([~np.stack([p.fixed_x, p.fixed_y]) for p in problems])
        return cls(
            problems=problems,
            free=t(free, dtype=dtype),
            forces=t(forces, dtype=dtype),
            solid=t(np.stack([p.passive_solid for p in problems])),
            void=t(np.stack([p.passive_void for p in problems])),
            volfrac=t([p.volfrac for p in problems], dtype=dtype),
        )


class BatchedFE:
    """Displacements of a batch for given densities, by multigrid-preconditioned CG.

    ``precond_dtype``: dtype of the multigrid V-cycle (default float32: half the time of a
    float64 cycle, and CG in the batch's dtype still converges to its tolerance). Problems that
    do not converge with it (a float32 cycle can break down on extreme contrast) get up to
    ``max_iter`` more iterations with the cycle in CG's dtype; `last_iterations` counts both.
    """

    def __init__(
        self,
        batch: ProblemBatch,
        tol: float = 1e-8,
        max_iter: int = 1000,
        precond_dtype: torch.dtype = torch.float32,
    ) -> None:
        self.batch, self.tol, self.max_iter = batch, tol, max_iter
        ny, nx = batch.free.shape[-2] - 1, batch.free.shape[-1] - 1
        self.grid = grid_hierarchy(ny, nx, batch.free.device, precond_dtype)
        self.last_iterations: torch.Tensor | None = None

    def solve(
        self,
        young: torch.Tensor,
        x0: torch.Tensor | None = None,
        index: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """(B', ny, nx) moduli of the problems ``index`` (default all) -> (B', C, 2, Ny, Nx)."""
        free, forces = self.batch.free, self.batch.forces
        if index is not None:
            free, forces = free[index], forces[index]
        solver = MultigridPCG(self.grid, young, free)
        u, its, converged = solver.solve(forces, x0=x0, tol=self.tol, max_iter=self.max_iter)
        if not bool(converged.all()) and self.grid.dtype != young.dtype:
            # a float32 cycle can break down on extreme contrast (large void regions at E_min):
            # those problems go on from their iterate with the cycle in CG's own dtype
            redo = (~converged).any(dim=1).nonzero().flatten()
            ny, nx = free.shape[-2] - 1, free.shape[-1] - 1
            exact = grid_hierarchy(ny, nx, free.device, young.dtype)
            u2, its2, conv2 = MultigridPCG(exact, young[redo], free[redo]).solve(
                forces[redo], x0=u[redo], tol=self.tol, max_iter=self.max_iter
            )
            u, its, converged = u.clone(), its.clone(), converged.clone()
            u[redo], its[redo], converged[redo] = u2, its[redo] + its2, conv2
        self.last_iterations = its
        if not bool(converged.all()):
            bad = int((~converged).sum())
            warnings.warn(
                f"CG did not reach tol {self.tol:g} in {self.max_iter} iterations for {bad} "
                "(problem, load case) pairs; their displacements are inaccurate",
                RuntimeWarning,
                stacklevel=2,
            )
        return u


class _FECompliance(torch.autograd.Function):
    """c_b = sum_k f_bk . u_bk with K(E(x^)) u = f; adjoint gradient (self-adjoint: lambda = -u):
    dc/dx^_e = -p x^_e^(p-1) (E0 - Emin) u_e^T k0 u_e, summed over load cases."""

    @staticmethod
    def forward(ctx, xphys: torch.Tensor, fe: BatchedFE, penal: float) -> torch.Tensor:
        young = EMIN + xphys.detach() ** penal * (E0 - EMIN)
        u = fe.solve(young)
        ctx.save_for_backward(xphys.detach(), u)
        ctx.penal = penal
        return (fe.batch.forces * u).sum(dim=(1, 2, 3, 4))

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        xphys, u = ctx.saved_tensors
        p = ctx.penal
        ke = element_ke(u.device, u.dtype)
        dc = -p * (E0 - EMIN) * xphys ** (p - 1) * element_energy(u, ke)
        return grad[:, None, None] * dc, None, None


class _DirectCompliance(torch.autograd.Function):
    """`_FECompliance` by the sparse direct solver on the CPU (`GridFE`), one design at a time;
    a design with non-finite densities gets a NaN compliance (as the CG would give)."""

    @staticmethod
    def forward(ctx, xphys: torch.Tensor, problems: Sequence[Problem], penal: float):
        x = xphys.detach().to("cpu", torch.float64).numpy()
        nely, nelx = x.shape[1:]
        fe = grid_fe(nelx, nely, problems[0].settings.linear_solver, threading.get_ident())
        c = np.full(len(problems), np.nan)
        energy = np.zeros_like(x)
        for b, p in enumerate(problems):
            if not np.isfinite(x[b]).all():
                continue
            forces = p.force_matrix()
            u = fe.solve(simp_modulus(to_vector(x[b]), penal), p.fixed_dofs(), forces)
            c[b] = np.einsum("dc,dc->", forces, u)
            energy[b] = to_field(fe.element_energy(u), nely, nelx)
        ctx.save_for_backward(xphys.detach(), torch.as_tensor(energy).to(xphys))
        ctx.penal = penal
        return torch.as_tensor(c).to(xphys)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        xphys, energy = ctx.saved_tensors
        p = ctx.penal
        dc = -p * (E0 - EMIN) * xphys ** (p - 1) * energy
        return grad[:, None, None] * dc, None, None


def _check_same_settings(problems: Sequence[Problem]) -> None:
    s0 = problems[0].settings
    for p in problems[1:]:
        if p.settings != s0:
            raise ProblemError(
                f"a batch needs the same SIMP settings for every problem; got {p.settings} and {s0}"
            )


def physical_density(
    x: torch.Tensor, batch: ProblemBatch, filt: ConvFilter | None, kind: str, beta: float, eta
) -> torch.Tensor:
    """Design variables (B, ny, nx) -> physical densities (differentiable)."""
    if kind != "sensitivity":
        x = filt(x) / filt.hs
        if kind == "heaviside":
            t = math.tanh(beta * eta)
            x = (t + torch.tanh(beta * (x - eta))) / (t + math.tanh(beta * (1 - eta)))
    x = torch.where(batch.solid, torch.ones_like(x), x)
    return torch.where(batch.void, torch.zeros_like(x), x)


def compliance(
    density: torch.Tensor,
    problems: Problem | Sequence[Problem],
    *,
    physical: bool = True,
    beta: float | None = None,
    tol: float = 1e-10,
    max_iter: int = 2000,
    solver: str = "auto",
) -> torch.Tensor:
    """Differentiable FE compliance of a batch of designs, (B, nely, nelx) -> (B,).

    With ``physical`` the densities are first mapped as the problems' settings say (density
    filter, Heaviside projection with ``beta`` (default beta_max), passive regions); otherwise
    they are used as they are. Gradients flow through that map by autograd and through the FE
    solve by the adjoint formula, not through the solver's iterations. Device and dtype are the
    density's. ``solver``: "multigrid" (the batched multigrid-preconditioned CG to relative
    residual ``tol``, at most ``max_iter`` iterations), "direct" (one sparse Cholesky
    factorisation per design on the CPU, `GridFE`; exact, ``tol`` unused) or "auto": direct for
    a density on the CPU (at 32x32, 16 designs of 16 problems: 28 ms against 110-800 ms),
    multigrid on a GPU.
    """
    if solver not in ("auto", "direct", "multigrid"):
        raise ProblemError(f"unknown solver {solver!r}; choose one of: auto, direct, multigrid")
    if isinstance(problems, Problem):
        problems = [problems]
    problems = list(problems)
    if not problems:
        raise ProblemError("the batch holds no problem")
    squeeze = density.dim() == 2
    if squeeze:
        density = density[None]
    if density.shape != (len(problems), *problems[0].shape):
        raise ProblemError(
            f"density must have shape (B, nely, nelx) = {(len(problems), *problems[0].shape)}, "
            f"got {tuple(density.shape)}"
        )
    _check_same_settings(problems)
    s = problems[0].settings
    batch = ProblemBatch.build(problems, density.device, density.dtype)
    if physical:
        filt = ConvFilter(s.rmin, *problems[0].shape, density.device, density.dtype)
        xphys = physical_density(
            density, batch, filt, s.filter, s.beta_max if beta is None else beta, s.eta
        )
    else:
        xphys = density
    if solver == "direct" or (solver == "auto" and density.device.type == "cpu"):
        c = _DirectCompliance.apply(xphys, problems, s.penal)
    else:
        c = _FECompliance.apply(xphys, BatchedFE(batch, tol=tol, max_iter=max_iter), s.penal)
    return c[0] if squeeze else c


def solve_batch(
    problems: Sequence[Problem],
    *,
    device: str | torch.device = "auto",
    dtype: torch.dtype = torch.float64,
    cg_tol: float = 1e-5,
    progress: bool = False,
    threads: int | None = None,
    callback: Callable[[int, IterationInfo], None] | None = None,
) -> list[SolveResult]:
    """SIMP with OC for a batch of problems at once; one `SolveResult` per problem.

    ``cg_tol`` is the relative residual at which CG stops: at 1e-5 (warm-started) the results
    match the direct solver's to ~1e-5 in compliance and <1e-2 in density on the presets, at
    ~60 % of the CG iterations of 1e-8. ``seconds`` of each result is the
    batch's wall time (the problems were solved together). ``threads`` sets torch's CPU threads.
    ``callback(b, info)`` is called after each iteration for every problem b (its index in
    ``problems``) still in the batch, with an `IterationInfo` as `solve` gives it.
    """
    problems = list(problems)
    if not problems:
        raise ProblemError("the batch holds no problem")
    _check_same_settings(problems)
    why = torch_unsupported(problems[0].settings)
    if why is not None:
        raise ProblemError(why)
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable, got {type(callback).__name__}")
    dev = resolve_device(device)
    with torch_threads(threads), torch.no_grad():
        return _solve_batch(problems, dev, dtype, cg_tol, progress, callback)


def _solve_batch(problems, dev, dtype, cg_tol, progress, callback) -> list[SolveResult]:
    t0 = time.perf_counter()
    s = problems[0].settings
    nely, nelx = problems[0].shape
    n_el = nely * nelx
    batch = ProblemBatch.build(problems, dev, dtype)
    fe = BatchedFE(batch, tol=cg_tol)
    filt = ConvFilter(s.rmin, nely, nelx, dev, dtype)
    nb = len(problems)
    active_el = (~(batch.solid | batch.void)).to(dtype)
    n_solid = batch.solid.sum(dim=(1, 2)).to(dtype)
    target = batch.volfrac * n_el
    # initial design: uniform on the design domain, total volume volfrac * n
    x0 = (target - n_solid) / active_el.sum(dim=(1, 2))
    x = torch.where(
        batch.solid, 1.0, torch.where(batch.void, 0.0, x0[:, None, None].expand(-1, nely, nelx))
    )
    x = x.to(dtype)
    # d sum(x^) / dx for the density filter (constant): H (active / Hs)
    vol_weights = filt(active_el / filt.hs) if s.filter == "density" else active_el
    u_prev = torch.zeros_like(batch.forces)
    hist = [{"compliance": [], "volume": [], "change": [], "cg_iterations": []} for _ in range(nb)]
    final: list[dict | None] = [None] * nb
    todo = torch.arange(nb, device=dev)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=s.max_iter, desc=f"SIMP x{nb} ({dev.type})", unit="it")
    t1 = time.perf_counter()
    it = 0
    try:
        while todo.numel() and it < s.max_iter:
            it += 1
            sub = ProblemBatch(
                [],
                batch.free[todo],
                batch.forces[todo],
                batch.solid[todo],
                batch.void[todo],
                batch.volfrac[todo],
            )
            xs = x[todo]
            # 1. physical densities
            xphys = physical_density(xs, sub, filt, s.filter, 0.0, s.eta)
            # 2. penalised moduli and FE solve (warm start from the last displacements)
            young = EMIN + xphys**s.penal * (E0 - EMIN)
            u = fe.solve(young, x0=u_prev[todo], index=todo)
            u_prev[todo] = u
            # 3. compliance and its sensitivity w.r.t. x^
            ce = element_energy(u, element_ke(dev, dtype))
            c = (young * ce).sum(dim=(1, 2))
            dc = -s.penal * (E0 - EMIN) * xphys ** (s.penal - 1) * ce
            # 4. chain rule / sensitivity filter
            if s.filter == "density":
                dc = filt(dc * active_el[todo] / filt.hs)
            else:
                dc = filt(xs * dc) / filt.hs / xs.clamp_min(1e-3)
            dv = vol_weights[todo]
            # 5. OC update, top88's bisection run per problem
            xnew = _oc_batched(xs, dc, dv, s.move, sub, target[todo], n_solid[todo], s.filter)
            # 6. convergence: each problem on its own
            change = (xnew - xs).abs().flatten(1).amax(1)
            x[todo] = xnew
            volume = xphys.mean(dim=(1, 2))
            cg_its = fe.last_iterations.amax(1)
            done = change <= s.tol
            rows = zip(
                todo.tolist(),
                c.tolist(),
                volume.tolist(),
                change.tolist(),
                cg_its.tolist(),
                done.tolist(),
                strict=True,
            )
            settled = []
            for k, (b, cb, vb, chb, cgb, db) in enumerate(rows):
                h = hist[b]
                h["compliance"].append(cb)
                h["volume"].append(vb)
                h["change"].append(chb)
                h["cg_iterations"].append(cgb)
                db = db or compliance_settled(h["compliance"], s.ctol)
                settled.append(db)
                if callback is not None:
                    callback(b, IterationInfo(it, cb, vb, chb, None))
                if db or it == s.max_iter:
                    final[b] = {"density": xphys[k], "iterations": it, "converged": db}
            done = torch.tensor(settled, dtype=torch.bool, device=dev)
            if bar is not None:
                bar.update()
                bar.set_postfix(done=f"{nb - todo.numel() + int(done.sum())}/{nb}", refresh=False)
            todo = todo[~done]
    finally:
        if bar is not None:
            bar.total = bar.n
            bar.refresh()
            bar.close()
    t2 = time.perf_counter()
    name = f"mg-pcg (torch {dev.type}, {str(dtype).replace('torch.', '')})"
    results = []
    for b, p in enumerate(problems):
        f, h = final[b], hist[b]
        results.append(
            SolveResult(
                density=f["density"].cpu().numpy().copy(),
                compliance=h["compliance"][-1],
                volume=h["volume"][-1],
                iterations=f["iterations"],
                converged=f["converged"],
                history={k: np.asarray(v) for k, v in h.items()},
                linear_solver=name,
                seconds=t2 - t1,
                setup_seconds=t1 - t0,
                problem=p,
            )
        )
    return results


def _oc_batched(x, dc, dv, move, sub, target, n_solid, kind) -> torch.Tensor:
    """top88's OC bisection, one independent bisection per problem (eq. (7)-(8))."""
    b = x.shape[0]
    ratio = torch.where(dv > 0, (-dc).clamp_min(0) / torch.where(dv > 0, dv, 1.0), 0.0)
    lo, hi = (x - move).clamp_min(0.0), (x + move).clamp_max(1.0)
    l1 = x.new_zeros(b)
    l2 = x.new_full((b,), 1e9)
    going = torch.ones(b, dtype=torch.bool, device=x.device)
    keep = x.clone()
    while bool(going.any()):
        lmid = 0.5 * (l1 + l2)
        xnew = torch.minimum(torch.maximum(x * torch.sqrt(ratio / lmid[:, None, None]), lo), hi)
        xnew = torch.where(sub.solid, 1.0, torch.where(sub.void, 0.0, xnew))
        if kind == "density":
            vol = (dv * xnew).sum(dim=(1, 2)) + n_solid
        else:
            vol = xnew.sum(dim=(1, 2))
        keep = torch.where(going[:, None, None], xnew, keep)
        over = vol > target
        l1 = torch.where(going & over, lmid, l1)
        l2 = torch.where(going & ~over, lmid, l2)
        going = going & ((l2 - l1) / (l1 + l2) > 1e-3)
    return keep
