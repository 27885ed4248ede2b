"""Several distinct near-optimal designs of one problem, and what "distinct" means.

    from topovae.solvers import find_alternatives, preset
    designs = find_alternatives(preset("mbb", 32, 32, 0.4), k=6, seed=0)   # best first

Minimum-compliance problems have several local optima close in compliance (other member
layouts, more or fewer holes); SIMP from its uniform start finds one. `find_alternatives` finds
more: after the usual solve, each attempt starts SIMP from a smooth random density field with a
larger filter radius, with a `Deflation` penalty that pushes it away from the designs kept so
far, then re-solves the result under the problem's own settings from there, without the penalty,
so that every design returned is a plain SIMP local optimum. A design is kept when its compliance
is within ``tol`` of the best one found and it is `distinct` from every design kept before.

Distinct designs (used everywhere in topovae: datasets, metrics, the alternatives workflow): the
binarised solids (`solid`: the round(VF n) densest elements, passive regions imposed) differ by
a Jaccard distance 1 - IoU >= `DISTINCT` (0.15). Two designs of volume fraction 0.4 that differ
in 10 % of the elements are 0.22 apart; the small shifts of one topology that a converged SIMP
run gives from another start stay below 0.1.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.fft

from ._deflation import Deflation
from ._problem import Problem, ProblemError, _finite_number, check_problem
from ._simp import SolveResult, solve

DISTINCT = 0.15  # 1 - IoU of binarised solids at and above which two designs are distinct
MAX_ALTERNATIVES = 64


def solid(density: np.ndarray, problem: Problem) -> np.ndarray:
    """(nely, nelx) bool: the design's binarised solid at the problem's volume fraction: the
    passive solid, then the densest design elements (ties by position) up to round(VF n)."""
    return binarized(density, problem.volfrac, problem.passive_solid, problem.passive_void)


def binarized(
    density: np.ndarray, volfrac: float, passive_solid: np.ndarray, passive_void: np.ndarray
) -> np.ndarray:
    """`solid` from the problem's parts (for files read row by row)."""
    rho = np.clip(np.asarray(density, dtype=np.float64), 0.0, 1.0)
    passive_solid = np.asarray(passive_solid, bool)
    free = ~(passive_solid | np.asarray(passive_void, bool))
    n_solid = round(volfrac * rho.size)
    k = max(0, min(int(free.sum()), n_solid - int(passive_solid.sum())))
    out = passive_solid.copy()
    values = np.where(free, rho, -1.0).ravel()
    out.ravel()[np.argsort(-values, kind="stable")[:k]] = True  # C order, as ravel reads
    return out


def iou_distance(a: np.ndarray, b: np.ndarray) -> float:
    """1 - |a & b| / |a | b| of two boolean solids (0 for two empty ones)."""
    union = np.logical_or(a, b).sum()
    return float(1.0 - np.logical_and(a, b).sum() / union) if union else 0.0


def pairwise_distances(solids: np.ndarray, others: np.ndarray | None = None) -> np.ndarray:
    """(n, m) matrix of 1 - IoU between boolean solids (n, H, W) and (m, H, W) (default: the
    same set)."""
    a = np.asarray(solids, dtype=bool).reshape(len(solids), -1).astype(np.float64)
    b = a if others is None else np.asarray(others, bool).reshape(len(others), -1).astype(float)
    inter = a @ b.T
    union = a.sum(1)[:, None] + b.sum(1)[None, :] - inter
    return np.where(union > 0, 1.0 - inter / np.maximum(union, 1.0), 0.0)


def distinct(solids: np.ndarray, threshold: float = DISTINCT) -> list[int]:
    """Indices of a greedy set of mutually distinct solids, taken in the order given (give them
    best first): each is kept when it is >= ``threshold`` from every one kept before."""
    d = pairwise_distances(solids)
    kept: list[int] = []
    for i in range(len(d)):
        if all(d[i, j] >= threshold for j in kept):
            kept.append(i)
    return kept


def random_start(problem: Problem, rng: np.random.Generator, length: float) -> np.ndarray:
    """A smooth random density field (nely, nelx) in (0, 1) whose mean over the design domain
    gives the problem's volume fraction: white noise low-passed by a Gaussian of ``length``
    elements, squashed by a logistic whose offset meets the volume."""
    h, w = problem.shape
    noise = rng.standard_normal((h, w))
    ky = scipy.fft.fftfreq(h)[:, None]
    kx = scipy.fft.rfftfreq(w)[None, :]
    kernel = np.exp(-2.0 * (np.pi * length) ** 2 * (kx**2 + ky**2))
    g = scipy.fft.irfft2(scipy.fft.rfft2(noise) * kernel, s=(h, w))
    g = (g - g.mean()) / (g.std() + 1e-12)
    free = ~(problem.passive_solid | problem.passive_void)
    target = problem.volfrac * g.size - problem.passive_solid.sum()
    lo, hi = -20.0, 20.0
    for _ in range(60):  # bisection on the offset: sum of the free densities = target
        mid = 0.5 * (lo + hi)
        if (1.0 / (1.0 + np.exp(-(3.0 * g[free] + mid)))).sum() > target:
            hi = mid
        else:
            lo = mid
    x = 1.0 / (1.0 + np.exp(-(3.0 * g + 0.5 * (lo + hi))))
    return np.where(problem.passive_solid, 1.0, np.where(problem.passive_void, 0.0, x))


@dataclass(frozen=True)
class AlternativeSearch:
    """How `find_alternatives` looks for designs.

    attempts: restarts after the uniform-start solve (default 2k).
    tol: keep designs with compliance <= (1 + tol) x the best found.
    min_distance: 1 - IoU from every kept design (`DISTINCT` by default).
    deflate: push each restart away from the kept designs (`Deflation` with gamma, delta).
    radius: the restarts' filter radius is rmin x U(radius) (larger radii reach other layouts).
    length: correlation length of the random start, as a share of the smaller grid side.
    explore_iter, explore_ctol: the restart's iteration cap and compliance stopping rule (it only
        has to reach another basin; the re-solve finishes the design).
    ctol: the re-solve's compliance stopping rule (the problem's own when larger): 3e-4 keeps
        labels a median 0.08 % above the fully converged design (benchmarks/bench_labels.py).
    """

    attempts: int | None = None
    tol: float = 0.05
    min_distance: float = DISTINCT
    deflate: bool = True
    gamma: float = 0.1
    delta: float = 1.0
    radius: tuple[float, float] = (1.0, 2.0)
    length: tuple[float, float] = (0.05, 0.2)
    explore_iter: int = 80
    explore_ctol: float = 1e-3
    ctol: float = 3e-4

    def __post_init__(self) -> None:
        if self.attempts is not None and (
            isinstance(self.attempts, bool)
            or not isinstance(self.attempts, int | np.integer)
            or not 0 <= self.attempts <= 16 * MAX_ALTERNATIVES
        ):
            raise ProblemError(
                f"attempts must be None or an integer in 0..{16 * MAX_ALTERNATIVES}, "
                f"got {self.attempts!r}"
            )
        if not 0 <= _finite_number("tol", self.tol) <= 10:
            raise ProblemError(f"tol must be in [0, 10] (a relative compliance), got {self.tol}")
        if not 0 <= _finite_number("min_distance", self.min_distance) <= 1:
            raise ProblemError(f"min_distance must be in [0, 1] (1 - IoU), got {self.min_distance}")
        for name, (lo, hi), low in (("radius", self.radius, 1.0), ("length", self.length, 0.0)):
            if not (low <= _finite_number(name, lo) <= _finite_number(name, hi)):
                raise ProblemError(f"{name} must be a (low, high) pair with {low} <= low <= high")
        Deflation(np.zeros((1, 1, 1)), self.gamma, self.delta)  # checks gamma and delta
        for name in ("explore_ctol", "ctol"):
            if not 0 <= _finite_number(name, getattr(self, name)) < 1:
                raise ProblemError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        it = self.explore_iter
        if isinstance(it, bool) or not isinstance(it, int | np.integer) or not 1 <= it <= 10_000:
            raise ProblemError(f"explore_iter must be an integer in 1..10000, got {it!r}")


def find_alternatives(
    problem: Problem,
    k: int,
    *,
    seed: int = 0,
    search: AlternativeSearch | None = None,
    threads: int | None = 1,
    callback: Callable[[int, SolveResult, bool], None] | None = None,
) -> list[SolveResult]:
    """Up to ``k`` distinct near-optimal designs of ``problem``, best first (module docstring).

    The first attempt is SIMP from the uniform start under the problem's settings; each other
    attempt draws its start and radius from ``seed`` and its number, so the result is a pure
    function of (problem, k, seed, search). ``callback(attempt, result, kept)`` sees each
    re-solved design.
    """
    check_problem(problem)
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or not 1 <= k <= MAX_ALTERNATIVES:
        raise ProblemError(f"k must be an integer in 1..{MAX_ALTERNATIVES}, got {k!r}")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ProblemError(f"seed must be an integer >= 0, got {seed!r}")
    search = search or AlternativeSearch()
    if not isinstance(search, AlternativeSearch):
        raise TypeError(f"search must be an AlternativeSearch, got {type(search).__name__}")
    attempts = 2 * (k - 1) if search.attempts is None else search.attempts
    s = problem.settings
    finish = problem.with_settings(ctol=max(s.ctol, search.ctol))
    found = [solve(problem, threads=threads, backend="direct")]
    solids = [solid(found[0].density, problem)]
    if callback is not None:
        callback(0, found[0], True)
    for attempt in range(1, attempts + 1):
        kept = _kept(found, solids, search)
        if len(kept) >= k:
            break
        rng = np.random.default_rng([int(seed), attempt])
        side = min(problem.shape)
        x0 = random_start(problem, rng, rng.uniform(*search.length) * side)
        explore = problem.with_settings(
            rmin=s.rmin * rng.uniform(*search.radius), ctol=search.explore_ctol,
            max_iter=search.explore_iter,
        )  # fmt: skip
        deflation = None
        if search.deflate:
            designs = np.stack([found[i].density for i in kept])
            deflation = Deflation(designs, search.gamma, search.delta)
        first = solve(explore, x0=x0, deflation=deflation, threads=threads, backend="direct")
        result = solve(finish, x0=first.density, threads=threads, backend="direct")
        found.append(result)
        solids.append(solid(result.density, problem))
        if callback is not None:
            callback(attempt, result, len(found) - 1 in _kept(found, solids, search))
    return [found[i] for i in _kept(found, solids, search)[:k]]


def _kept(found: list[SolveResult], solids: list[np.ndarray], search: AlternativeSearch):
    """Indices of the designs kept: best first, within tol of the best, mutually distinct."""
    c = np.array([r.compliance for r in found])
    order = [int(i) for i in np.argsort(c, kind="stable") if c[i] <= (1 + search.tol) * c.min()]
    chosen = distinct(np.stack([solids[i] for i in order]), search.min_distance)
    return [order[i] for i in chosen]
