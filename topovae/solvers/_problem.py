"""The `Problem` value: everything one minimum-compliance solve needs, validated on construction.

Conventions (shared by the whole package, see docs/architecture.md):

- A density field has shape (nely, nelx): row i runs top to bottom, column j left to right.
- Node fields have shape (nely + 1, nelx + 1) with the same orientation.
- Forces are given in the physical frame: x to the right, y *upwards* (a downward load has fy < 0),
  exactly as in top88, whose DOF numbering we follow (column-major nodes, DOFs 2n (x), 2n + 1 (y)).
- ``loads`` has shape (ncases, 2, nely + 1, nelx + 1): per load case the (fx, fy) node fields.
  Compliance is summed over load cases.

Usage::

    p = Problem(nelx=60, nely=20, volfrac=0.5, fixed_x=..., fixed_y=..., loads=...)
    p2 = p.with_settings(filter="sensitivity", rmin=2.4)
    arrays, meta = p.to_arrays(), p.metadata()      # plain arrays + JSON-able dict
    p3 = Problem.from_arrays(arrays, meta)
    p.save("p.npz"); p4 = Problem.load("p.npz")    # the same, as one .npz file
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._checks import check_path
from ._connectivity import free_rigid_motions, unsupported_loads

FILTERS = ("sensitivity", "density", "heaviside")
OPTIMIZERS = ("auto", "oc", "mma")
LINEAR_SOLVERS = ("auto", "cholmod", "superlu")
# SIMP iterations a setting may ask for (10^6: hours on a large grid; more is a typo)
MAX_ITERATIONS = 1_000_000
# SIMP penalties in use are 1-5 (continuation schemes stop near 6); past 20 the interpolation
# x^p underflows for grey material and a design's compliance is meaningless
MAX_PENAL = 20.0


class ProblemError(ValueError):
    """Invalid problem or settings; the message names the bad value and what is allowed."""


# Peak memory of a SIMP solve grows by about 4.4 KiB per element (measured: MBB 300x100 and
# 600x200 with CHOLMOD, 197 MB and 590 MB resident); 5 KiB leaves room for the factor's fill.
BYTES_PER_ELEMENT = 5 * 1024
# the slenderest grid: MBB and cantilever at 3000x1 solve, at 10000x1 Cholesky finds K(free, free)
# not positive definite (its condition number grows as the aspect ratio to the fourth power)
MAX_ASPECT = 4096


def physical_memory() -> int | None:
    """Bytes of RAM of this machine (None where the OS does not say)."""
    import os

    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_size(nelx: Any, nely: Any) -> tuple[int, int]:
    """Positive integer grid sizes within the machine's memory (`check_grid`), as ints."""
    for n, v in (("nelx", nelx), ("nely", nely)):
        if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 1:
            raise ProblemError(f"{n} must be a positive integer, got {v!r}")
    check_grid(int(nelx), int(nely))
    return int(nelx), int(nely)


def check_grid(nelx: int, nely: int) -> None:
    """Refuse a grid whose solve would need more memory than the machine has, or so slender that
    its stiffness matrix is singular in floating point, before anything of that size is
    allocated."""
    ratio = max(nelx, nely) / min(nelx, nely)
    if ratio > MAX_ASPECT:  # the condition number grows as ratio^4 (a slender beam's bending)
        raise ProblemError(
            f"a {nelx}x{nely} grid is {ratio:,.0f} times longer than wide; beyond {MAX_ASPECT:,} "
            "its stiffness matrix is singular in double precision (10000x1 already is)"
        )
    need, have = nelx * nely * BYTES_PER_ELEMENT, physical_memory()
    if have is not None and need > have:
        raise ProblemError(
            f"a {nelx}x{nely} grid ({nelx * nely:,} elements) needs about {need / 2**30:,.0f} GiB "
            f"to solve; this machine has {have / 2**30:.0f} GiB"
        )


def _choice(name: str, value: Any, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ProblemError(f"unknown {name} {value!r}; choose one of: {', '.join(allowed)}")
    return value


def _finite_number(name: str, value: Any) -> float:
    if isinstance(value, np.ndarray) and value.ndim:  # float() of a (1,) array only warns
        raise ProblemError(f"{name} must be a number, got an array of shape {value.shape}")
    if isinstance(value, str | bytes | bool | np.bool_):  # float("3") and float(True) work
        raise ProblemError(f"{name} must be a number, got {value!r}")
    kind = value.dtype.kind if isinstance(value, np.ndarray | np.generic) else None
    if isinstance(value, complex) or kind == "c":  # float() of numpy complex only warns
        raise ProblemError(f"{name} must be a real number, got {value!r}")
    try:
        v = float(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: an int past float's range
        raise ProblemError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(v):
        raise ProblemError(f"{name} must be finite, got {value!r}")
    return v


@dataclass(frozen=True)
class SIMPSettings:
    """Settings of the SIMP loop.

    filter: "sensitivity" (Sigmund 1997), "density" (Bruns & Tortorelli 2001) or "heaviside"
        (density filter followed by the tanh projection of Wang et al. 2011 with threshold ``eta``;
        beta starts at ``beta_init`` and doubles every ``beta_every`` iterations, or whenever the
        design has converged, until it reaches ``beta_max``).
    rmin: filter radius in elements (cone weights max(0, rmin - distance), as in top88); >= 1.
    optimizer: "oc" (optimality criteria, top88's bisection), "mma" (Svanberg 1987/2007), or
        "auto": OC, except MMA with the heaviside filter, where OC keeps flipping a few elements by
        the full move limit at high beta and never meets the change criterion.
    move: move limit per iteration. tol: stop when the largest design change is <= tol.
    ctol: also stop when the compliance changed by at most a relative ``ctol`` over the last 5
        iterations (0, the default: off). For dataset labels (mixed 64x64, 240 problems,
        benchmarks/bench_labels.py): 3e-4 keeps a quarter of the iterations with labels a median
        0.08 % (95th percentile 0.39 %) above the converged compliance; 1e-3 a sixth, 0.16 %
        (0.75 %).
    linear_solver: "auto" (CHOLMOD when the `fast` extra is installed, else SuperLU), "cholmod",
        or "superlu".
    reuse_tol: None (the default, "auto"): 1e-6 on grids with at least 10,000 free DOFs (about
        70x70 elements), 0 below, where a factorisation costs little more than a try. 0
        factorises the stiffness matrix every iteration, as top88 does. A value > 0 first
        solves each new matrix by at most two CG iterations preconditioned with the last factor,
        to a residual <= reuse_tol ||f||, and refactorises only when that fails (direct backend;
        the batched torch SIMP has no factor and takes only None or 0). After n >= 2 failed
        tries in a row the next min(2^(n-2), 32) solves refactorise without trying, so designs
        that change fast (a small filter radius) lose nothing: MBB 300x100 with top88's rmin 1.5
        ran 103 ms per iteration against 107 without reuse and 124 trying every solve. With
        rmin 7.5 (927 iterations to convergence, benchmarks/bench_reanalysis.py --whole-run):
        160 factorisations, 2.1x faster, final compliance within 3e-8 of the exact run's and the
        same iteration count; looser values are faster (1e-3: 40 factorisations, 3.5x) and move
        the design more. The reported compliance is always that of an exact solve.
    """

    penal: float = 3.0
    filter: str = "density"
    rmin: float = 1.5
    optimizer: str = "auto"
    move: float = 0.2
    tol: float = 0.01
    ctol: float = 0.0
    max_iter: int = 500
    beta_init: float = 1.0
    beta_max: float = 32.0
    beta_every: int = 50
    eta: float = 0.5
    linear_solver: str = "auto"
    reuse_tol: float | None = None

    def __post_init__(self) -> None:
        _choice("filter", self.filter, FILTERS)
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        _choice("linear solver", self.linear_solver, LINEAR_SOLVERS)
        if not 1 <= _finite_number("penal", self.penal) <= MAX_PENAL:
            raise ProblemError(f"penal must be in [1, {MAX_PENAL:g}], got {self.penal}")
        if _finite_number("rmin", self.rmin) < 1:
            raise ProblemError(f"rmin must be >= 1 (in elements), got {self.rmin}")
        if not 0 < _finite_number("move", self.move) <= 1:
            raise ProblemError(f"move must be in (0, 1], got {self.move}")
        if _finite_number("tol", self.tol) <= 0:
            raise ProblemError(f"tol must be > 0, got {self.tol}")
        if not 0 <= _finite_number("ctol", self.ctol) < 1:
            raise ProblemError(f"ctol must be in [0, 1) (0: off), got {self.ctol}")
        if self.reuse_tol is not None and not 0 <= _finite_number("reuse_tol", self.reuse_tol) < 1:
            raise ProblemError(
                f"reuse_tol must be None (auto) or in [0, 1) (0: off), got {self.reuse_tol}"
            )
        for name in ("max_iter", "beta_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
                raise ProblemError(f"{name} must be a positive integer, got {value!r}")
            if value > MAX_ITERATIONS:
                raise ProblemError(f"{name} must be at most {MAX_ITERATIONS:,}, got {value!r}")
        if _finite_number("beta_init", self.beta_init) <= 0:
            raise ProblemError(f"beta_init must be > 0, got {self.beta_init}")
        if _finite_number("beta_max", self.beta_max) < self.beta_init:
            raise ProblemError(
                f"beta_max must be >= beta_init ({self.beta_init}), got {self.beta_max}"
            )
        if not 0 < _finite_number("eta", self.eta) < 1:
            raise ProblemError(f"eta must be in (0, 1), got {self.eta}")

    @property
    def update_rule(self) -> str:
        """The optimizer actually used: "oc" or "mma" ("auto" resolved)."""
        if self.optimizer != "auto":
            return self.optimizer
        return "mma" if self.filter == "heaviside" else "oc"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SIMPSettings:
        if not isinstance(d, Mapping):
            raise ProblemError(f"SIMP settings must be a dict, got {type(d).__name__}")
        unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ProblemError(f"unknown SIMP settings: {', '.join(sorted(unknown))}")
        return cls(**d)


def _array(name: str, value: Any, shape: tuple[int, ...], dtype: type) -> np.ndarray:
    try:
        a = np.array(value, dtype=np.float64 if dtype is float else None)
    except (TypeError, ValueError):
        raise ProblemError(f"{name} must be a numeric array of shape {shape}") from None
    if a.shape != shape:
        raise ProblemError(f"{name} must have shape {shape}, got {a.shape}")
    if a.dtype.kind not in "biuf":
        raise ProblemError(f"{name} must be numeric or boolean, got dtype {a.dtype}")
    if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
        raise ProblemError(f"{name} contains NaN or infinite values")
    if dtype is bool:
        if not np.all((a == 0) | (a == 1)):
            raise ProblemError(f"{name} must be a boolean mask (values 0/1)")
        a = a.astype(bool)
    a.setflags(write=False)
    return a


@dataclass(frozen=True, eq=False)
class Problem:
    """A 2D minimum-compliance problem on a structured grid of unit Q4 elements.

    Arrays (see the module docstring for orientation):
        fixed_x, fixed_y: (nely+1, nelx+1) bool, the node's x / y displacement is fixed.
        loads: (ncases, 2, nely+1, nelx+1) float, per load case the (fx, fy) node forces, y up.
            A (2, nely+1, nelx+1) array is taken as one load case.
        passive_solid, passive_void: (nely, nelx) bool element masks held at 1 / 0. Default none.
    """

    nelx: int
    nely: int
    volfrac: float
    fixed_x: np.ndarray
    fixed_y: np.ndarray
    loads: np.ndarray
    passive_solid: np.ndarray | None = None
    passive_void: np.ndarray | None = None
    settings: SIMPSettings = field(default_factory=SIMPSettings)
    name: str = "custom"

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        for n in ("nelx", "nely"):
            v = getattr(self, n)
            if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 1:
                raise ProblemError(f"{n} must be a positive integer, got {v!r}")
            set_(self, n, int(v))
        check_grid(self.nelx, self.nely)
        volfrac = _finite_number("volfrac", self.volfrac)
        if not 0 < volfrac < 1:
            raise ProblemError(f"volfrac must be in (0, 1), got {self.volfrac}")
        set_(self, "volfrac", volfrac)
        if not isinstance(self.settings, SIMPSettings):
            raise ProblemError("settings must be a SIMPSettings")
        widest = 2 * max(self.nelx, self.nely)  # wider only grows the filter's kernel
        if self.settings.rmin > widest:
            raise ProblemError(
                f"rmin {self.settings.rmin} is wider than the {self.nelx}x{self.nely} grid; use "
                f"rmin <= {widest}"
            )
        if not isinstance(self.name, str):
            raise ProblemError(f"name must be a string, got {type(self.name).__name__}")

        nodes, elems = (self.nely + 1, self.nelx + 1), (self.nely, self.nelx)
        set_(self, "fixed_x", _array("fixed_x", self.fixed_x, nodes, bool))
        set_(self, "fixed_y", _array("fixed_y", self.fixed_y, nodes, bool))
        bad_loads = f"loads must be a numeric array of shape (ncases, 2, {nodes[0]}, {nodes[1]})"
        try:
            loads = np.asarray(self.loads)
        except (TypeError, ValueError):  # ragged nested lists
            raise ProblemError(bad_loads) from None
        if loads.dtype.kind not in "biufO":  # complex (float() would drop the imaginary part)
            raise ProblemError(f"loads must be an array of real numbers, got dtype {loads.dtype}")
        try:
            loads = loads.astype(np.float64)
        except (TypeError, ValueError, OverflowError):  # objects that are no real numbers
            raise ProblemError(bad_loads) from None
        if loads.ndim == 3:
            loads = loads[None]
        ncases = loads.shape[0] if loads.ndim == 4 else 1
        set_(self, "loads", _array("loads", loads, (ncases, 2, *nodes), float))
        for n in ("passive_solid", "passive_void"):
            v = getattr(self, n)
            set_(self, n, _array(n, np.zeros(elems, bool) if v is None else v, elems, bool))
        self._check_supports()
        self._check_loads()
        self._check_passive()

    # -- validation ---------------------------------------------------------------------------
    def _check_supports(self) -> None:
        if not (self.fixed_x.any() or self.fixed_y.any()):
            raise ProblemError("the problem has no supports: fixed_x and fixed_y are all False")
        free = free_rigid_motions(self.fixed_x, self.fixed_y)
        if free:
            raise ProblemError(
                "the supports leave a rigid-body motion free (" + ", ".join(free) + "); "
                "fix more DOFs"
            )

    def _check_loads(self) -> None:
        if self.ncases == 0:
            raise ProblemError(
                "loads has no load case: give at least one (2, nely+1, nelx+1) field"
            )
        fixed = np.stack([self.fixed_x, self.fixed_y])  # (2, nely+1, nelx+1)
        for k, f in enumerate(self.loads):
            if not np.any(f):
                raise ProblemError(f"load case {k} is zero: give at least one nonzero force")
            if not np.any(f[~fixed]):
                raise ProblemError(
                    f"load case {k} acts only on fixed DOFs, so it does no work; "
                    "move the load to a free node or free the DOF"
                )

    def _check_passive(self) -> None:
        n = self.nelx * self.nely
        if np.any(self.passive_solid & self.passive_void):
            raise ProblemError("passive_solid and passive_void overlap")
        n_solid, n_void = int(self.passive_solid.sum()), int(self.passive_void.sum())
        if n_solid + n_void == n:
            raise ProblemError("the passive masks cover every element: no design domain is left")
        if n_solid > self.volfrac * n:
            raise ProblemError(
                f"the passive solid region alone fills {n_solid / n:.4g} of the domain, more than "
                f"volfrac = {self.volfrac}"
            )
        if self.volfrac * n > n - n_void:
            raise ProblemError(
                f"volfrac = {self.volfrac} cannot be met: the passive void leaves only "
                f"{(n - n_void) / n:.4g} of the domain"
            )
        cut = unsupported_loads(self)
        if cut:
            raise ProblemError(
                f"the passive void cuts {cut} loaded node(s) off from the supports that would hold "
                "them: no material can carry that load"
            )

    # -- derived quantities --------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int]:
        """Density field shape (nely, nelx)."""
        return (self.nely, self.nelx)

    @property
    def ncases(self) -> int:
        return self.loads.shape[0]

    @property
    def ndof(self) -> int:
        return 2 * (self.nelx + 1) * (self.nely + 1)

    def fixed_dofs(self) -> np.ndarray:
        """(ndof,) bool in top88 DOF order."""
        out = np.empty(self.ndof, bool)
        out[0::2] = self.fixed_x.ravel(order="F")
        out[1::2] = self.fixed_y.ravel(order="F")
        return out

    def force_matrix(self) -> np.ndarray:
        """(ndof, ncases) float in top88 DOF order."""
        f = np.empty((self.ndof, self.ncases))
        for k, (fx, fy) in enumerate(self.loads):
            f[0::2, k] = fx.ravel(order="F")
            f[1::2, k] = fy.ravel(order="F")
        return f

    # -- copies and serialisation -----------------------------------------------------------------
    def replace(self, **changes: Any) -> Problem:
        """A validated copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    def with_settings(self, **changes: Any) -> Problem:
        """A copy whose SIMP settings have some fields changed, e.g. ``with_settings(rmin=2.4)``."""
        unknown = set(changes) - {f.name for f in dataclasses.fields(SIMPSettings)}
        if unknown:
            raise ProblemError(f"unknown SIMP settings: {', '.join(sorted(unknown))}")
        return self.replace(settings=dataclasses.replace(self.settings, **changes))

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {
            "fixed_x": self.fixed_x,
            "fixed_y": self.fixed_y,
            "loads": self.loads,
            "passive_solid": self.passive_solid,
            "passive_void": self.passive_void,
        }

    def metadata(self) -> dict[str, Any]:
        """JSON-able scalars: name, grid, volfrac and the SIMP settings."""
        return {
            "name": self.name,
            "nelx": self.nelx,
            "nely": self.nely,
            "volfrac": self.volfrac,
            "settings": self.settings.to_dict(),
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], meta: dict[str, Any] | str) -> Problem:
        """Inverse of (`to_arrays`, `metadata`); ``meta`` may be the JSON string."""
        if isinstance(meta, str):
            try:
                meta = json.loads(meta)
            except json.JSONDecodeError as e:
                raise ProblemError(f"the problem metadata is not valid JSON ({e})") from None
        if not isinstance(meta, Mapping):
            raise ProblemError(f"the problem metadata must be a dict, got {type(meta).__name__}")
        if not isinstance(arrays, Mapping):
            raise TypeError(f"arrays must be a dict of arrays, got {type(arrays).__name__}")
        missing = {"fixed_x", "fixed_y", "loads"} - set(arrays)
        if missing:
            raise ProblemError(f"missing problem arrays: {', '.join(sorted(missing))}")
        missing = {"nelx", "nely", "volfrac"} - set(meta)
        if missing:
            raise ProblemError(f"the problem metadata lacks {', '.join(sorted(missing))}")
        return cls(
            nelx=meta["nelx"],
            nely=meta["nely"],
            volfrac=meta["volfrac"],
            fixed_x=arrays["fixed_x"],
            fixed_y=arrays["fixed_y"],
            loads=arrays["loads"],
            passive_solid=arrays.get("passive_solid"),
            passive_void=arrays.get("passive_void"),
            settings=SIMPSettings.from_dict(meta.get("settings", {})),
            name=meta.get("name", "custom"),
        )

    def save(self, path: str | os.PathLike) -> None:
        """Write the problem as an .npz file (arrays + a JSON ``meta`` entry), atomically; the
        path is checked first (its folder exists and takes files, it is not a folder)."""
        from .._checks import output_file

        path = output_file(path, "path", ProblemError)
        tmp = path.with_name(path.name + ".tmp")
        try:
            with open(tmp, "wb") as f:
                meta = np.array(json.dumps(self.metadata()))
                np.savez_compressed(f, meta=meta, **self.to_arrays())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Problem:
        """Read a problem written by `save`; a missing or foreign file raises ProblemError."""
        path = check_path(path)
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except FileNotFoundError:
            raise ProblemError(f"problem file {str(path)!r} does not exist") from None
        except (OSError, ValueError, EOFError):
            raise ProblemError(
                f"problem file {str(path)!r} is not a problem .npz (written by Problem.save)"
            ) from None
        if "meta" not in arrays:
            raise ProblemError(f"problem file {str(path)!r} has no 'meta' entry (not topovae's)")
        try:
            meta = json.loads(str(arrays.pop("meta")))
            return cls.from_arrays(arrays, meta)
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise ProblemError(f"problem file {str(path)!r} has invalid metadata: {e}") from None

    def __repr__(self) -> str:
        return (
            f"Problem(name={self.name!r}, nelx={self.nelx}, nely={self.nely}, "
            f"volfrac={self.volfrac}, ncases={self.ncases}, settings={self.settings})"
        )


def check_problem(value: Any, name: str = "problem") -> Any:
    """``value`` if it is a `Problem` (e.g. ``preset("mbb")``), else a TypeError."""
    if not isinstance(value, Problem):
        raise TypeError(f"{name} must be a topovae Problem, got {type(value).__name__}")
    return value
