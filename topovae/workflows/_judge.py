"""The judge: one scoring of designs, used by datasets, search, evaluation and plots.

    from topovae.workflows import score
    s = score(designs, problems, reference=simp_designs)   # dict of (B,) arrays
    s["compliance"], s["ce"], s["floating"], ...

Per design (density (H, W) in [0, 1] with the problem's passive regions imposed):
    compliance          FE compliance of the design as given (SIMP moduli, the problem's penalty)
    compliance_binary   ... of its binarised version: the round(VF* n) highest-density elements
                        solid (the threshold that meets the volume fraction), the rest void
    volume, vfe         volume fraction and its error |VF - VF*| / VF*
    floating            share of the binarised solid outside every component that touches both a
                        loaded and a supported node (edge connectivity: see solvers._connectivity)
    bare_loads          loaded nodes that touch no solid element of the binarised design
    greyness            Mnd = 4 mean(rho (1 - rho)) over the design domain (0 = black and white)
    ce, ce_binary       C / C_ref - 1 against the reference designs (NaN without ``reference``)

Compliance comes from the sparse-direct FE on the CPU (one factorisation per design, the FE model
built once per problem) or, with ``device="cuda"``, from the batched multigrid FE on the GPU.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from .._checks import check_unit_range, real_array, type_name
from ..solvers import FEModel, Problem, solid
from ..solvers._connectivity import bare_loads, load_carrying
from ..solvers._fe import simp_modulus, to_field, to_vector
from ..solvers._problem import check_problem

SCORE_KEYS = (
    "compliance", "compliance_binary", "volume", "vfe", "floating", "bare_loads", "greyness",
    "ce", "ce_binary",
)  # fmt: skip


class JudgeError(ValueError):
    """Designs and problems that cannot be judged together."""


def impose_passive(density: np.ndarray, problem: Problem) -> np.ndarray:
    """The density clipped to [0, 1] with the problem's passive solid 1 and passive void 0."""
    rho = np.clip(np.asarray(density, dtype=np.float64), 0.0, 1.0)
    return np.where(problem.passive_solid, 1.0, np.where(problem.passive_void, 0.0, rho))


def binarize(density: np.ndarray, problem: Problem) -> np.ndarray:
    """0/1 design with the problem's volume fraction: passive solid, then the highest-density
    design elements (ties by position) until round(VF* n) elements are solid."""
    check_problem(problem)
    d = real_array(density, "density", JudgeError)  # values outside [0, 1] are clipped
    if d.shape != problem.shape:
        raise JudgeError(
            f"binarize takes one {problem.nelx}x{problem.nely} design for problem "
            f"{problem.name!r}; got shape {d.shape}"
        )
    if not np.isfinite(d).all():
        raise JudgeError("density must be finite")
    return solid(d, problem).astype(np.float64)


class ComplianceOracle:
    """Compliance of many designs on a few problems, reusing each problem's FE model.

    ``device``: None or "cpu" for the sparse-direct FE; a CUDA device for the batched multigrid
    FE (float64, tight tolerance). `gradient` gives d c / d rho for the latent search.
    """

    def __init__(self, device: str | None = None) -> None:
        if device is not None:
            from ..solvers import ProblemError
            from ..solvers.batched import resolve_device

            try:
                device = resolve_device(device)
            except ProblemError as e:
                raise JudgeError(f"device: {e}") from None
        self.device = None if device is None or device.type == "cpu" else device
        self._models: dict[int, tuple[Problem, FEModel]] = {}

    def _fe(self, problem: Problem) -> FEModel:
        key = id(problem)
        if key not in self._models:  # the problem is kept too, so its id stays unique
            self._models[key] = (problem, FEModel(problem))
        return self._models[key][1]

    def __call__(self, densities: np.ndarray, problems: Sequence[Problem]) -> np.ndarray:
        """(B, H, W) densities (passive regions already imposed) -> (B,) compliances."""
        densities, problems = _checked(densities, problems)
        if self.device is not None:
            return self._torch(densities, problems, grad=False)[0]
        out = np.empty(len(problems))
        for k, (rho, p) in enumerate(zip(densities, problems, strict=True)):
            fe = self._fe(p)
            out[k] = fe.compliance(fe.solve(simp_modulus(to_vector(rho), p.settings.penal)))
        return out

    def gradient(self, densities: np.ndarray, problems: Sequence[Problem]):
        """(compliances (B,), d c / d rho (B, H, W)) by the adjoint formula."""
        densities, problems = _checked(densities, problems)
        if self.device is not None:
            return self._torch(densities, problems, grad=True)
        from ..solvers import E0, EMIN

        c = np.empty(len(problems))
        dc = np.empty(np.shape(densities))
        for k, (rho, p) in enumerate(zip(densities, problems, strict=True)):
            fe = self._fe(p)
            x = to_vector(rho)
            young = simp_modulus(x, p.settings.penal)
            energy = fe.element_energy(fe.solve(young))
            c[k] = young @ energy
            g = -p.settings.penal * (E0 - EMIN) * x ** (p.settings.penal - 1) * energy
            dc[k] = to_field(g, p.nely, p.nelx)
        return c, dc

    def _torch(self, densities, problems, grad: bool):
        import torch

        from ..solvers.batched import compliance

        x = torch.as_tensor(np.asarray(densities), dtype=torch.float64, device=self.device)
        x.requires_grad_(grad)
        groups: dict[tuple, list[int]] = {}  # the batched FE wants one settings per batch
        for k, p in enumerate(problems):
            groups.setdefault((p.shape, p.settings), []).append(k)
        c = np.empty(len(problems))
        dc = np.zeros(np.shape(densities)) if grad else None
        for rows in groups.values():
            xs = x[rows]
            ck = compliance(xs, [problems[k] for k in rows], physical=False, tol=1e-8)
            c[rows] = ck.detach().cpu().numpy()
            if grad:
                (g,) = torch.autograd.grad(ck.sum(), xs)
                dc[rows] = g.cpu().numpy()
        return (c, dc) if grad else (c, None)


# filters and projections round to 1 + 2e-16: a density this far outside [0, 1] is clipped
RANGE_TOL = 1e-9


def _designs(designs, name: str = "designs") -> np.ndarray:
    """(B, H, W) float64 (one (H, W) design becomes a batch of one), finite and in [0, 1]."""
    d = real_array(designs, name, JudgeError)
    if d.ndim in (1, 3) and len(d) == 0:
        raise JudgeError(f"no {name} to score: the batch is empty")
    d = d[None] if d.ndim == 2 else d
    if d.ndim != 3:
        raise JudgeError(f"{name} must be (B, H, W) or one (H, W) design; got shape {d.shape}")
    check_unit_range(d, name, JudgeError, tol=RANGE_TOL)
    return d


def _problems(problems, n: int) -> list[Problem]:
    """One problem per design (``problems``: one for all, or a sequence)."""
    if isinstance(problems, Problem):
        return [problems] * n
    if isinstance(problems, str) or not isinstance(problems, Iterable):
        raise TypeError(f"problems must be a Problem or a list of them, got {type_name(problems)}")
    problems = list(problems)
    for p in problems:
        check_problem(p, "every entry of problems")
    return problems


def _checked(designs, problems) -> tuple[np.ndarray, list[Problem]]:
    """`_designs`, `_problems` and `_check` in one: what the oracle takes."""
    d = _designs(designs)
    problems = _problems(problems, len(d))
    _check(d, problems)
    return d, problems


def _check(d: np.ndarray, problems: list[Problem]) -> None:
    if len(problems) != d.shape[0]:
        raise JudgeError(
            f"designs must be (B, H, W) with one problem each; got {d.shape} for "
            f"{len(problems)} problem(s)"
        )
    for p in problems:
        if p.shape != d.shape[1:]:
            raise JudgeError(
                f"a {d.shape[2]}x{d.shape[1]} design cannot be judged on the "
                f"{p.nelx}x{p.nely} problem {p.name!r}"
            )


def greyness(density: np.ndarray, problem: Problem) -> float:
    """Mnd = 4 mean(rho (1 - rho)) over the design domain, in [0, 1]."""
    check_problem(problem)
    d = real_array(density, "density", JudgeError)
    if d.shape != problem.shape:
        raise JudgeError(f"density must have shape {problem.shape} (nely, nelx), got {d.shape}")
    check_unit_range(d, "density", JudgeError, tol=1e-9)
    free = ~(problem.passive_solid | problem.passive_void)
    rho = np.clip(d[free], 0.0, 1.0)
    return float(4.0 * np.mean(rho * (1.0 - rho))) if rho.size else 0.0


def score(
    designs: np.ndarray,
    problems: Problem | Sequence[Problem],
    reference: np.ndarray | None = None,
    *,
    oracle: ComplianceOracle | None = None,
) -> dict[str, np.ndarray]:
    """Judge designs (B, H, W) on their problems; see the module docstring for the keys.

    ``problems``: one per design, or one for all. ``reference``: (B, H, W) designs to compare
    with (SIMP's), judged the same way, giving ``ce`` and ``ce_binary``; with one problem for
    all, one (H, W) reference is judged once and serves every design. Pass an ``oracle`` to
    reuse FE models across calls.
    """
    d = _designs(designs)
    problems = _problems(problems, len(d))
    _check(d, problems)
    if reference is not None:  # checked before the designs are judged
        _designs(reference, "reference")
    if oracle is not None and not isinstance(oracle, ComplianceOracle):
        raise TypeError(f"oracle must be a ComplianceOracle or None, got {type(oracle).__name__}")
    oracle = oracle or ComplianceOracle()
    rho = np.stack([impose_passive(x, p) for x, p in zip(d, problems, strict=True)])
    binary = np.stack([binarize(x, p) for x, p in zip(d, problems, strict=True)])
    vf_target = np.array([p.volfrac for p in problems])
    volume = rho.mean(axis=(1, 2))
    floating, bare = np.empty(len(d)), np.empty(len(d))
    for k, (b, p) in enumerate(zip(binary.astype(bool), problems, strict=True)):
        n = b.sum()
        floating[k] = (n - load_carrying(b, p).sum()) / n if n else 1.0
        bare[k] = bare_loads(b, p)
    out = {
        "compliance": oracle(rho, problems),
        "compliance_binary": oracle(binary, problems),
        "volume": volume,
        "vfe": np.abs(volume - vf_target) / vf_target,
        "floating": floating,
        "bare_loads": bare,
        "greyness": np.array([greyness(x, p) for x, p in zip(rho, problems, strict=True)]),
        "ce": np.full(len(d), np.nan),
        "ce_binary": np.full(len(d), np.nan),
    }
    if reference is not None:
        if np.ndim(reference) == 2:  # one reference for one problem: judge it once
            if any(p is not problems[0] for p in problems):
                raise JudgeError("one (H, W) reference needs one problem for every design")
            ref = score(reference, problems[0], oracle=oracle)
        else:
            ref = score(reference, problems, oracle=oracle)
        out["ce"] = out["compliance"] / ref["compliance"] - 1.0
        out["ce_binary"] = out["compliance_binary"] / ref["compliance_binary"] - 1.0
    return out


def ce_text(ce: float) -> str:
    """A compliance error for a label: "+3.2%", or "x1.2e+04" once it is over 1000 %."""
    return f"{100 * ce:+.1f}%" if abs(ce) < 10 else f"x{ce + 1:.2g}"


def caption(s: dict[str, np.ndarray], k: int) -> str:
    """A short one-line label of design ``k``'s score for figures."""
    parts = [f"C={s['compliance'][k]:.4g}"]
    if np.isfinite(s["ce"][k]):
        parts.append(f"CE={ce_text(s['ce'][k])}")
    parts.append(f"VF={s['volume'][k]:.2f}")
    if s["floating"][k] > 0:
        parts.append(f"float={100 * s['floating'][k]:.0f}%")
    return " ".join(parts)
