"""Deflation: a penalty that keeps SIMP away from designs it has already found.

Baeck et al. (2024, arXiv 2406.17491) add to the objective, for each known design rho_i,

    P_i(x^) = delta exp(gamma / (d_i - gamma))   for d_i < gamma,   0 otherwise,

with d_i the area of the symmetric difference between x^ and rho_i. Here d_i is its smooth
version for densities, the mean of (x^ - rho_i)^2 over the elements (for 0/1 designs exactly the
share of elements that differ), so the penalty is differentiable everywhere: it is largest
(delta / e) on a known design and falls smoothly to 0 at distance gamma. `solve(...,
deflation=...)` adds c_1 sum_i P_i to the compliance (c_1 the first iteration's compliance, so
delta is relative to the problem's scale); the design it returns is then re-solved without the
penalty (`find_alternatives`) so that every stored design is a plain local optimum.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._fe import to_vector
from ._problem import ProblemError, _finite_number


@dataclass(frozen=True)
class Deflation:
    """Known designs (n, nely, nelx) in [0, 1], the penalty's reach ``gamma`` (a share of the
    elements, in (0, 1]) and its height ``delta`` (> 0, relative to the first compliance)."""

    designs: np.ndarray
    gamma: float = 0.1
    delta: float = 1.0

    def __post_init__(self) -> None:
        d = np.asarray(self.designs, dtype=np.float64)
        if d.ndim == 2:
            d = d[None]
        if d.ndim != 3 or not d.size or not np.isfinite(d).all() or d.min() < 0 or d.max() > 1:
            raise ProblemError(
                "deflation designs must be a non-empty (n, nely, nelx) array of finite values "
                f"in [0, 1], got shape {np.shape(self.designs)}"
            )
        if not 0 < _finite_number("gamma", self.gamma) <= 1:
            raise ProblemError(f"gamma must be in (0, 1], got {self.gamma!r}")
        if not _finite_number("delta", self.delta) > 0:
            raise ProblemError(f"delta must be > 0, got {self.delta!r}")
        d.setflags(write=False)
        object.__setattr__(self, "designs", d)
        # element vectors in the solver's (column-major) order
        object.__setattr__(self, "_vectors", np.stack([to_vector(x) for x in d]))

    def distances(self, xphys: np.ndarray) -> np.ndarray:
        """d_i (n,): the mean squared difference between x^ (element vector) and each design."""
        return np.mean((xphys[None, :] - self._vectors) ** 2, axis=1)

    def value(self, xphys: np.ndarray) -> float:
        """sum_i P_i(x^) for an element vector x^."""
        d = self.distances(xphys)
        near = d < self.gamma
        return float(self.delta * np.exp(self.gamma / (d[near] - self.gamma)).sum())

    def gradient(self, xphys: np.ndarray) -> np.ndarray:
        """d sum_i P_i / d x^ (element vector)."""
        d = self.distances(xphys)
        grad = np.zeros_like(xphys)
        n = xphys.size
        for i in np.flatnonzero(d < self.gamma):
            gap = d[i] - self.gamma
            dp_dd = self.delta * np.exp(self.gamma / gap) * (-self.gamma / gap**2)
            grad += dp_dd * 2.0 * (xphys - self._vectors[i]) / n
        return grad
