"""Argument checks shared by the public functions: a wrong kind of argument gets a TypeError
naming the argument and what it may be, instead of an AttributeError from deep inside. The
bottom layer: it imports nothing of topovae (`solvers.check_problem` and `models.check_model`
check the project's own types where they are defined).

    path = check_path(path, "data")   # str or os.PathLike -> Path, or TypeError
    a = real_array(value, "designs", JudgeError)   # float64 array of real numbers, or JudgeError
    png = output_file(path, "out", WorkflowError, image=True)   # checked before any work
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

# designs one call draws, decodes or scores (-n, --steps, -k, --starts, sweeps): each is judged
# by an FE solve and a picture of more is unreadable; more is a typo that would exhaust memory
MAX_DESIGNS = 4096


def type_name(value: Any) -> str:
    return type(value).__name__


def check_path(value: Any, name: str = "path") -> Path:
    """``value`` as a Path if it is a str or os.PathLike, else a TypeError."""
    if not isinstance(value, str | os.PathLike):
        raise TypeError(f"{name} must be a file path (str or os.PathLike), got {type_name(value)}")
    return Path(value)


def real_array(value: Any, name: str, error: type[Exception]) -> np.ndarray:
    """``value`` as a float64 array; ``error`` (naming it) for strings, objects or complex."""
    try:
        a = np.asarray(value)
    except (TypeError, ValueError, RuntimeError) as e:  # ragged lists, grad-tracking tensors
        raise error(f"{name} must be an array of real numbers ({e})") from None
    if a.dtype.kind not in "biuf":
        raise error(f"{name} must be an array of real numbers, got dtype {a.dtype}")
    return a.astype(np.float64)


def check_unit_range(a: np.ndarray, name: str, error: type[Exception], tol: float = 0.0) -> None:
    """``error`` unless every value of ``a`` is finite and in [-tol, 1 + tol]."""
    if a.size == 0:
        return
    if not np.all(np.isfinite(a)):
        raise error(f"{name} must be finite, got {a[~np.isfinite(a)].flat[0]}")
    lo, hi = float(a.min()), float(a.max())
    if lo < -tol or hi > 1 + tol:
        raise error(f"{name} must be in [0, 1], got {lo if lo < -tol else hi}")


def _writable(folder: Path, what: str, path: Any, error: type[Exception]) -> None:
    """``error`` unless this process can create files in ``folder`` (tried, not guessed:
    permission bits say nothing for root or for /proc)."""
    import tempfile

    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        raise error(
            f"{what} {str(path)!r}: cannot write in folder {str(folder)!r} ({e.strerror or e})"
        ) from None


def image_suffixes() -> tuple[str, ...]:
    """The file suffixes matplotlib writes (".png", ".pdf", ...)."""
    from matplotlib.backend_bases import FigureCanvasBase

    return tuple(f".{k}" for k in sorted(FigureCanvasBase.get_supported_filetypes()))


def output_file(value: Any, what: str, error: type[Exception], image: bool = False) -> Path:
    """A file to write, checked before any work: a non-empty path whose folder exists and takes
    files, not a folder itself; an image has a suffix matplotlib writes. ``error`` (naming
    ``what`` and the path) otherwise."""
    p = check_path(value, what)
    if not str(value).strip():
        raise error(f"{what} is empty ({value!r}); give a file name")
    if not p.parent.is_dir():
        raise error(f"{what} {str(value)!r}: folder {str(p.parent)!r} does not exist")
    if p.is_dir():
        raise error(f"{what} {str(value)!r} is a folder; give a file name")
    if image and p.suffix.lower() not in (allowed := image_suffixes()):
        raise error(
            f"{what} {str(value)!r}: unknown image type {p.suffix or '(none)'!r}; use one of "
            + ", ".join(allowed)
        )
    _writable(p.parent, what, value, error)
    return p


def output_folder(value: Any, what: str, error: type[Exception], parents: bool = False) -> Path:
    """A folder to write into, checked before any work: a non-empty path that is not a file,
    whose nearest existing folder (its parent unless ``parents``) takes files."""
    p = check_path(value, what)
    if not str(value).strip():  # Path("") is the current folder: files would land among its own
        raise error(f"{what} must name a folder, got {value!r}")
    if p.exists() and not p.is_dir():
        raise error(f"{what} {str(value)!r} is a file; give a folder")
    base = p if p.exists() else p.parent
    if parents:
        while not base.exists():
            base = base.parent
    if not base.is_dir():
        problem = "is not a folder" if base.exists() else "does not exist"
        raise error(f"{what} {str(value)!r}: folder {str(base)!r} {problem}")
    _writable(base, what, value, error)
    return p
