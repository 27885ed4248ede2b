"""Sparse direct solvers for the SPD stiffness system on a fixed sparsity pattern.

Every SIMP iteration solves K(x) u = f with the same pattern and new values, so the solvers take
the pattern once (`set_pattern`) and then refactorise values only (`factorize`):

- "cholmod": CHOLMOD through the `cvxopt` wheel (``pip install topovae[fast]``). The symbolic
  analysis (fill-reducing ordering, elimination tree, supernodes) is computed once and reused;
  each iteration does the numeric factorisation only. Reads the lower triangle.
- "superlu": SciPy's SuperLU, always available. Uses the symmetric-mode options that halve its time
  on these matrices (minimum degree on A^T + A, diagonal pivoting). Needs the full matrix.

"auto" picks CHOLMOD when cvxopt imports, else SuperLU; `FEModel.linear_solver_name` reports it.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from ._problem import ProblemError


class LinearSolver:
    """Interface: set_pattern(indptr, indices) once, then factorize(data) and solve(rhs)."""

    name = ""
    lower_only = False

    def set_pattern(self, indptr: np.ndarray, indices: np.ndarray) -> None:
        raise NotImplementedError

    def factorize(self, data: np.ndarray) -> None:
        raise NotImplementedError

    def solve(self, rhs: np.ndarray) -> np.ndarray:
        """(n, k) right-hand sides -> (n, k) solutions."""
        raise NotImplementedError


class SuperLUSolver(LinearSolver):
    name = "superlu"
    lower_only = False

    def set_pattern(self, indptr: np.ndarray, indices: np.ndarray) -> None:
        self._indptr, self._indices = indptr, indices
        self._n = indptr.size - 1

    def factorize(self, data: np.ndarray) -> None:
        k = sp.csc_matrix((data, self._indices, self._indptr), shape=(self._n, self._n))
        self._lu = spla.splu(
            k,
            permc_spec="NATURAL",  # FEModel numbers the DOFs in nested-dissection order
            diag_pivot_thresh=0.0,
            options={"SymmetricMode": True},
        )

    def solve(self, rhs: np.ndarray) -> np.ndarray:
        return self._lu.solve(rhs)


class CholmodSolver(LinearSolver):
    name = "cholmod"
    lower_only = True

    def __init__(self) -> None:
        from cvxopt import cholmod, matrix, spmatrix  # the `fast` extra

        self._cholmod, self._matrix, self._spmatrix = cholmod, matrix, spmatrix
        self._factor = None

    def set_pattern(self, indptr: np.ndarray, indices: np.ndarray) -> None:
        n = indptr.size - 1
        cols = np.repeat(np.arange(n), np.diff(indptr))
        # cvxopt stores the matrix in CSC order; ours is already sorted that way, so A.V lines up
        # with our data vector and each iteration only overwrites the values.
        self._a = self._spmatrix(
            self._matrix(np.ones(indices.size)),
            self._matrix(indices.astype(np.int32)),
            self._matrix(cols.astype(np.int32)),
            (n, n),
        )
        self._natural = self._matrix(np.arange(n, dtype=np.int32))
        self._factor = None

    def factorize(self, data: np.ndarray) -> None:
        self._a.V = self._matrix(data)
        if self._factor is None:
            # Natural order: FEModel already numbers the DOFs in nested-dissection order.
            self._factor = self._cholmod.symbolic(self._a, p=self._natural, uplo="L")
        try:
            self._cholmod.numeric(self._a, self._factor)
        except ArithmeticError:
            raise ProblemError(
                "the stiffness matrix is not positive definite; check the supports"
            ) from None

    def solve(self, rhs: np.ndarray) -> np.ndarray:
        b = self._matrix(np.asfortranarray(rhs, dtype=np.float64))
        self._cholmod.solve(self._factor, b)
        return np.array(b).reshape(rhs.shape)


def cholmod_available() -> bool:
    try:
        import cvxopt.cholmod  # noqa: F401
    except ImportError:
        return False
    return True


def make_linear_solver(kind: str) -> LinearSolver:
    """ "auto" | "cholmod" | "superlu" -> a fresh solver."""
    if kind == "auto":
        kind = "cholmod" if cholmod_available() else "superlu"
    if kind == "cholmod":
        if not cholmod_available():
            raise ProblemError(
                "linear solver 'cholmod' needs cvxopt: pip install 'topovae[fast]' "
                "(or choose 'superlu' or 'auto')"
            )
        return CholmodSolver()
    if kind == "superlu":
        return SuperLUSolver()
    raise ProblemError(f"unknown linear solver {kind!r}; choose one of: auto, cholmod, superlu")
