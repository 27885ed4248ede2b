"""Dihedral symmetry augmentation: the 8 flips and quarter turns of the grid, applied consistently
to designs, to whole `Problem` values and to batches of condition images.

Minimum compliance is invariant under the symmetries of the (square) grid: mirror or rotate a
problem (supports, loads, passive regions) and its optimal design is the mirrored / rotated
optimal design, with the same compliance. So every training sample gives up to 8 valid samples,
provided the *vector* quantities transform as vectors: a mirror in x negates fx, a quarter turn
swaps the x and y fixity masks and rotates (fx, fy).

Codes (the picture shown with row 0 at the top; physical frame x right, y up):

    code  name            array op (on the last two axes)   (fx, fy) ->   fixity
    0     identity        a                                 ( fx,  fy)    kept
    1     flip_x          a[..., :, ::-1]                   (-fx,  fy)    kept
    2     flip_y          a[..., ::-1, :]                   ( fx, -fy)    kept
    3     rot180          a[..., ::-1, ::-1]                (-fx, -fy)    kept
    4     rot90_ccw       np.rot90(a, 1, axes=(-2, -1))     (-fy,  fx)    x <-> y swapped
    5     rot90_cw        np.rot90(a, -1, axes=(-2, -1))    ( fy, -fx)    x <-> y swapped
    6     transpose       a.swapaxes(-1, -2)                (-fy, -fx)    x <-> y swapped
    7     antitranspose   a[..., ::-1, ::-1].swapaxes(-1, -2)  ( fy,  fx)  x <-> y swapped

Every code is "transpose (codes 4..7), then reverse rows, then reverse columns"; codes 4..7 swap
the grid's width and height, so a batch (one shape) can use them only on a square grid.

Usage::

    from topovae.datasets._augment import transform_problem, transform_design, augment_batch
    p4 = transform_problem(p, 4)               # the problem turned a quarter counter-clockwise
    x4 = transform_design(result.density, 4)   # ... and its SIMP design, turned the same way

    # in a training step: x (B, 1, H, W) designs, c (B, C, H, W) condition images
    codes = random_codes(x.shape[0], H, W, generator)  # (B,) long, uniform in transforms(H, W)
    x, c = augment_batch(x, c, codes, ds.condition_channels)

torch is imported only by the torch functions, so the numpy half costs no torch import.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..solvers import Problem, ProblemError
from ..solvers._problem import check_problem
from ._store import FIELDS, DatasetError

if TYPE_CHECKING:
    import torch

TRANSFORM_NAMES = (
    "identity", "flip_x", "flip_y", "rot180", "rot90_ccw", "rot90_cw", "transpose",
    "antitranspose",
)  # fmt: skip

# code -> (transpose, reverse rows, reverse columns), applied in that order
_OPS = (
    (False, False, False),
    (False, False, True),
    (False, True, False),
    (False, True, True),
    (True, True, False),  # rot90(a) = a.T[::-1]
    (True, False, True),  # rot90(a, -1) = a.T[:, ::-1]
    (True, False, False),
    (True, True, True),
)
# the two quarter turns undo each other; the rest are involutions
_INVERSE = (0, 1, 2, 3, 5, 4, 6, 7)

# Channels of a condition image that are moved but keep their values (no direction attached).
SCALAR_CHANNELS = ("volfrac", "passive_solid", "passive_void", *FIELDS)
_PAIRS = (("fx", "fy"), ("fixed_x", "fixed_y"))  # swapped by a transpose


def _check_code(code: int) -> int:
    if isinstance(code, bool) or not isinstance(code, int | np.integer) or not 0 <= code < 8:
        raise DatasetError(f"transform code must be an integer in 0..7, got {code!r}")
    return int(code)


def force_signs(code: int) -> tuple[bool, int, int]:
    """(swap, sx, sy): the force maps to (fx', fy') = (sx * a, sy * b) with (a, b) = (fy, fx) if
    swap else (fx, fy).

    Why: a transpose of the array sends the point (x, y) = (j, -i) to (-y, -x), so forces map
    (fx, fy) -> (-fy, -fx); reversing the rows mirrors y (fy -> -fy), reversing the columns
    mirrors x (fx -> -fx). Composing these in `_OPS` order gives the signs.
    """
    t, rows, cols = _OPS[_check_code(code)]
    sx = (-1 if t else 1) * (-1 if cols else 1)
    sy = (-1 if t else 1) * (-1 if rows else 1)
    return t, sx, sy


def transforms(height: int, width: int) -> tuple[int, ...]:
    """The codes that keep an (height, width) grid's shape: all 8 if square, else 0..3."""
    for name, v in (("height", height), ("width", width)):
        if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 1:
            raise DatasetError(f"{name} must be a positive integer, got {v!r}")
    return tuple(range(8)) if height == width else (0, 1, 2, 3)


def inverse(code: int) -> int:
    """The code that undoes ``code`` (5 for 4, 4 for 5, the code itself otherwise)."""
    return _INVERSE[_check_code(code)]


def transform_design(density: np.ndarray, code: int) -> np.ndarray:
    """(..., H, W) -> (..., H, W), or (..., W, H) for codes 4..7: any element or node field
    (scalar values; use `transform_problem` for forces and fixity)."""
    a = np.asarray(density)
    if a.ndim < 2:
        raise DatasetError(f"density must have shape (..., H, W), got {a.shape}")
    t, rows, cols = _OPS[_check_code(code)]
    if t:
        a = a.swapaxes(-1, -2)
    if rows:
        a = a[..., ::-1, :]
    if cols:
        a = a[..., :, ::-1]
    return np.ascontiguousarray(a)


def transform_problem(problem: Problem, code: int) -> Problem:
    """The mirrored / rotated `Problem`: all load cases, supports and passive masks transformed,
    same volfrac and settings, name suffixed with the transform's name (code 0: ``problem``).

    Codes 4..7 also work on a non-square grid: nelx and nely swap.
    """
    check_problem(problem)
    code = _check_code(code)
    if code == 0:
        return problem
    swap, sx, sy = force_signs(code)
    fixed_x = transform_design(problem.fixed_x, code)  # (nely'+1, nelx'+1)
    fixed_y = transform_design(problem.fixed_y, code)
    if swap:  # a node fixed in x is now fixed in y and vice versa
        fixed_x, fixed_y = fixed_y, fixed_x
    loads = transform_design(problem.loads, code)  # (ncases, 2, nely'+1, nelx'+1), not yet turned
    if swap:
        loads = loads[:, ::-1]
    loads = loads * np.array([sx, sy], np.float64)[None, :, None, None]
    h, w = transform_design(problem.passive_solid, code).shape
    return Problem(
        nelx=w,
        nely=h,
        volfrac=problem.volfrac,
        fixed_x=fixed_x,
        fixed_y=fixed_y,
        loads=loads,
        passive_solid=transform_design(problem.passive_solid, code),
        passive_void=transform_design(problem.passive_void, code),
        settings=problem.settings,
        name=f"{problem.name}+{TRANSFORM_NAMES[code]}",
    )


def _channel_tables(channels: tuple[str, ...], need_swap: bool) -> tuple[list[int], np.ndarray]:
    """(swap permutation (C,), signs (8, C)) of the condition channels named ``channels``."""
    channels = tuple(channels)
    known = set(SCALAR_CHANNELS).union(*_PAIRS)
    unknown = [n for n in channels if n not in known]
    if unknown:
        raise DatasetError(
            f"unknown condition channel(s) {', '.join(map(repr, unknown))}; augment_batch knows "
            f"{', '.join(sorted(known))}"
        )
    if len(set(channels)) != len(channels):
        raise DatasetError(f"condition channel names repeat: {channels}")
    index = {n: k for k, n in enumerate(channels)}
    perm = list(range(len(channels)))
    for a, b in _PAIRS:
        if a in index and b in index:
            perm[index[a]], perm[index[b]] = index[b], index[a]
        elif need_swap and (a in index or b in index):
            raise DatasetError(
                f"a quarter turn swaps {a!r} and {b!r}, but only one of them is a channel"
            )
    signs = np.ones((8, len(channels)), np.float32)
    for code in range(8):
        _, sx, sy = force_signs(code)
        if "fx" in index:
            signs[code, index["fx"]] = sx
        if "fy" in index:
            signs[code, index["fy"]] = sy
    return perm, signs


def _pixel_tables(height: int, width: int, n: int, device) -> torch.Tensor:
    """(n, H*W) long: entry p of row k is the flat source pixel of output pixel p under code k."""
    import torch

    base = torch.arange(height * width, device=device).view(height, width)
    rows = []
    for code in range(n):
        t, r, c = _OPS[code]
        a = base.transpose(0, 1) if t else base
        if r:
            a = a.flip(0)
        if c:
            a = a.flip(1)
        rows.append(a.reshape(-1))
    return torch.stack(rows)


def augment_batch(
    x: torch.Tensor,
    c: torch.Tensor | None,
    codes: torch.Tensor,
    channels: tuple[str, ...],
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Transform each sample of a batch by its own code: (x', c') with the shapes of (x, c).

    x: (B, K, H, W) designs (K = 1 usually); c: (B, C, H, W) condition images named by
    ``channels`` (`BASE_CHANNELS`, optionally followed by `FIELDS`), or None; codes: (B,) ints in
    0..7 (codes 4..7 need H == W). Pixels move by one gather per tensor, the fx / fy and fixed_x /
    fixed_y channels swap under codes 4..7 and fx / fy change sign as in the module table; other
    channels only move. Works on any device; no Python loop over samples.
    """
    import torch

    for name, t in (("x", x), ("codes", codes)) + ((("c", c),) if c is not None else ()):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if codes.is_floating_point() or codes.is_complex() or codes.dtype == torch.bool:
        raise DatasetError(f"codes must be integers (from random_codes), got {codes.dtype}")
    if x.ndim != 4:
        raise DatasetError(f"x must have shape (B, K, H, W), got {tuple(x.shape)}")
    b, _, h, w = x.shape
    if codes.ndim != 1 or codes.shape[0] != b:
        raise DatasetError(f"codes must have shape ({b},), got {tuple(codes.shape)}")
    if c is not None and (c.ndim != 4 or c.shape[0] != b or c.shape[2:] != x.shape[2:]):
        raise DatasetError(f"c must have shape ({b}, C, {h}, {w}), got {tuple(c.shape)}")
    if c is not None and c.shape[1] != len(channels):
        raise DatasetError(f"c has {c.shape[1]} channels but {len(channels)} names were given")
    if b == 0:
        return x, c
    codes = codes.to(device=x.device, dtype=torch.long)
    lo, hi = (int(v) for v in torch.aminmax(codes))  # one host sync per batch
    if lo < 0 or hi > 7:
        raise DatasetError(f"transform codes must be in 0..7, got values in {lo}..{hi}")
    if hi >= 4 and h != w:
        raise DatasetError(
            f"codes 4..7 (quarter turns, transposes) swap height and width, so they need a "
            f"square grid; this batch is {h}x{w}: use transforms({h}, {w}) = (0, 1, 2, 3)"
        )
    index = _pixel_tables(h, w, 8 if hi >= 4 else 4, x.device)[codes]  # (B, H*W)

    def move(a: torch.Tensor) -> torch.Tensor:  # (B, K, H, W) -> (B, K, H, W), pixels moved
        flat = a.reshape(b, a.shape[1], h * w)
        return flat.gather(2, index[:, None, :].expand_as(flat)).view_as(a)

    x = move(x)
    if c is None:
        return x, None
    perm, signs = _channel_tables(tuple(channels), need_swap=hi >= 4)
    c = move(c)
    swap = (codes >= 4)[:, None, None, None]  # (B, 1, 1, 1): codes 4..7 transpose
    if perm != list(range(len(perm))):
        c = torch.where(swap, c[:, perm], c)
    sign = torch.as_tensor(signs, dtype=c.dtype, device=c.device)[codes]  # (B, C)
    return x, c * sign[:, :, None, None]


def symmetric_copies(x, c, channels: tuple[str, ...] | None):
    """(x', c') of a batch under every symmetry of its grid (`transforms`: 8 if square, else
    4), the batch itself first; with ``channels`` None (conditions whose channels are not
    known) the batch alone."""
    import torch

    codes = transforms(x.shape[-2], x.shape[-1]) if channels else (0,)
    for code in codes:
        if code == 0:
            yield x, c
        else:
            which = torch.full((x.shape[0],), code, dtype=torch.long, device=x.device)
            yield augment_batch(x, c, which, tuple(channels))


def random_codes(
    batch: int,
    height: int,
    width: int,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """(batch,) long codes drawn uniformly from `transforms(height, width)` with ``generator``
    (same generator state, same codes), on the generator's device unless ``device`` is given."""
    import torch

    n = len(transforms(height, width))  # the allowed codes are 0..n-1
    if (
        isinstance(batch, bool)
        or not isinstance(batch, int | np.integer)
        or not 0 <= batch <= 2**24
    ):
        raise DatasetError(f"batch must be an integer in 0..{2**24}, got {batch!r}")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    if device is not None:
        from ..solvers.batched import resolve_device

        try:
            device = resolve_device(device)
        except ProblemError as e:
            raise DatasetError(str(e)) from None
    gen_device = generator.device if generator is not None else "cpu"
    codes = torch.randint(0, n, (batch,), generator=generator, device=gen_device)
    return codes if device is None else codes.to(device)
