"""Named benchmark problems of the topology-optimization literature.

Each preset is a function ``(nelx, nely, volfrac, **settings) -> Problem`` registered in `PRESETS`
with a one-line description and default grid; `preset(name, ...)` builds one by name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._problem import Problem, ProblemError, SIMPSettings, check_grid


def _empty(nelx: int, nely: int, ncases: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    nodes = (nely + 1, nelx + 1)
    return np.zeros(nodes, bool), np.zeros(nodes, bool), np.zeros((ncases, 2, *nodes))


def _check_grid(nelx: Any, nely: Any, minimum: int = 1) -> None:
    for name, v in (("nelx", nelx), ("nely", nely)):
        if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < minimum:
            raise ProblemError(f"{name} must be an integer >= {minimum}, got {v!r}")
    check_grid(int(nelx), int(nely))  # before the arrays of that size are made


def mbb(nelx: int = 60, nely: int = 20, volfrac: float = 0.5, **settings: Any) -> Problem:
    """Half MBB beam (top88): symmetry on the left edge, roller at the bottom-right corner,
    unit downward load at the top-left corner."""
    _check_grid(nelx, nely)
    fx, fy, loads = _empty(nelx, nely)
    fx[:, 0] = True
    fy[nely, nelx] = True
    loads[0, 1, 0, 0] = -1.0
    return Problem(
        nelx, nely, volfrac, fx, fy, loads, settings=SIMPSettings(**settings), name="mbb"
    )


def cantilever(nelx: int = 80, nely: int = 40, volfrac: float = 0.4, **settings: Any) -> Problem:
    """Cantilever: left edge clamped, unit downward load at the middle of the right edge."""
    _check_grid(nelx, nely)
    fx, fy, loads = _empty(nelx, nely)
    fx[:, 0] = fy[:, 0] = True
    loads[0, 1, nely // 2, nelx] = -1.0
    return Problem(
        nelx, nely, volfrac, fx, fy, loads, settings=SIMPSettings(**settings), name="cantilever"
    )


def l_bracket(nelx: int = 100, nely: int = 100, volfrac: float = 0.4, **settings: Any) -> Problem:
    """L-bracket: the upper-right 60 % x 60 % block is passive void; the top of the vertical arm
    is clamped; unit downward load at the middle of the horizontal arm's free end."""
    _check_grid(nelx, nely, minimum=3)
    fx, fy, loads = _empty(nelx, nely)
    arm_x, arm_y = max(1, round(0.4 * nelx)), max(1, round(0.4 * nely))
    void = np.zeros((nely, nelx), bool)
    void[: nely - arm_y, arm_x:] = True
    fx[0, : arm_x + 1] = fy[0, : arm_x + 1] = True
    loads[0, 1, nely - arm_y // 2, nelx] = -1.0
    return Problem(
        nelx,
        nely,
        volfrac,
        fx,
        fy,
        loads,
        passive_void=void,
        settings=SIMPSettings(**settings),
        name="l-bracket",
    )


def bridge(nelx: int = 120, nely: int = 40, volfrac: float = 0.3, **settings: Any) -> Problem:
    """Bridge: a passive solid deck (top row of elements) carries a uniform downward load of
    total 1; pinned at both bottom corners."""
    _check_grid(nelx, nely, minimum=2)
    fx, fy, loads = _empty(nelx, nely)
    fx[nely, 0] = fy[nely, 0] = fx[nely, nelx] = fy[nely, nelx] = True
    w = np.full(nelx + 1, 1.0 / nelx)
    w[[0, -1]] /= 2  # consistent nodal loads of a uniform line load
    loads[0, 1, 0, :] = -w
    deck = np.zeros((nely, nelx), bool)
    deck[0, :] = True
    return Problem(
        nelx,
        nely,
        volfrac,
        fx,
        fy,
        loads,
        passive_solid=deck,
        settings=SIMPSettings(**settings),
        name="bridge",
    )


def michell(nelx: int = 90, nely: int = 45, volfrac: float = 0.2, **settings: Any) -> Problem:
    """Michell-type arch: pinned at both bottom corners, unit downward load at the bottom middle."""
    _check_grid(nelx, nely)
    fx, fy, loads = _empty(nelx, nely)
    fx[nely, 0] = fy[nely, 0] = fx[nely, nelx] = fy[nely, nelx] = True
    loads[0, 1, nely, nelx // 2] = -1.0
    return Problem(
        nelx, nely, volfrac, fx, fy, loads, settings=SIMPSettings(**settings), name="michell"
    )


def two_load(nelx: int = 60, nely: int = 30, volfrac: float = 0.4, **settings: Any) -> Problem:
    """Two load cases (top88 section 5.2): left edge clamped; case 1 a unit upward load at the
    bottom-right corner, case 2 a unit downward load at the top-right corner."""
    _check_grid(nelx, nely)
    fx, fy, loads = _empty(nelx, nely, ncases=2)
    fx[:, 0] = fy[:, 0] = True
    loads[0, 1, nely, nelx] = 1.0
    loads[1, 1, 0, nelx] = -1.0
    return Problem(
        nelx, nely, volfrac, fx, fy, loads, settings=SIMPSettings(**settings), name="two-load"
    )


@dataclass(frozen=True)
class Preset:
    factory: Callable[..., Problem]
    description: str


PRESETS: dict[str, Preset] = {
    "mbb": Preset(mbb, "half MBB beam, load at the top-left corner (top88), 60x20, vf 0.5"),
    "cantilever": Preset(
        cantilever, "cantilever, clamped left edge, load mid right, 80x40, vf 0.4"
    ),
    "l-bracket": Preset(l_bracket, "L-bracket with a passive void corner, 100x100, vf 0.4"),
    "bridge": Preset(bridge, "bridge, passive deck under a uniform load, 120x40, vf 0.3"),
    "michell": Preset(
        michell, "Michell-type arch, pinned corners, load bottom middle, 90x45, vf 0.2"
    ),
    "two-load": Preset(two_load, "cantilever with two load cases (top88 sec. 5.2), 60x30, vf 0.4"),
}


def preset(
    name: str,
    nelx: int | None = None,
    nely: int | None = None,
    volfrac: float | None = None,
    **settings: Any,
) -> Problem:
    """Build a named preset; None keeps the preset's default grid / volume fraction."""
    if not isinstance(name, str) or name not in PRESETS:
        raise ProblemError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}")
    kwargs = {
        k: v for k, v in (("nelx", nelx), ("nely", nely), ("volfrac", volfrac)) if v is not None
    }
    unknown = set(settings) - set(SIMPSettings.__dataclass_fields__)
    if unknown:
        raise ProblemError(f"unknown SIMP settings: {', '.join(sorted(unknown))}")
    return PRESETS[name].factory(**kwargs, **settings)
