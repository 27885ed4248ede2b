"""Distributions of problems: sample i is a pure function of (seed, i).

    dist = distribution("mixed", nelx=64, nely=64)
    p = sample_problem(dist, seed=0, index=17)      # the same Problem every time, anywhere

Randomness comes from ``numpy.random.default_rng(SeedSequence([seed, index]))``, so any sample
can be re-made alone, in any order, in any process.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._checks import type_name
from ..solvers import Problem, ProblemError, SIMPSettings

SUPPORT_FAMILIES = ("clamped-edge", "simply-supported", "segments", "mbb")
LOAD_KINDS = ("point", "distributed")
LOAD_PLACES = ("boundary", "anywhere")


@dataclass(frozen=True)
class ProblemDistribution:
    """What problems look like; every random choice is drawn per sample.

    supports: families drawn uniformly: "clamped-edge" (one whole edge fixed), "simply-supported"
        (pin at one end of an edge, roller at the other), "segments" (1-2 random fixed boundary
        segments), "mbb" (symmetry edge on the left, roller at the bottom-right corner).
    loads: inclusive range of the number of loads; each is a point load or a uniformly
        distributed load on a boundary segment (``load_kinds``), with a uniform random direction
        (``load_angle``: range in degrees, 0 = +x, -90 = down) and magnitude in ``magnitude``.
    load_place: "boundary" or "anywhere" (point loads at interior nodes too).
    holes: inclusive range of the number of passive void discs (radius 8-15 % of the grid).
    pads: a passive solid 2x2-element pad under every point load.
    """

    name: str = "custom"
    nelx: int = 64
    nely: int = 64
    volfrac: tuple[float, float] = (0.3, 0.5)
    supports: tuple[str, ...] = SUPPORT_FAMILIES
    loads: tuple[int, int] = (1, 1)
    load_kinds: tuple[str, ...] = ("point",)
    load_place: str = "boundary"
    load_angle: tuple[float, float] = (-180.0, 180.0)
    magnitude: tuple[float, float] = (1.0, 1.0)
    holes: tuple[int, int] = (0, 0)
    pads: bool = False
    settings: SIMPSettings = field(
        default_factory=lambda: SIMPSettings(filter="density", rmin=2.0, max_iter=300)
    )

    def __post_init__(self) -> None:
        for n in ("nelx", "nely"):
            v = getattr(self, n)
            if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 4:
                raise ProblemError(f"{n} must be an integer >= 4, got {v!r}")
        if not isinstance(self.name, str) or not self.name.strip():
            raise ProblemError(f"name must be a non-empty string, got {self.name!r}")
        if not isinstance(self.pads, bool | np.bool_):
            raise ProblemError(f"pads must be True or False, got {self.pads!r}")
        if not isinstance(self.settings, SIMPSettings):
            raise ProblemError(
                f"settings must be a SIMPSettings, got {type(self.settings).__name__}"
            )
        for n, integral in (("volfrac", False), ("loads", True), ("load_angle", False),
                            ("magnitude", False), ("holes", True)):  # fmt: skip
            v = getattr(self, n)
            kind = (int, np.integer) if integral else (int, float, np.integer, np.floating)
            if (
                not isinstance(v, tuple | list) or len(v) != 2
                or not all(isinstance(a, kind) and not isinstance(a, bool) for a in v)
                or not all(np.isfinite(a) for a in v) or not v[0] <= v[1]
            ):  # fmt: skip
                what = "integers" if integral else "finite numbers"
                raise ProblemError(f"{n} must be a (low, high) pair of {what} with low <= high, "
                                   f"got {v!r}")  # fmt: skip
        for n, allowed in (("supports", SUPPORT_FAMILIES), ("load_kinds", LOAD_KINDS)):
            v = getattr(self, n)
            if not isinstance(v, tuple | list) or not v:
                raise ProblemError(f"{n} must be a non-empty tuple of: {', '.join(allowed)}")
            for item in v:
                if item not in allowed:
                    raise ProblemError(
                        f"unknown {n} entry {item!r}; choose from: {', '.join(allowed)}"
                    )
        lo, hi = self.volfrac
        if not 0 < lo <= hi < 1:
            raise ProblemError(f"volfrac range must satisfy 0 < lo <= hi < 1, got {self.volfrac}")
        if self.load_place not in LOAD_PLACES:
            raise ProblemError(f"unknown load place {self.load_place!r}; choose boundary|anywhere")
        if not 1 <= self.loads[0]:
            raise ProblemError(f"loads range must satisfy 1 <= lo <= hi, got {self.loads}")
        if not 0 <= self.holes[0]:
            raise ProblemError(f"holes range must satisfy 0 <= lo <= hi, got {self.holes}")
        nodes, elements = (self.nelx + 1) * (self.nely + 1), self.nelx * self.nely
        if self.loads[1] > nodes:  # sampling more distinct loaded nodes than exist never ends
            raise ProblemError(
                f"loads range {self.loads} asks for more loads than the grid's {nodes} nodes"
            )
        if self.holes[1] > elements:
            raise ProblemError(
                f"holes range {self.holes} asks for more holes than the grid's {elements} elements"
            )
        if self.magnitude[0] <= 0:
            raise ProblemError(f"magnitude range must be positive, got {self.magnitude}")

    @property
    def shape(self) -> tuple[int, int]:
        return (self.nely, self.nelx)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["settings"] = self.settings.to_dict()
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ProblemDistribution:
        if not isinstance(d, dict):
            raise ProblemError(
                f"a distribution must be a dict of its fields, got {type(d).__name__}"
            )
        d = dict(d)
        d["settings"] = SIMPSettings.from_dict(d.get("settings", {}))
        for k in ("volfrac", "supports", "loads", "load_kinds", "load_angle", "magnitude", "holes"):
            if k in d:
                if isinstance(d[k], str) or not isinstance(d[k], list | tuple):
                    raise ProblemError(f"{k} must be a list, got {d[k]!r}")
                d[k] = tuple(d[k])
        unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ProblemError(f"unknown distribution fields: {', '.join(sorted(unknown))}")
        return cls(**d)


def _named() -> dict[str, dict[str, Any]]:
    return {
        "mbb-like": dict(supports=("mbb",), volfrac=(0.3, 0.6), load_angle=(-135.0, -45.0)),
        "cantilever-like": dict(supports=("clamped-edge",), volfrac=(0.3, 0.6)),
        # TopoDiff's 64x64 set: one load on the boundary, volume fraction 0.3-0.5
        "topodiff-like": dict(volfrac=(0.3, 0.5)),
        "mixed": dict(
            volfrac=(0.25, 0.6),
            loads=(1, 3),
            load_kinds=("point", "distributed"),
            load_place="anywhere",
            magnitude=(0.5, 1.0),
            holes=(0, 2),
        ),
    }


DISTRIBUTIONS = tuple(_named())


def distribution(
    name: str, nelx: int = 64, nely: int = 64, **overrides: Any
) -> ProblemDistribution:
    """A named distribution (see DISTRIBUTIONS) on an nelx x nely grid."""
    named = _named()
    if not isinstance(name, str) or name not in named:
        raise ProblemError(f"unknown distribution {name!r}; choose one of: {', '.join(named)}")
    return ProblemDistribution(name=name, nelx=nelx, nely=nely, **{**named[name], **overrides})


# -- sampling ------------------------------------------------------------------------------------
def _boundary_nodes(nely: int, nelx: int) -> np.ndarray:
    """(n, 2) (row, col) of the boundary nodes, clockwise from the top-left corner."""
    top = [(0, j) for j in range(nelx + 1)]
    right = [(i, nelx) for i in range(1, nely + 1)]
    bottom = [(nely, j) for j in range(nelx - 1, -1, -1)]
    left = [(i, 0) for i in range(nely - 1, 0, -1)]
    return np.array(top + right + bottom + left)


def _edge(nely: int, nelx: int, which: int) -> np.ndarray:
    """Nodes of edge 0 top, 1 right, 2 bottom, 3 left, in order along the edge."""
    if which == 0:
        return np.array([(0, j) for j in range(nelx + 1)])
    if which == 1:
        return np.array([(i, nelx) for i in range(nely + 1)])
    if which == 2:
        return np.array([(nely, j) for j in range(nelx + 1)])
    return np.array([(i, 0) for i in range(nely + 1)])


def _supports(rng: np.random.Generator, family: str, nely: int, nelx: int):
    fx = np.zeros((nely + 1, nelx + 1), bool)
    fy = np.zeros_like(fx)
    if family == "mbb":
        fx[:, 0] = True
        fy[nely, nelx] = True
    elif family == "clamped-edge":
        e = _edge(nely, nelx, int(rng.integers(4)))
        fx[e[:, 0], e[:, 1]] = fy[e[:, 0], e[:, 1]] = True
    elif family == "simply-supported":
        which = int(rng.integers(4))
        e = _edge(nely, nelx, which)
        (i0, j0), (i1, j1) = e[0], e[-1]
        fx[i0, j0] = fy[i0, j0] = True  # pin
        (fy if which in (0, 2) else fx)[i1, j1] = True  # roller, normal to the edge
    else:  # segments
        ring = _boundary_nodes(nely, nelx)
        for _ in range(int(rng.integers(1, 3))):
            length = max(2, int(rng.uniform(0.1, 0.3) * len(ring) / 4))
            start = int(rng.integers(len(ring)))
            seg = ring[(start + np.arange(length)) % len(ring)]
            fx[seg[:, 0], seg[:, 1]] = fy[seg[:, 0], seg[:, 1]] = True
    return fx, fy


def _loads(rng, dist: ProblemDistribution, fx, fy):
    nely, nelx = dist.nely, dist.nelx
    load = np.zeros((2, nely + 1, nelx + 1))
    ring = _boundary_nodes(nely, nelx)
    fixed = fx | fy
    points = []
    for _ in range(int(rng.integers(dist.loads[0], dist.loads[1] + 1))):
        angle = math.radians(rng.uniform(*dist.load_angle))
        mag = rng.uniform(*dist.magnitude)
        kind = dist.load_kinds[int(rng.integers(len(dist.load_kinds)))]
        if kind == "distributed":
            length = max(2, int(rng.uniform(0.1, 0.3) * len(ring) / 4))
            start = int(rng.integers(len(ring)))
            nodes = ring[(start + np.arange(length)) % len(ring)]
        else:
            if dist.load_place == "anywhere" and rng.random() < 0.5:
                nodes = np.array([[rng.integers(1, nely), rng.integers(1, nelx)]])
            else:
                nodes = ring[[int(rng.integers(len(ring)))]]
            points.append(tuple(nodes[0]))
        nodes = nodes[~fixed[nodes[:, 0], nodes[:, 1]]]
        if len(nodes) == 0:
            continue
        w = mag / len(nodes)
        np.add.at(load[0], (nodes[:, 0], nodes[:, 1]), w * math.cos(angle))
        np.add.at(load[1], (nodes[:, 0], nodes[:, 1]), w * math.sin(angle))
    return load, points


def _passive(rng, dist: ProblemDistribution, fx, fy, load, points):
    nely, nelx = dist.nely, dist.nelx
    solid = np.zeros((nely, nelx), bool)
    void = np.zeros((nely, nelx), bool)
    if dist.pads:
        for i, j in points:
            solid[max(0, i - 1) : i + 1, max(0, j - 1) : j + 1] = True
    ii, jj = np.meshgrid(np.arange(nely) + 0.5, np.arange(nelx) + 0.5, indexing="ij")
    # elements touching a load or a support stay in the design domain
    keep = np.zeros((nely + 1, nelx + 1), bool)
    keep |= fx | fy | (np.abs(load).sum(0) > 0)
    touch = keep[:-1, :-1] | keep[1:, :-1] | keep[:-1, 1:] | keep[1:, 1:]
    size = min(nely, nelx)
    for _ in range(int(rng.integers(dist.holes[0], dist.holes[1] + 1))):
        r = rng.uniform(0.08, 0.15) * size
        ci, cj = rng.uniform(r, nely - r), rng.uniform(r, nelx - r)
        disc = (ii - ci) ** 2 + (jj - cj) ** 2 <= r * r
        void |= disc & ~touch & ~solid
    return solid, void


def check_distribution(dist: Any) -> ProblemDistribution:
    if not isinstance(dist, ProblemDistribution):
        raise TypeError(f"dist must be a ProblemDistribution, got {type_name(dist)}")
    return dist


def sample_problem(dist: ProblemDistribution, seed: int, index: int) -> Problem:
    """Problem ``index`` of the stream ``seed``: a pure function of (dist, seed, index)."""
    check_distribution(dist)
    if any(isinstance(v, bool) or not isinstance(v, int | np.integer) for v in (seed, index)):
        raise TypeError(f"seed and index must be integers, got seed={seed!r}, index={index!r}")
    if index < 0 or seed < 0:
        raise ProblemError(f"seed and index must be >= 0, got seed={seed}, index={index}")
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), int(index)]))
    for _ in range(100):  # redraw the rare invalid combination (e.g. every load on a support)
        volfrac = float(rng.uniform(*dist.volfrac))
        family = dist.supports[int(rng.integers(len(dist.supports)))]
        fx, fy = _supports(rng, family, dist.nely, dist.nelx)
        load, points = _loads(rng, dist, fx, fy)
        solid, void = _passive(rng, dist, fx, fy, load, points)
        try:
            return Problem(
                dist.nelx, dist.nely, volfrac, fx, fy, load, passive_solid=solid,
                passive_void=void, settings=dist.settings, name=f"{dist.name}[{seed}:{index}]",
            )  # fmt: skip
        except ProblemError:
            continue
    raise ProblemError(f"could not draw a valid problem from {dist.name!r} in 100 tries")
