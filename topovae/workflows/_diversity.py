"""How many distinct good designs a model offers for one problem.

    from topovae.workflows import diversity
    d = diversity(designs, problem, compliance, best_reference=c_ref, references=alternatives)

One definition of a distinct design serves everywhere (`topovae.solvers.DISTINCT`): binarised
solids at the problem's volume fraction whose Jaccard distance 1 - IoU is >= 0.15. Per problem,
over k designs (B, H, W):

    pairwise            mean 1 - IoU over the pairs of binarised designs (0: all the same)
    distinct_5, _10     distinct designs among those within 5 % / 10 % of ``best_reference``'s
                        compliance (greedy from the stiffest: each kept design is >= 0.15 from
                        every stiffer one kept)
    coverage            with ``references`` (the problem's known alternatives), Naeem et al.
                        (2020)'s coverage: the share of references with a design inside the ball
                        of their k-th nearest other reference (k = `COVER_K` = 1: a design nearer
                        to the reference than its nearest alternative is); no ball is smaller
                        than `DISTINCT` (a lone reference's is that)
    reproduced          the stricter share of references with a design within `DISTINCT` 1 - IoU
                        (0.15: the same design by the definition above)
    ged                 generalized energy distance (Kohl et al. 2018) between the designs S and
                        references Y with d = 1 - IoU: 2 E d(S, Y) - E d(S, S') - E d(Y, Y'),
                        expectations over all pairs of the two sets (0 for equal sets)
"""

from __future__ import annotations

import numpy as np

from ..solvers import DISTINCT, Problem, distinct, pairwise_distances, solid
from ._judge import JudgeError

COVER_K = 1  # coverage's ball: the distance from a reference to its k-th nearest other one
WITHIN = (0.05, 0.10)  # compliance tolerances of the distinct counts


def solids(designs: np.ndarray, problem: Problem) -> np.ndarray:
    """(B, H, W) bool binarised solids of designs (B, H, W) on one problem."""
    d = np.asarray(designs, dtype=np.float64)
    if d.ndim == 2:
        d = d[None]
    if d.ndim != 3 or d.shape[1:] != problem.shape:
        raise JudgeError(f"designs must have shape (B, {problem.nely}, {problem.nelx}), got "
                         f"{np.shape(designs)}")  # fmt: skip
    if not np.isfinite(d).all():
        raise JudgeError("designs must be finite")
    return np.stack([solid(x, problem) for x in d])


def count_distinct(designs_solid: np.ndarray, compliance: np.ndarray, limit: float) -> int:
    """Distinct solids among those with compliance <= limit, taken stiffest first."""
    c = np.asarray(compliance, dtype=np.float64)
    good = np.flatnonzero(c <= limit)
    if not good.size:
        return 0
    order = good[np.argsort(c[good], kind="stable")]
    return len(distinct(designs_solid[order]))


def ged(samples_solid: np.ndarray, references_solid: np.ndarray) -> float:
    """Generalized energy distance with d = 1 - IoU (module docstring)."""
    sy = pairwise_distances(samples_solid, references_solid).mean()
    ss = pairwise_distances(samples_solid).mean()
    yy = pairwise_distances(references_solid).mean()
    return float(2.0 * sy - ss - yy)


def coverage_radii(references_solid: np.ndarray, k: int = COVER_K) -> np.ndarray:
    """(n,) each reference's ball: 1 - IoU to its k-th nearest other reference (the last of the
    n - 1 when fewer), at least `DISTINCT` (a lone reference's ball)."""
    n = len(references_solid)
    if n < 2:
        return np.full(n, DISTINCT)
    d = pairwise_distances(references_solid)
    np.fill_diagonal(d, np.inf)
    return np.maximum(np.sort(d, axis=1)[:, min(k, n - 1) - 1], DISTINCT)


def coverage(samples_solid: np.ndarray, references_solid: np.ndarray, radius=None) -> float:
    """Share of references with a sample nearer than ``radius`` (1 - IoU; a number, or one per
    reference); by default Naeem et al.'s k-nearest-neighbour balls (`coverage_radii`)."""
    r = coverage_radii(references_solid) if radius is None else np.asarray(radius, np.float64)
    d = pairwise_distances(references_solid, samples_solid)
    return float(np.mean(d.min(axis=1) < r))


def diversity(
    designs: np.ndarray,
    problem: Problem,
    compliance: np.ndarray,
    *,
    best_reference: float,
    references: np.ndarray | None = None,
) -> dict[str, float]:
    """The module docstring's figures for k designs of one problem; ``compliance`` (k,) is
    theirs (as judged), ``best_reference`` the stiffest known design's compliance."""
    s = solids(designs, problem)
    c = np.asarray(compliance, dtype=np.float64)
    if c.shape != (len(s),):
        raise JudgeError(f"compliance must have shape ({len(s)},), got {c.shape}")
    if not (np.isfinite(best_reference) and best_reference > 0):
        raise JudgeError(f"best_reference must be a compliance > 0, got {best_reference!r}")
    d = pairwise_distances(s)
    pairs = d[np.triu_indices(len(s), 1)]
    out = {
        "pairwise": float(pairs.mean()) if pairs.size else 0.0,
        **{
            f"distinct_{round(100 * t)}": count_distinct(s, c, (1 + t) * best_reference)
            for t in WITHIN
        },
    }
    if references is not None:
        r = solids(references, problem)
        out["coverage"] = coverage(s, r)
        out["reproduced"] = coverage(s, r, DISTINCT)
        out["ged"] = ged(s, r)
        out["references"] = len(r)
    return out
