"""Designs from elsewhere into a dataset file, and ill-posed samples out of an older one.

    from topovae.datasets import import_images, import_arrays, ill_posed_samples, clean_dataset
    import_images("pictures/", "d.h5", size=(64, 32), pattern=r"vf([0-9.]+)")
    import_arrays("designs.npz", "d.h5")          # the layout below
    clean_dataset("old.h5", "clean.h5")            # a copy without the ill-posed samples

Images. Every PNG or JPEG file of a folder (sorted by name) becomes one design: greyscale
(transparent pixels count as white), resized to the nelx x nely grid with Pillow (area average
when shrinking, Lanczos otherwise), dark = material (density 1) unless ``invert``. Its volume
fraction label is parsed from the file name without its suffix by ``pattern`` (a regular
expression with one group, e.g. ``r"vf([0-9.]+)"`` for "beam_vf0.35.png"), or given, or else the
design's mean density. An image of another shape than the grid (width / height off by more than
5 %) is refused unless ``stretch``. Pillow is the ``images`` extra: pip install 'topovae[images]'.

Arrays: one .npz with named arrays, as ``np.savez("designs.npz", designs=..., loads=...)`` writes
it (or a .npy of designs alone); N designs on an nely x nelx grid, the orientation of
`topovae.solvers.Problem` (row 0 at the top, y up for forces):

    designs          (N, nely, nelx)        float in [0, 1]      required
    volfrac          (N,)                   float in [0, 1]      default: each design's mean
    loads            (N, 2, nely+1, nelx+1) float (fx, fy) node forces; (N, 1, 2, ...) too
    fixed_x, fixed_y (N, nely+1, nelx+1)    bool (or 0/1): the node's x / y displacement is fixed
    passive_solid, passive_void (N, nely, nelx) bool (or 0/1), optional, with the problem only

``loads``, ``fixed_x`` and ``fixed_y`` come together. With them every sample's `Problem` is built
and validated: an ill-posed one (no supports, a rigid-body motion left free, a volume fraction
outside (0, 1), ...) refuses the import, naming the sample, unless ``skip_ill_posed`` leaves it
out (the kept samples keep their position in the arrays as ``index``). Such a file is usable by
every model, a cvae included. The file stores one load case per sample.

Designs without a problem (images, or arrays without ``loads``/``fixed_x``/``fixed_y``): the file
holds ``index``, ``density`` and ``problem/volfrac`` only; no other ``problem/*`` array and no
``result/*`` (there was no SIMP solve). `has_problems` tells (``"problem/loads" in file``), which
is what `topovae train` checks to refuse a cvae; `TopologyDataset` reads such a file with zero
load, support and passive channels, for a vae or beta-vae.

Every imported file records what it came from in the JSON attribute ``imported`` (kind, source,
pattern, count, date, ...; see `import_info`); `topovae info` shows it. Writes are atomic (a
temporary file, fsynced, then ``os.replace``), one writer at a time (the lock `DatasetWriter`
takes), and an existing output is refused unless ``overwrite``. Every bad input is refused with
one `DatasetError` line before anything is written.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import os
import re
import uuid
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from .._checks import check_path, type_name
from .._lock import WriterLock
from ..solvers import Problem, ProblemError, SIMPSettings
from ._sampling import ProblemDistribution
from ._store import (
    DatasetError,
    _fsync_replace,
    create_samples,
    read_header,
    read_rows,
    verify_dataset,
    write_header,
)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
ARRAY_NAMES = (
    "designs", "volfrac", "loads", "fixed_x", "fixed_y", "passive_solid", "passive_void",
)  # fmt: skip
PROBLEM_ARRAYS = ("fixed_x", "fixed_y", "loads", "passive_solid", "passive_void")
PILLOW_HINT = "importing images needs Pillow: pip install 'topovae[images]'"
ASPECT_TOLERANCE = 0.05
MAX_ELEMENTS = 2048 * 2048


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _check_size(size: Sequence[int]) -> tuple[int, int]:
    try:
        nelx, nely = size
    except (TypeError, ValueError):
        raise DatasetError(f"size must be (nelx, nely), got {size!r}") from None
    for name, v in (("nelx", nelx), ("nely", nely)):
        if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 4:
            raise DatasetError(f"size: {name} must be an integer >= 4, got {v!r}")
    if nelx * nely > MAX_ELEMENTS:
        raise DatasetError(f"size {nelx}x{nely} is too large: at most 2048x2048 elements")
    return int(nelx), int(nely)


# -- the output file -----------------------------------------------------------------------------
def _check_out(out: Path, overwrite: bool, sources: Sequence[Path] = ()) -> None:
    """The output's checks that need no lock (repeated under it): before anything is written."""
    if not out.parent.is_dir():
        raise DatasetError(f"output folder {str(out.parent)!r} does not exist")
    if out.is_dir():
        raise DatasetError(f"output {str(out)!r} is a folder; give a file name")
    for s in sources:
        if s.exists() and out.exists() and os.path.samefile(s, out):
            raise DatasetError(f"output {str(out)!r} is the input itself; write another file")
    if out.exists() and not overwrite:
        raise DatasetError(f"{str(out)!r} exists; pass --overwrite to replace it")


class _AtomicFile:
    """An HDF5 dataset file written to a temporary and renamed over ``out`` on success, under
    the writer lock of ``out`` (the one `DatasetWriter` takes)."""

    def __init__(self, out: Path, overwrite: bool, sources: Sequence[Path] = ()) -> None:
        self.out, self.overwrite, self.sources = out, overwrite, sources

    def __enter__(self) -> h5py.File:
        lock = self.out.with_name(f".{self.out.name}.lock")
        self._lock = WriterLock(lock, str(self.out), DatasetError).acquire()
        try:
            _check_out(self.out, self.overwrite, self.sources)  # again, now that we hold it
            for stale in self.out.parent.glob(self.out.name + ".tmp-*"):  # of a killed writer
                stale.unlink(missing_ok=True)
            self.tmp = self.out.with_name(self.out.name + f".tmp-{uuid.uuid4().hex[:8]}")
            self.file = h5py.File(self.tmp, "w")
        except BaseException:
            self._lock.release()
            raise
        return self.file

    def __exit__(self, kind, value, tb) -> None:
        try:
            self.file.close()
            if kind is None:
                _fsync_replace(self.tmp, self.out)
        finally:
            self.tmp.unlink(missing_ok=True)
            self._lock.release()


def _write_attrs(f: h5py.File, nelx: int, nely: int, labels: np.ndarray, n_requested: int,
                 settings: SIMPSettings | None, imported: dict[str, Any]) -> None:  # fmt: skip
    lo = float(np.clip(labels.min(), 1e-3, 0.999)) if labels.size else 0.3
    hi = float(np.clip(labels.max(), 1e-3, 0.999)) if labels.size else 0.5
    dist = ProblemDistribution(name="imported", nelx=nelx, nely=nely, volfrac=(lo, hi))
    if settings is not None:
        dist = dataclasses.replace(dist, settings=settings)
    write_header(f, dist, 0, int(n_requested), ())
    f.attrs["imported"] = json.dumps(imported, sort_keys=True)


def _json_attr(path: str | os.PathLike, name: str) -> dict[str, Any] | None:
    with h5py.File(path, "r") as f:
        raw = f.attrs.get(name)
    if raw is None:
        return None
    try:
        return json.loads(raw.decode() if isinstance(raw, bytes) else raw)
    except ValueError:
        raise DatasetError(f"{str(path)!r} has an unreadable {name!r} attribute") from None


def import_info(path: str | os.PathLike) -> dict[str, Any] | None:
    """What an imported file came from (kind, source, pattern, count, date, ...), else None."""
    read_header(path)
    return _json_attr(path, "imported")


def clean_info(path: str | os.PathLike) -> dict[str, Any] | None:
    """What `clean_dataset` left out of a file it wrote (source, dropped, kept, date), else None."""
    read_header(path)
    return _json_attr(path, "cleaned")


def has_problems(path: str | os.PathLike) -> bool:
    """Whether the file's samples have problems (loads, supports): what a cvae needs."""
    read_header(path)  # a clear DatasetError for a missing, foreign or damaged file
    with h5py.File(check_path(path, "the dataset path"), "r") as f:
        return "problem/loads" in f


# -- images --------------------------------------------------------------------------------------
def _pillow():
    try:
        from PIL import Image, ImageOps
    except ImportError:
        raise DatasetError(PILLOW_HINT) from None
    return Image, ImageOps


def _labels_from_names(files: list[Path], pattern: str) -> np.ndarray:
    try:
        rx = re.compile(pattern)
    except re.error as e:
        raise DatasetError(f"--pattern {pattern!r} is not a regular expression ({e})") from None
    if rx.groups != 1:
        raise DatasetError(
            f"--pattern {pattern!r} has {rx.groups} groups; give exactly one, around the volume "
            r"fraction, e.g. 'vf([0-9.]+)'"
        )
    labels = []
    for p in files:
        m = rx.search(p.stem)
        if m is None or m.group(1) is None:
            raise DatasetError(
                f"file {p.name!r} does not match --pattern {pattern!r} (matched against "
                f"{p.stem!r}, the name without its suffix)"
            )
        try:
            v = float(m.group(1))
        except ValueError:
            raise DatasetError(
                f"file {p.name!r}: --pattern {pattern!r} gives {m.group(1)!r}, not a number"
            ) from None
        if not 0 <= v <= 1:
            raise DatasetError(
                f"file {p.name!r}: volume fraction {v:g} from --pattern is outside [0, 1]"
            )
        labels.append(v)
    return np.array(labels, np.float64)


def _given_labels(volfrac, n: int) -> np.ndarray:
    v = np.asarray(volfrac, np.float64)
    if v.ndim == 0:
        v = np.full(n, float(v))
    if v.shape != (n,):
        raise DatasetError(f"volfrac must be one number or {n} numbers (one per image)")
    bad = np.flatnonzero(~((v >= 0) & (v <= 1)))
    if bad.size:
        raise DatasetError(f"volfrac[{bad[0]}] = {v[bad[0]]:g} is outside [0, 1]")
    return v


def _grey(image, Image, ImageOps) -> np.ndarray:
    """(h, w) float32 in [0, 1], 1 = white: 16-bit greyscale kept, transparency over white."""
    image = ImageOps.exif_transpose(image)
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        return np.clip(np.asarray(image.convert("I"), np.float32) / 65535.0, 0, 1)
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, rgba)
    return np.asarray(image.convert("L"), np.float32) / 255.0


def image_density(path, size: tuple[int, int], invert: bool = False) -> np.ndarray:
    """One picture as a (nely, nelx) float32 density in [0, 1] (dark = 1 unless ``invert``)."""
    Image, ImageOps = _pillow()
    nelx, nely = size
    with Image.open(path) as im:
        grey = _grey(im, Image, ImageOps)
    h, w = grey.shape
    shrink = nelx <= w and nely <= h
    resample = Image.Resampling.BOX if shrink else Image.Resampling.LANCZOS
    small = np.asarray(Image.fromarray(grey).resize((nelx, nely), resample), np.float32)
    small = np.clip(small, 0.0, 1.0)
    return small if invert else 1.0 - small


def import_images(
    folder: str | os.PathLike,
    out: str | os.PathLike,
    size: tuple[int, int] = (64, 64),
    pattern: str | None = None,
    invert: bool = False,
    volfrac: float | Sequence[float] | None = None,
    *,
    stretch: bool = False,
    overwrite: bool = False,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """A folder of PNG / JPEG pictures as a dataset file of designs (see the module docstring).

    ``size``: the grid (nelx, nely); ``pattern``: a regular expression with one group that
    finds the volume fraction in each file name; ``volfrac``: one label for all, or one per
    image (sorted by name); neither: each design's mean density. Returns a summary (samples,
    size, labels: "pattern" | "given" | "mean density")."""
    Image, _ = _pillow()
    nelx, nely = _check_size(size)
    folder, out = check_path(folder, "folder"), check_path(out, "out")
    if not folder.is_dir():
        raise DatasetError(f"image folder {str(folder)!r} does not exist or is not a folder")
    files = sorted(
        (p for p in folder.iterdir()
         if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES),
        key=lambda p: p.name,
    )  # fmt: skip
    if not files:
        raise DatasetError(
            f"image folder {str(folder)!r} holds no images; allowed: " + ", ".join(IMAGE_SUFFIXES)
        )
    if pattern is not None and volfrac is not None:
        raise DatasetError("give the volume fractions by --pattern or by volfrac, not both")
    if pattern is not None and not isinstance(pattern, str):
        raise TypeError(
            f"pattern must be a regular expression string, got {type(pattern).__name__}"
        )
    if progress is not None and not callable(progress):
        raise TypeError(f"progress must be a callable or None, got {type(progress).__name__}")
    if pattern is not None:
        labels, how = _labels_from_names(files, pattern), "pattern"
    elif volfrac is not None:
        labels, how = _given_labels(volfrac, len(files)), "given"
    else:
        labels, how = None, "mean density"
    _check_out(out, overwrite, [folder])
    # headers first (cheap): an unreadable or wrongly shaped image is refused before any write
    grid = nelx / nely
    for p in files:
        try:
            with Image.open(p) as im:
                w, h = im.size
        except (OSError, ValueError, Image.DecompressionBombError) as e:
            raise DatasetError(f"cannot read image {p.name!r}: {e}") from None
        if not stretch and abs(math.log((w / h) / grid)) > math.log1p(ASPECT_TOLERANCE):
            raise DatasetError(
                f"image {p.name!r} is {w}x{h} (width/height {w / h:.3g}), not the shape of the "
                f"{nelx}x{nely} grid ({grid:.3g}); crop it, choose a --size of its shape or "
                "pass --stretch"
            )
    n = len(files)
    means = np.empty(n, np.float64)
    with _AtomicFile(out, overwrite, [folder]) as f:
        create_samples(f, "index", n, (), "int64")[:] = np.arange(n)
        density = create_samples(f, "density", n, (nely, nelx), "float32")
        for i, p in enumerate(files):
            try:
                d = image_density(p, (nelx, nely), invert)
            except (OSError, ValueError, Image.DecompressionBombError) as e:
                raise DatasetError(f"cannot read image {p.name!r}: {e}") from None
            density[i] = d
            means[i] = float(d.mean())
            if progress is not None:
                progress(i + 1)
        labels = means if labels is None else labels
        create_samples(f, "problem/volfrac", n, (), "float64")[:] = labels
        names = f.create_dataset("imported/name", (n,), dtype=h5py.string_dtype())
        names[:] = [p.name for p in files]
        imported = {
            "kind": "images", "source": str(folder.resolve()), "pattern": pattern,
            "invert": bool(invert), "stretch": bool(stretch), "volfrac": how, "count": n,
            "problems": False, "date": _now(),
        }  # fmt: skip
        _write_attrs(f, nelx, nely, labels, n, None, imported)
    return {"samples": n, "size": (nelx, nely), "labels": how, "problems": False}


# -- arrays --------------------------------------------------------------------------------------
def _load_source(source) -> tuple[dict[str, Any], str]:
    """The named arrays of a .npz (or the designs of a .npy / an array) and a description."""
    if isinstance(source, np.ndarray):
        return {"designs": source}, "(array)"
    if not isinstance(source, str | os.PathLike):
        raise TypeError(f"source must be a .npz / .npy path or an array, got {type_name(source)}")
    path = Path(source)
    if not path.is_file():
        raise DatasetError(f"array file {str(path)!r} does not exist")
    if path.suffix.lower() not in (".npz", ".npy"):
        raise DatasetError(f"array file {str(path)!r}: give a .npz (named arrays) or a .npy")
    try:
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.ndarray):
            return {"designs": loaded}, str(path.resolve())
        with loaded as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise DatasetError(f"cannot read array file {str(path)!r}: {e}") from None
    unknown = sorted(set(arrays) - set(ARRAY_NAMES))
    if unknown:
        raise DatasetError(
            f"{path.name} holds an unknown array {unknown[0]!r}; allowed: {', '.join(ARRAY_NAMES)}"
        )
    if "designs" not in arrays:
        raise DatasetError(f"{path.name} holds no 'designs' array (N, nely, nelx)")
    return arrays, str(path.resolve())


def _argument(name: str, value) -> np.ndarray:
    if isinstance(value, str | os.PathLike):
        try:
            return np.load(value, allow_pickle=False)
        except (OSError, ValueError, EOFError) as e:
            raise DatasetError(f"cannot read {name} from {str(value)!r}: {e}") from None
    return np.asarray(value)


def _at(where) -> str:
    return "[" + ", ".join(str(int(i)) for i in where) + "]"


def _numeric(name: str, a: np.ndarray) -> np.ndarray:
    if not (np.issubdtype(a.dtype, np.number) or a.dtype == bool) or a.dtype.kind == "c":
        raise DatasetError(f"{name} must be real numbers, got dtype {a.dtype}")
    a = a.astype(np.float64)
    bad = np.argwhere(~np.isfinite(a))
    if bad.size:
        raise DatasetError(f"{name}{_at(bad[0])} is {a[tuple(bad[0])]}: give finite numbers")
    return a


def _mask(name: str, a: np.ndarray) -> np.ndarray:
    if a.dtype == bool:
        return a
    a = _numeric(name, a)
    bad = np.argwhere((a != 0) & (a != 1))
    if bad.size:
        raise DatasetError(
            f"{name}{_at(bad[0])} is {a[tuple(bad[0])]:g}: a mask holds only True/False or 0/1"
        )
    return a.astype(bool)


def _shape(name: str, a: np.ndarray, want: tuple[int, ...], what: str, n: int) -> None:
    if a.ndim >= 1 and a.ndim == len(want) and a.shape[0] != n:
        raise DatasetError(
            f"{name} has {a.shape[0]} samples, designs {n}: every array needs one per design"
        )
    if a.shape != want:
        raise DatasetError(f"{name} must have shape {what} = {want}, got {a.shape}")


def _check_arrays(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    d = arrays["designs"]
    if d.ndim != 3:
        raise DatasetError(f"designs must have shape (N, nely, nelx), got {d.shape}")
    n, nely, nelx = d.shape
    if n == 0:
        raise DatasetError("designs holds no design (N = 0)")
    _check_size((nelx, nely))
    d = _numeric("designs", d)
    bad = np.argwhere(~((d >= 0) & (d <= 1)))
    if bad.size:
        i, r, c = bad[0]
        raise DatasetError(
            f"designs[{i}] has the value {d[i, r, c]:g} at row {r}, column {c}: densities must "
            "be in [0, 1]"
        )
    out = {"designs": d.astype(np.float32)}
    nodes, elems = (nely + 1, nelx + 1), (nely, nelx)
    if "volfrac" in arrays:
        v = arrays["volfrac"]
        _shape("volfrac", v, (n,), "(N,)", n)
        v = _numeric("volfrac", v)
        bad = np.flatnonzero(~((v >= 0) & (v <= 1)))
        if bad.size:
            raise DatasetError(f"volfrac[{bad[0]}] = {v[bad[0]]:g} is outside [0, 1]")
        out["volfrac"] = v
    trio = [k for k in ("loads", "fixed_x", "fixed_y") if k in arrays]
    if trio and len(trio) < 3:
        missing = sorted({"loads", "fixed_x", "fixed_y"} - set(trio))
        raise DatasetError(
            f"{', '.join(trio)} without {', '.join(missing)}: loads, fixed_x and fixed_y come "
            "together (the problem) or not at all (designs only)"
        )
    if not trio:
        extra = [k for k in ("passive_solid", "passive_void") if k in arrays]
        if extra:
            raise DatasetError(f"{extra[0]} needs the problem: give loads, fixed_x and fixed_y")
        return out
    loads = arrays["loads"]
    if loads.ndim == 5 and loads.shape[0] == n and loads.shape[1] != 1:
        raise DatasetError(
            f"loads has {loads.shape[1]} load cases per sample; the dataset format stores one "
            f"(shape (N, 2, {nodes[0]}, {nodes[1]}))"
        )
    if loads.ndim == 5 and loads.shape[1] == 1:
        loads = loads[:, 0]
    _shape("loads", loads, (n, 2, *nodes), "(N, 2, nely+1, nelx+1)", n)
    out["loads"] = _numeric("loads", loads)
    for k in ("fixed_x", "fixed_y"):
        _shape(k, arrays[k], (n, *nodes), "(N, nely+1, nelx+1)", n)
        out[k] = _mask(k, arrays[k])
    for k in ("passive_solid", "passive_void"):
        if k in arrays:
            _shape(k, arrays[k], (n, *elems), "(N, nely, nelx)", n)
            out[k] = _mask(k, arrays[k])
        else:
            out[k] = np.zeros((n, *elems), bool)
    return out


def import_arrays(
    source,
    out: str | os.PathLike,
    loads=None,
    fixed_x=None,
    fixed_y=None,
    volfrac=None,
    passive_solid=None,
    passive_void=None,
    *,
    settings: SIMPSettings | None = None,
    skip_ill_posed: bool = False,
    overwrite: bool = False,
) -> dict[str, Any]:
    """NumPy arrays (a .npz of named arrays, a .npy or an array of designs; the layout of the
    module docstring) as a dataset file. The keyword arrays (arrays or .npy paths) add to the
    source's. ``settings``: the SIMP settings the problems are re-solved with (the generated
    files' default). Returns a summary (samples, dropped, size, problems)."""
    check_path(out, "out")
    if settings is not None and not isinstance(settings, SIMPSettings):
        raise TypeError(f"settings must be a SIMPSettings or None, got {type(settings).__name__}")
    arrays, described = _load_source(source)
    given = {
        "loads": loads, "fixed_x": fixed_x, "fixed_y": fixed_y, "volfrac": volfrac,
        "passive_solid": passive_solid, "passive_void": passive_void,
    }  # fmt: skip
    for k, v in given.items():
        if v is None:
            continue
        if k in arrays:
            raise DatasetError(f"{k} is given twice: in {described} and as an argument")
        arrays[k] = _argument(k, v)
    arrays = {k: np.asarray(v) for k, v in arrays.items()}
    a = _check_arrays(arrays)
    designs = a["designs"]
    n, nely, nelx = designs.shape
    labels = a.get("volfrac", designs.mean(axis=(1, 2), dtype=np.float64))
    problems = "loads" in a
    out = Path(out)
    sources = [Path(source)] if isinstance(source, str | os.PathLike) else []
    _check_out(out, overwrite, sources)
    keep = np.arange(n)
    dist = ProblemDistribution(name="imported", nelx=nelx, nely=nely)
    settings = settings if settings is not None else dist.settings
    if problems:
        bad = []
        for i in range(n):
            try:
                Problem(
                    nelx, nely, float(labels[i]), a["fixed_x"][i], a["fixed_y"][i],
                    a["loads"][i], passive_solid=a["passive_solid"][i],
                    passive_void=a["passive_void"][i], settings=settings,
                )  # fmt: skip
            except ProblemError as e:
                bad.append((i, str(e)))
        if bad and not skip_ill_posed:
            i, why = bad[0]
            raise DatasetError(
                f"sample {i} is ill-posed ({why}); {len(bad)} of {n} are: fix them or pass "
                "--skip-ill-posed to leave them out"
            )
        if len(bad) == n:
            raise DatasetError(f"every one of the {n} samples is ill-posed (sample 0: {bad[0][1]})")
        keep = np.setdiff1d(keep, [i for i, _ in bad])
    m = len(keep)
    with _AtomicFile(out, overwrite, sources) as f:
        create_samples(f, "index", m, (), "int64")[:] = keep
        create_samples(f, "density", m, (nely, nelx), "float32")[:] = designs[keep]
        create_samples(f, "problem/volfrac", m, (), "float64")[:] = labels[keep]
        if problems:
            for k in PROBLEM_ARRAYS:
                v = a[k][keep]
                create_samples(f, f"problem/{k}", m, v.shape[1:], v.dtype)[:] = v
        how = "array" if "volfrac" in a else "mean density"
        imported = {
            "kind": "arrays", "source": described, "count": m, "problems": problems,
            "volfrac": how, "skipped_ill_posed": n - m, "date": _now(),
        }  # fmt: skip
        _write_attrs(f, nelx, nely, labels[keep], m, settings, imported)
    return {"samples": m, "dropped": n - m, "size": (nelx, nely), "problems": problems}


# -- ill-posed samples ---------------------------------------------------------------------------
def _check_block(block) -> None:
    if (
        isinstance(block, bool)
        or not isinstance(block, int | np.integer)
        or not 1 <= block <= 2**20
    ):
        raise DatasetError(f"block must be an integer in 1..{2**20} (samples read at once), "
                           f"got {block!r}")  # fmt: skip


def ill_posed_samples(path: str | os.PathLike, block: int = 256) -> list[tuple[int, int, str]]:
    """(row, index, reason) of every sample whose `Problem` today's validation refuses (files
    made before a rule existed); [] for a file without problems (designs only)."""
    _check_block(block)
    header = read_header(path)
    d = header["distribution"]
    bad = []
    with h5py.File(path, "r") as f:
        if "problem/loads" not in f:
            return []
        n = header["n"]
        for start in range(0, n, block):
            stop = min(n, start + block)
            part = slice(start, stop)
            r = {k: read_rows(f, f"problem/{k}", part) for k in ("volfrac", *PROBLEM_ARRAYS)}
            index = read_rows(f, "index", part)
            for j in range(stop - start):
                try:
                    Problem(
                        d.nelx, d.nely, float(r["volfrac"][j]), r["fixed_x"][j], r["fixed_y"][j],
                        r["loads"][j], passive_solid=r["passive_solid"][j],
                        passive_void=r["passive_void"][j], settings=d.settings,
                    )  # fmt: skip
                except ProblemError as e:
                    bad.append((start + j, int(index[j]), str(e)))
    return bad


def clean_dataset(
    path: str | os.PathLike, out: str | os.PathLike, overwrite: bool = False, block: int = 256
) -> dict[str, Any]:
    """A copy of ``path`` without its ill-posed samples (every other array, attribute and
    setting kept); records what it dropped in the ``cleaned`` attribute. Returns a summary:
    kept, dropped and the dropped samples' indices."""
    path, out = check_path(path, "path"), check_path(out, "out")
    _check_block(block)
    header = read_header(path)
    if header["pending_shards"]:
        raise DatasetError(
            f"{str(path)!r} has {header['pending_shards']} shard file(s) of finished samples "
            "awaiting merging: run generate again with --resume first"
        )
    if not has_problems(path):
        raise DatasetError(
            f"{str(path)!r} holds designs without problems: no sample can be ill-posed"
        )
    _check_out(out, overwrite, [path])
    # read every chunk back before the output's lock is taken: damage is refused leaving nothing
    verify_dataset(path, block)
    bad = ill_posed_samples(path, block)
    n = header["n"]
    drop = {row for row, _, _ in bad}
    rows = np.array([i for i in range(n) if i not in drop], np.int64)
    m = len(rows)
    with _AtomicFile(out, overwrite, [path]) as dst, h5py.File(path, "r") as src:
        for k, v in src.attrs.items():
            dst.attrs[k] = v
        keys: list[str] = []
        try:
            src.visititems(lambda k, o: keys.append(k) if isinstance(o, h5py.Dataset) else None)
        except (RuntimeError, OSError) as e:  # a damaged B-tree or object header
            raise DatasetError(f"{str(path)!r} is corrupted: unreadable structure ({e})") from None
        for key in keys:
            s = src[key]
            if s.ndim == 0 or s.shape[0] != n:  # not per sample: copied as is
                if "/" in key:
                    dst.require_group(key.rsplit("/", 1)[0])
                src.copy(s, dst, name=key)
                continue
            chunks = None
            if s.chunks is not None:
                chunks = (min(s.chunks[0], max(m, 1)), *s.chunks[1:])
            t = dst.create_dataset(
                key, shape=(m, *s.shape[1:]), dtype=s.dtype, maxshape=(None, *s.shape[1:]),
                chunks=chunks, compression=s.compression, compression_opts=s.compression_opts,
                shuffle=s.shuffle, fletcher32=True,
            )  # fmt: skip
            for a in range(0, m, block):
                t[a : a + block] = read_rows(src, key, rows[a : a + block])
            for k, v in s.attrs.items():
                t.attrs[k] = v
        dst.attrs["cleaned"] = json.dumps(
            {"source": str(path.resolve()), "dropped": n - m, "kept": m, "date": _now(),
             "dropped_indices": [i for _, i, _ in bad][:1000]},
            sort_keys=True,
        )  # fmt: skip
    return {"kept": m, "dropped": n - m, "dropped_indices": [i for _, i, _ in bad]}
