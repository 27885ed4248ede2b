"""Bilinear Q4 plane-stress finite elements on a structured grid of unit square elements.

DOF numbering and the element stiffness follow top88 (Andreassen et al. 2011) so that results
compare one to one: nodes are numbered column by column, node n = j * (nely + 1) + i for node row i
(top to bottom) and column j; DOFs 2n (x) and 2n + 1 (y, upwards). Element e = j * nely + i.

The stiffness matrix is assembled on the free DOFs only, into a CSC pattern computed once: each
iteration is one sparse mat-vec ``data = scatter @ E`` from element Young's moduli to the matrix
values (no COO -> CSC sort, no K[free][:, free] slicing). The free DOFs are numbered in a geometric
nested-dissection order of the grid (`nested_dissection`), so the factorisation needs no
fill-reducing ordering of its own: on a 300x100 grid it factorises ~25 % faster than with AMD.
`GridFE` assembles on every DOF of a grid instead, for designs of many problems on one grid.
"""

from __future__ import annotations

import functools

import numpy as np
import scipy.sparse as sp

from .._checks import real_array
from ._linear import LinearSolver, make_linear_solver
from ._problem import Problem, ProblemError, _finite_number, check_problem, check_size

E0 = 1.0  # Young's modulus of solid material
EMIN = 1e-9  # Young's modulus of void, keeps K non-singular
NU = 0.3  # Poisson's ratio
# Factor reuse (FEModel's reuse_tol): CG iterations tried on the last factor before refactorising
# (1, 3 or 4 were slower at 300x100: benchmarks/bench_reanalysis.py).
REUSE_MAX_CG = 2
# After n >= 2 failed tries in a row, the next min(2^(n-2), REUSE_BACKOFF) solves refactorise
# without trying (0: always try): a design that changes fast wastes few tries (MBB 300x100,
# rmin 1.5: 103 ms per iteration against 124 trying every solve and 107 without reuse). Skipping
# after every single failure lost reuses where they pay (rmin 7.5: 39.9 against 33.6 ms).
REUSE_BACKOFF = 32
# reuse_tol=None ("auto"): REUSE_AUTO_TOL from REUSE_MIN_DOFS free DOFs on, else no reuse
# (benchmarks/bench_reanalysis.py --whole-run: MBB rmin 1.5, 64x64 (8.3k DOFs) 10.8 against
# 10.0 ms per iteration, 150x50 (15k) 18.9 against 19.6; with the filter radius scaled to
# the grid reuse pays more, 300x100 1.9-2.1x)
REUSE_AUTO_TOL = 1e-6
REUSE_MIN_DOFS = 10_000


def element_stiffness(nu: float = NU) -> np.ndarray:
    """(8, 8) stiffness of a unit square Q4 element with E = 1, plane stress (top88's KE);
    Poisson's ratio ``nu`` in (-1, 0.5)."""
    if not -1 < _finite_number("nu", nu) < 0.5:
        raise ProblemError(f"nu must be in (-1, 0.5) (Poisson's ratio), got {nu!r}")
    k = np.array(
        [
            1 / 2 - nu / 6,
            1 / 8 + nu / 8,
            -1 / 4 - nu / 12,
            -1 / 8 + 3 * nu / 8,
            -1 / 4 + nu / 12,
            -1 / 8 - nu / 8,
            nu / 6,
            1 / 8 - 3 * nu / 8,
        ]
    )
    idx = np.array(
        [
            [0, 1, 2, 3, 4, 5, 6, 7],
            [1, 0, 7, 6, 5, 4, 3, 2],
            [2, 7, 0, 5, 6, 3, 4, 1],
            [3, 6, 5, 0, 7, 2, 1, 4],
            [4, 5, 6, 7, 0, 1, 2, 3],
            [5, 4, 3, 2, 1, 0, 7, 6],
            [6, 3, 4, 1, 2, 7, 0, 5],
            [7, 2, 1, 4, 3, 6, 5, 0],
        ]
    )
    return k[idx] / (1 - nu**2)


KE = element_stiffness()


def edof_matrix(nelx: int, nely: int) -> np.ndarray:
    """(nelx * nely, 8) global DOFs of each element, counter-clockwise from the lower-left node."""
    nelx, nely = check_size(nelx, nely)
    nodes = np.arange((nelx + 1) * (nely + 1)).reshape(nelx + 1, nely + 1)  # [j, i] -> node
    n1 = nodes[:-1, :-1].ravel()  # upper-left node of element e = j * nely + i
    n2 = n1 + nely + 1  # upper-right
    return np.stack(
        [2 * n1 + 2, 2 * n1 + 3, 2 * n2 + 2, 2 * n2 + 3, 2 * n2, 2 * n2 + 1, 2 * n1, 2 * n1 + 1],
        axis=1,
    )


def to_vector(field: np.ndarray) -> np.ndarray:
    """(nely, nelx) element field -> (nele,) vector in element order."""
    return np.asarray(field).ravel(order="F")


def to_field(vector: np.ndarray, nely: int, nelx: int) -> np.ndarray:
    """(nele,) vector in element order -> (nely, nelx) element field."""
    return vector.reshape(nelx, nely).T


def simp_modulus(x: np.ndarray, penal: float) -> np.ndarray:
    """Modified SIMP interpolation E(x) = Emin + x^p (E0 - Emin)."""
    return EMIN + x**penal * (E0 - EMIN)


class FEModel:
    """The finite-element model of one problem's grid, supports and loads.

    Built once per solve; `solve(E)` factorises K(E) and returns the displacements of every load
    case (with ``reuse_tol`` > 0 it may instead solve by CG on the last factor, see `solve`;
    ``factorizations`` and ``reuses`` count both). `element_energy(U)` gives sum over cases of
    u_e^T KE u_e per element.
    """

    def __init__(
        self, problem: Problem, linear_solver: str | None = None, reuse_tol: float | None = 0.0
    ) -> None:
        check_problem(problem)
        if reuse_tol is not None and not 0 <= _finite_number("reuse_tol", reuse_tol) < 1:
            raise ProblemError(
                f"reuse_tol must be None (auto) or in [0, 1) (0: off), got {reuse_tol}"
            )
        self.nelx, self.nely = problem.nelx, problem.nely
        self.edof = edof_matrix(self.nelx, self.nely)
        self.ndof = problem.ndof
        fixed = problem.fixed_dofs()
        node_order = nested_dissection(self.nely + 1, self.nelx + 1)
        dof_order = np.stack([2 * node_order, 2 * node_order + 1], axis=1).ravel()
        self.free = dof_order[~fixed[dof_order]]  # free DOFs in elimination order
        self.forces = problem.force_matrix()  # (ndof, ncases)
        self._f_free = np.ascontiguousarray(self.forces[self.free])
        kind = linear_solver or problem.settings.linear_solver
        self.solver: LinearSolver = make_linear_solver(kind)
        indptr, indices, self._scatter = _free_dof_pattern(
            self.edof, self.ndof, self.free, lower=self.solver.lower_only
        )
        self.solver.set_pattern(indptr, indices)
        self._pattern = (indptr, indices)
        if reuse_tol is None:  # auto: where a try costs clearly less than a factorisation
            reuse_tol = REUSE_AUTO_TOL if self.free.size >= REUSE_MIN_DOFS else 0.0
        self.reuse_tol = float(reuse_tol)
        self.factorizations = self.reuses = self.tries = 0
        self._failed = 0  # failed reuse tries in a row
        self._skip = 0  # solves to refactorise before the next try
        self.last_solve_exact = True  # False: the last solve was CG on an older factor
        self._last: np.ndarray | None = None  # free-DOF displacements of the last solve

    @staticmethod
    def _array(value, name: str, shape: tuple[int, ...]) -> np.ndarray:
        a = real_array(value, name, ProblemError)
        if a.shape != shape:
            raise ProblemError(f"{name} must have shape {shape}, got {a.shape}")
        if not np.isfinite(a).all():
            raise ProblemError(f"{name} must be finite")
        return a

    @property
    def linear_solver_name(self) -> str:
        return self.solver.name

    def solve(self, young: np.ndarray, *, exact: bool = False) -> np.ndarray:
        """(nele,) element moduli, finite and > 0 -> (ndof, ncases) displacements (zero on
        fixed DOFs).

        With ``reuse_tol`` > 0 (and not ``exact``) it first tries CG on the new stiffness matrix,
        preconditioned by the last Cholesky factor and started from the last displacements, for
        at most `REUSE_MAX_CG` iterations to a residual <= reuse_tol ||f|| per load case; only
        when that fails does it refactorise (reanalysis: Amir, Bendsoe & Sigmund 2009)."""
        young = self._array(young, "young", (self.nelx * self.nely,))
        if not young.min() > 0:
            raise ProblemError(f"young must be > 0 (element moduli), got {young.min()}")
        data = self._scatter @ young
        x = None if exact else self._reuse(data)
        self.last_solve_exact = x is None
        if x is None:
            self.solver.factorize(data)
            self.factorizations += 1
            x = self.solver.solve(self._f_free)
        if self.reuse_tol > 0:
            self._last = x
        u = np.zeros((self.ndof, self._f_free.shape[1]))
        u[self.free] = x
        return u

    def _reuse(self, data: np.ndarray) -> np.ndarray | None:
        """Free-DOF displacements by CG preconditioned with the last factor; None: refactorise."""
        if self.reuse_tol <= 0 or self._last is None:
            return None
        if self._skip > 0:
            self._skip -= 1
            return None
        self.tries += 1
        n = self.free.size
        k = sp.csc_matrix((data, self._pattern[1], self._pattern[0]), shape=(n, n))
        if self.solver.lower_only:
            diagonal = k.diagonal()[:, None]

            def product(v: np.ndarray) -> np.ndarray:
                return k @ v + k.T @ v - diagonal * v
        else:

            def product(v: np.ndarray) -> np.ndarray:
                return k @ v

        b = self._f_free
        limit = self.reuse_tol * np.linalg.norm(b, axis=0)
        x = self._last.copy()
        r = b - product(x)
        p = rz = None
        for it in range(REUSE_MAX_CG + 1):
            if np.all(np.linalg.norm(r, axis=0) <= limit):
                self.reuses += 1
                self._failed = 0
                return x
            if it == REUSE_MAX_CG:
                break
            z = self.solver.solve(r)
            rz, old = np.einsum("ij,ij->j", r, z), rz
            p = z if p is None else z + (rz / old) * p
            q = product(p)
            alpha = rz / np.einsum("ij,ij->j", p, q)
            x += alpha * p
            r -= alpha * q
        self._failed += 1
        if self._failed >= 2:
            self._skip = min(2 ** (self._failed - 2), REUSE_BACKOFF)
        return None

    def element_energy(self, u: np.ndarray) -> np.ndarray:
        """(ndof, ncases) displacements -> (nele,) sum over cases of u_e^T KE u_e."""
        u = self._array(u, "u", self.forces.shape)
        ue = u.T[:, self.edof]  # (ncases, nele, 8)
        return np.einsum("cea,cea->e", ue @ KE, ue)  # one BLAS product per case

    def compliance(self, u: np.ndarray) -> float:
        """Sum over load cases of f^T u."""
        u = self._array(u, "u", self.forces.shape)
        return float(np.einsum("dc,dc->", self.forces, u))


class GridFE:
    """Direct FE for designs of any problems on one nelx x nely grid.

    An `FEModel` analyses the pattern of one problem's free DOFs, which costs more than a solve
    at small grids (13 ms against 2 ms at 32x32). For batches of designs of many problems (the
    physics term judges 16 designs of 16 problems, each flipped or turned, every training step),
    `GridFE` analyses the pattern of every DOF once per grid and imposes each problem's supports
    on its values instead: the rows and columns of the fixed DOFs are zeroed and their diagonal
    set to 1, with zero load, so K u = f holds for the free DOFs and u = 0 on the fixed ones,
    and every solve is one numeric factorisation. Not for use by two threads at once (one
    factor is refactorised in place; `grid_fe` keeps one per thread).
    """

    def __init__(self, nelx: int, nely: int, linear_solver: str = "auto") -> None:
        self.nelx, self.nely = check_size(nelx, nely)
        self.edof = edof_matrix(self.nelx, self.nely)
        self.ndof = 2 * (self.nelx + 1) * (self.nely + 1)
        node_order = nested_dissection(self.nely + 1, self.nelx + 1)
        self.order = np.stack([2 * node_order, 2 * node_order + 1], axis=1).ravel()
        self.solver: LinearSolver = make_linear_solver(linear_solver)
        indptr, indices, self._scatter = _free_dof_pattern(
            self.edof, self.ndof, self.order, lower=self.solver.lower_only
        )
        self.solver.set_pattern(indptr, indices)
        self._rows = indices
        self._cols = np.repeat(np.arange(self.ndof), np.diff(indptr))
        self._diagonal = self._rows == self._cols

    def solve(self, young: np.ndarray, fixed: np.ndarray, forces: np.ndarray) -> np.ndarray:
        """Element moduli (nele,) > 0, fixed DOFs (ndof,) bool and forces (ndof, ncases), in
        top88's orders (`to_vector`, `Problem.fixed_dofs`, `Problem.force_matrix`) -> the
        displacements (ndof, ncases), zero on the fixed DOFs."""
        fixed = fixed[self.order]
        data = self._scatter @ young
        held = fixed[self._rows] | fixed[self._cols]
        data[held] = 0.0
        data[held & self._diagonal] = 1.0
        self.solver.factorize(data)
        rhs = forces[self.order]
        rhs[fixed] = 0.0
        u = np.empty((self.ndof, forces.shape[1]))
        u[self.order] = self.solver.solve(rhs)
        return u

    def element_energy(self, u: np.ndarray) -> np.ndarray:
        """(ndof, ncases) displacements -> (nele,) sum over cases of u_e^T KE u_e."""
        ue = u.T[:, self.edof]
        return np.einsum("cea,cea->e", ue @ KE, ue)


@functools.lru_cache(maxsize=8)
def grid_fe(nelx: int, nely: int, linear_solver: str, thread: int) -> GridFE:
    """The `GridFE` of a grid for one thread (``thread``: `threading.get_ident()`), cached."""
    return GridFE(nelx, nely, linear_solver)


@functools.lru_cache(maxsize=16)
def nested_dissection(rows: int, cols: int, leaf: int = 16) -> np.ndarray:
    """Nested-dissection order of the nodes of a rows x cols grid (node n = col * rows + row),
    read-only and cached: a third of the set-up of a 32x32 model (4 of 13 ms).

    The longer side is cut by a line of nodes; both halves are ordered recursively, the separator
    last. Blocks of at most ``leaf`` nodes keep their natural order. For a 2D grid this gives the
    optimal O(n log n) fill of the Cholesky factor (George 1973).
    """
    parts: list[np.ndarray] = []

    def split(i0: int, i1: int, j0: int, j1: int) -> None:
        ni, nj = i1 - i0, j1 - j0
        if ni <= 0 or nj <= 0:
            return
        if ni * nj <= leaf or max(ni, nj) < 3:
            jj, ii = np.meshgrid(np.arange(j0, j1), np.arange(i0, i1), indexing="ij")
            parts.append((jj * rows + ii).ravel())
        elif nj >= ni:
            m = (j0 + j1) // 2
            split(i0, i1, j0, m)
            split(i0, i1, m + 1, j1)
            parts.append(m * rows + np.arange(i0, i1))
        else:
            m = (i0 + i1) // 2
            split(i0, m, j0, j1)
            split(m + 1, i1, j0, j1)
            parts.append(np.arange(j0, j1) * rows + m)

    split(0, rows, 0, cols)
    order = np.concatenate(parts)
    order.flags.writeable = False
    return order


def _free_dof_pattern(
    edof: np.ndarray, ndof: int, free: np.ndarray, lower: bool
) -> tuple[np.ndarray, np.ndarray, sp.csr_matrix]:
    """CSC pattern of K restricted to the free DOFs (numbered as ordered in ``free``), and the
    (nnz, nele) scatter matrix.

    K.data = scatter @ E for element moduli E. With ``lower`` only the lower triangle (row >= col)
    is kept, which is all CHOLMOD reads.
    """
    nfree = free.size
    new_index = np.full(ndof, -1, dtype=np.int64)
    new_index[free] = np.arange(nfree)
    nele = edof.shape[0]
    rows = new_index[edof][:, :, None].repeat(8, axis=2)  # (nele, 8, 8): [e, a, b] -> row of a
    cols = rows.transpose(0, 2, 1)
    keep = (rows >= 0) & (cols >= 0)
    if lower:
        keep &= rows >= cols
    elem = np.broadcast_to(np.arange(nele)[:, None, None], rows.shape)[keep]
    values = np.broadcast_to(KE, rows.shape)[keep]
    key = cols[keep] * nfree + rows[keep]  # column-major: CSC order after sorting
    pattern, position = np.unique(key, return_inverse=True)
    indptr = np.searchsorted(pattern // nfree, np.arange(nfree + 1)).astype(np.int64)
    indices = (pattern % nfree).astype(np.int64)
    scatter = sp.csr_matrix((values, (position, elem)), shape=(pattern.size, nele))
    return indptr, indices, scatter
