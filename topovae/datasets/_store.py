"""The HDF5 dataset file: self-describing, versioned, and never losing finished work.

Layout of ``data.h5`` (N samples, density shape (H, W), node shape (H+1, W+1)):

    attrs: format = "topovae-dataset", version, distribution (JSON), seed, n_requested,
           fields (JSON list of optional physical fields), topovae_version,
           alternatives (version 2: K designs per problem at most; 0 = SIMP's one design),
           alternative_search (version 2, with K > 0: the search settings as JSON)
    index (N,) int64                    problem i of the stream (seed, i), ascending: the
                                        problem id, shared by the rows of one problem
    alternative (N,) int32              version 2: the design's rank among its problem's
                                        alternatives, 0 = the stiffest (absent in version 1: 0)
    density (N, H, W) float32           SIMP design (physical density of the last iteration)
    problem/volfrac (N,) float64
    problem/fixed_x, fixed_y (N, H+1, W+1) bool
    problem/loads (N, 2, H+1, W+1) float64   (fx, fy), y up
    problem/passive_solid, passive_void (N, H, W) bool
    result/compliance, volume, seconds (N,) float64; iterations (N,) int32; converged (N,) bool
    fields/strain_energy, fields/von_mises (N, H, W) float32   (optional; full-material design)

Every per-sample array is chunked one sample per chunk, gzip-compressed and checksummed
(HDF5's fletcher32 filter), so random reads by many DataLoader workers touch one chunk each and a
corrupted chunk is detected when it is read (`read_rows`: a DatasetError "... is corrupted:
checksum mismatch in density"). Files written before the checksums read as they always did.

Crash safety. HDF5 files can be corrupted by a kill during a write, so the main file is only
ever replaced atomically (written to a temporary file, fsynced, ``os.replace``d). Finished
samples first go to small shard files ``data.h5.parts/part-*.npz``, each also written atomically.
`DatasetWriter.consolidate` merges the main file and the shards into a new main file (streaming,
in blocks) and removes the shards. After a kill at any moment the main file is the last
consolidated one, readable, and the shards hold everything finished since; ``--resume`` merges
them and computes only what is missing.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from .. import __version__
from .._checks import check_path
from .._lock import WriterLock
from ..solvers import ProblemError
from ._sampling import ProblemDistribution

FORMAT = "topovae-dataset"
VERSION = 2  # 2: several designs per problem (``alternative``); version 1 files still read
FIELDS = ("strain_energy", "von_mises")


class DatasetError(ProblemError):
    """A dataset file is missing, foreign, newer than this version, or does not match."""


def sample_bytes(layout: dict[str, tuple[tuple[int, ...], str]]) -> int:
    """Uncompressed bytes of one sample of a file with this layout."""
    return sum(int(np.prod(shape)) * np.dtype(dt).itemsize for shape, dt in layout.values())


def _layout(h: int, w: int, fields: Iterable[str]) -> dict[str, tuple[tuple[int, ...], str]]:
    """Per-sample shape and dtype of every array in the file."""
    nodes = (h + 1, w + 1)
    spec = {
        "index": ((), "int64"),
        "alternative": ((), "int32"),
        "density": ((h, w), "float32"),
        "problem/volfrac": ((), "float64"),
        "problem/fixed_x": (nodes, "bool"),
        "problem/fixed_y": (nodes, "bool"),
        "problem/loads": ((2, *nodes), "float64"),
        "problem/passive_solid": ((h, w), "bool"),
        "problem/passive_void": ((h, w), "bool"),
        "result/compliance": ((), "float64"),
        "result/volume": ((), "float64"),
        "result/iterations": ((), "int32"),
        "result/converged": ((), "bool"),
        "result/seconds": ((), "float64"),
    }
    for f in fields:
        spec[f"fields/{f}"] = ((h, w), "float32")
    return spec


def shards_dir(path: Path) -> Path:
    return path.with_name(path.name + ".parts")


def read_header(path: str | os.PathLike) -> dict[str, Any]:
    """Format, version, distribution, seed, n_requested, fields and sample count of a file.

    Raises DatasetError with one clear line for a missing, foreign or newer file."""
    path = check_path(path, "the dataset path")
    if not os.path.exists(path):  # False also for names the OS refuses (too long, NUL)
        raise DatasetError(f"dataset {str(path)!r} does not exist")
    try:
        with h5py.File(path, "r") as f:
            attrs = dict(f.attrs)
            n = int(f["index"].shape[0]) if "index" in f else None
            designs = f["density"].shape[0] if isinstance(f.get("density"), h5py.Dataset) else None
    except OSError:
        raise DatasetError(f"{str(path)!r} is not an HDF5 file") from None
    fmt = attrs.get("format")
    if isinstance(fmt, bytes):
        fmt = fmt.decode()
    if fmt != FORMAT or n is None:
        raise DatasetError(f"{str(path)!r} is not a topovae dataset (format {fmt!r})")
    version = int(attrs.get("version", -1))
    if version > VERSION:
        raise DatasetError(
            f"{str(path)!r} has format version {version}, newer than this topovae reads "
            f"({VERSION}); upgrade topovae"
        )
    if version < 1:
        raise DatasetError(f"{str(path)!r} has an invalid format version {version}")
    missing = [k for k in ("distribution", "seed", "n_requested", "fields") if k not in attrs]
    if missing:
        raise DatasetError(
            f"{str(path)!r} is a damaged topovae dataset: its settings lack {', '.join(missing)}"
        )
    if designs is None:
        raise DatasetError(f"{str(path)!r} is a damaged topovae dataset: it has no designs")
    if designs != n:
        raise DatasetError(
            f"{str(path)!r} is a damaged topovae dataset: {designs} designs for {n} indices"
        )
    try:
        return {
            "version": version,
            "distribution": ProblemDistribution.from_dict(json.loads(attrs["distribution"])),
            "seed": int(attrs["seed"]),
            "n_requested": int(attrs["n_requested"]),
            "fields": tuple(json.loads(attrs["fields"])),
            "alternatives": int(attrs.get("alternatives", 0)),
            "alternative_search": json.loads(attrs.get("alternative_search", "null")),
            "n": n,
            "pending_shards": len(list(shards_dir(path).glob("part-*.npz"))),
        }
    except (TypeError, ValueError, KeyError) as e:  # JSON or numbers that do not parse
        raise DatasetError(
            f"{str(path)!r} is a damaged topovae dataset: unreadable settings ({e})"
        ) from None


def read_rows(f: h5py.File, key: str, rows: Any = slice(None)) -> np.ndarray:
    """``f[key][rows]``; a chunk that fails its checksum (or cannot be read) as one DatasetError."""
    try:
        dset = f[key]
        return dset[rows]
    except KeyError:
        raise DatasetError(f"{f.filename!r} is a damaged topovae dataset: no {key}") from None
    except RuntimeError as e:  # a damaged B-tree: "Object specific failed (wrong B-tree ...)"
        raise DatasetError(f"{f.filename!r} is corrupted: unreadable {key} ({e})") from None
    except OSError as e:  # h5py: "Can't read data (filter returned failure during read)"
        checksum = dset.fletcher32 and "filter" in str(e)
        what = "checksum mismatch" if checksum else f"unreadable data ({e})"
        raise DatasetError(f"{f.filename!r} is corrupted: {what} in {key}") from None


def verify_dataset(path: str | os.PathLike, block: int = 4096) -> int:
    """Read every array of a dataset file back, ``block`` rows at a time, so that every chunk's
    checksum is verified; the number of arrays read, or a DatasetError naming the first
    damaged one. Commands read only what they use: this is `topovae info`'s integrity line."""
    path = check_path(path, "the dataset path")
    read_header(path)
    keys: list[str] = []
    with h5py.File(path, "r") as f:
        try:
            f.visititems(lambda k, o: keys.append(k) if isinstance(o, h5py.Dataset) else None)
        except (RuntimeError, OSError) as e:
            raise DatasetError(f"{str(path)!r} is corrupted: unreadable structure ({e})") from None
        for key in keys:
            n = f[key].shape[0] if f[key].ndim else 1
            for start in range(0, n, block) if f[key].ndim else [None]:
                read_rows(f, key, slice(None) if start is None else slice(start, start + block))
    return len(keys)


def _alternatives(f: h5py.File) -> list[int]:
    """Each row's rank among its problem's alternatives (all 0 in a version 1 file)."""
    if "alternative" not in f:
        return [0] * f["index"].shape[0]
    return read_rows(f, "alternative").tolist()


def write_header(f: h5py.File, dist: ProblemDistribution, seed: int, n_requested: int,
                 fields: Iterable[str], alternatives: int = 0,
                 search: dict | None = None) -> None:  # fmt: skip
    """The file attributes `read_header` reads."""
    f.attrs["format"] = FORMAT
    f.attrs["version"] = VERSION
    f.attrs["distribution"] = dist.to_json()
    f.attrs["seed"] = seed
    f.attrs["n_requested"] = n_requested
    f.attrs["fields"] = json.dumps(list(fields))
    f.attrs["alternatives"] = alternatives
    f.attrs["alternative_search"] = json.dumps(search)
    f.attrs["topovae_version"] = __version__


def create_samples(f: h5py.File, key: str, n: int, shape: tuple[int, ...], dtype) -> h5py.Dataset:
    """A per-sample array: one sample per chunk, gzip-compressed, fletcher32-checksummed."""
    return f.create_dataset(
        key, shape=(n, *shape), dtype=dtype, maxshape=(None, *shape),
        chunks=(1, *shape) if shape else (min(max(n, 1), 4096),),
        compression="gzip", compression_opts=4, shuffle=bool(shape), fletcher32=True,
    )  # fmt: skip


def _fsync_replace(tmp: Path, path: Path) -> None:
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)
    try:  # make the rename itself durable
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass


class Pending:
    """The sample indices 0..n-1 not yet done, in order, without a list of them all: a file
    of 10^10 samples costs nothing until it is solved."""

    def __init__(self, n: int, done: set[int]) -> None:
        self.n, self.done = n, {i for i in done if 0 <= i < n}

    def __len__(self) -> int:
        return self.n - len(self.done)

    def __iter__(self) -> Iterator[int]:
        return (i for i in range(self.n) if i not in self.done)


class DatasetWriter:
    """Appends finished samples to a dataset file safely; see the module docstring.

    ``mode``: "new" (the file must not exist), "resume" (continue a file with the same settings)
    or "overwrite" (start again). ``alternatives`` > 0: each problem brings up to that many
    designs (`add` takes all rows of one problem at once, so a problem is done or not done as a
    whole); ``search`` is the alternative search's settings (a JSON-able dict).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        dist: ProblemDistribution,
        seed: int,
        n: int,
        fields: tuple[str, ...] = (),
        mode: str = "new",
        shard_size: int = 64,
        shard_seconds: float = 10.0,
        alternatives: int = 0,
        search: dict | None = None,
    ) -> None:
        self.path = check_path(path, "the dataset path")
        if self.path.is_dir():
            raise DatasetError(f"{str(self.path)!r} is a folder; give a file name")
        if not isinstance(dist, ProblemDistribution):
            raise TypeError(f"dist must be a ProblemDistribution, got {type(dist).__name__}")
        for name, v, low, high in (("seed", seed, 0, 2**63 - 1), ("n", n, 1, None),
                                   ("shard_size", shard_size, 1, None)):  # fmt: skip
            if (
                isinstance(v, bool)
                or not isinstance(v, int | np.integer)
                or v < low
                or (high is not None and v > high)
            ):
                allowed = f">= {low}" if high is None else f"in {low}..{high}"
                raise DatasetError(f"{name} must be an integer {allowed}, got {v!r}")
        if (
            isinstance(shard_seconds, bool) or not isinstance(shard_seconds, int | float)
            or not 0 < shard_seconds < math.inf
        ):  # fmt: skip
            raise DatasetError(f"shard_seconds must be a finite number > 0, got {shard_seconds!r}")
        if isinstance(fields, str):
            raise DatasetError(f"fields must be a tuple of field names, got {fields!r}")
        self.dist, self.seed, self.n, self.fields = dist, int(seed), int(n), tuple(fields)
        self.shard_size, self.shard_seconds = shard_size, shard_seconds
        if (
            isinstance(alternatives, bool)
            or not isinstance(alternatives, int | np.integer)
            or (alternatives < 0)
        ):
            raise DatasetError(f"alternatives must be an integer >= 0, got {alternatives!r}")
        self.alternatives, self.search = int(alternatives), search
        self.layout = _layout(dist.nely, dist.nelx, self.fields)
        if not self.path.parent.is_dir():
            raise DatasetError(f"output folder {str(self.path.parent)!r} does not exist")
        if mode != "resume":  # the shards hold raw samples until they are consolidated
            need = self.n * max(1, self.alternatives) * sample_bytes(self.layout)
            free = shutil.disk_usage(self.path.parent).free
            if need > free:
                raise DatasetError(
                    f"-n {self.n} samples of {dist.nelx}x{dist.nely} need up to "
                    f"{need / 2**30:,.1f} GiB while they are written; "
                    f"{str(self.path.parent)!r} has {free / 2**30:,.1f} GiB free"
                )
        for f in self.fields:
            if f not in FIELDS:
                raise DatasetError(f"unknown field {f!r}; choose from: {', '.join(FIELDS)}")
        self.parts = shards_dir(self.path)
        # one writer at a time, before anything is touched (a second `generate --resume` used to
        # delete the first one's temporaries and crash on the shards it had consolidated)
        # the target is checked read-only before the lock is taken, so that a refusal leaves
        # nothing behind, and again under the lock (another writer may have changed it)
        self._check_target(mode, quarantine=False)
        lock = self.path.with_name(f".{self.path.name}.lock")
        self._lock = WriterLock(lock, str(self.path), DatasetError).acquire()
        try:
            self._remove_stale_temporaries()
            exists = self._check_target(mode, quarantine=True)
            if mode == "overwrite" or not exists:
                for p in self.parts.glob("part-*.npz"):
                    p.unlink()
                self._write_main(blocks=[], total=0)
        except BaseException:
            self.close()
            raise
        self._buffer: list[dict[str, np.ndarray]] = []
        self._last_flush = time.monotonic()

    def close(self) -> None:
        """Release the writer's lock (`generate` does after consolidating; also on collection)."""
        if getattr(self, "_lock", None) is not None:
            self._lock.release()

    def __del__(self) -> None:
        self.close()

    def _remove_stale_temporaries(self) -> None:
        """Temporary files of a writer killed mid-write (never renamed, so never valid)."""
        stale = list(self.path.parent.glob(self.path.name + ".tmp-*"))
        if self.parts.is_dir():
            stale += list(self.parts.glob("*.tmp"))
        for p in stale:
            p.unlink(missing_ok=True)

    def _shards(self, quarantine: bool = True) -> list[Path]:
        """Readable shard files; an unreadable one is ignored and, with ``quarantine`` (only
        under the writer's lock), renamed *.bad."""
        good = []
        for shard in sorted(self.parts.glob("part-*.npz")):
            try:
                with np.load(shard) as z:
                    z["index"]
                good.append(shard)
            except (OSError, ValueError, KeyError, EOFError):
                if quarantine:
                    shard.rename(shard.with_suffix(".bad"))
        return good

    def _check_target(self, mode: str, quarantine: bool) -> bool:
        """Whether the file exists; DatasetError if ``mode`` may not write it (see
        `_shards` for ``quarantine``)."""
        if mode not in ("new", "resume", "overwrite"):
            raise DatasetError(f"unknown mode {mode!r}; choose new, resume or overwrite")
        exists = self.path.exists()
        if mode == "new" and exists:
            raise DatasetError(
                f"{str(self.path)!r} exists; pass --resume to continue it or --overwrite to "
                "replace it"
            )
        if mode == "resume" and exists:
            self._check_matches(read_header(self.path), quarantine)
        return exists

    def _check_matches(self, header: dict[str, Any], quarantine: bool = True) -> None:
        mine = {
            "distribution": self.dist.to_dict(),
            "seed": self.seed,
            "fields": self.fields,
            "alternatives": self.alternatives,
            "alternative search": self.search,
        }
        theirs = {"distribution": header["distribution"].to_dict(), "seed": header["seed"],
                  "fields": header["fields"], "alternatives": header["alternatives"],
                  "alternative search": header["alternative_search"]}  # fmt: skip
        if mine != theirs:
            raise DatasetError(
                f"{str(self.path)!r} was made with other settings ({_differences(theirs, mine)}); "
                "pass --overwrite to replace it"
            )
        done = self.done_indices(quarantine)
        if done and max(done) >= self.n:
            raise DatasetError(
                f"{str(self.path)!r} already holds {len(done)} samples, more than -n {self.n} "
                f"(indices up to {max(done)})"
            )

    # -- what is done --------------------------------------------------------------------------
    def done_indices(self, quarantine: bool = True) -> set[int]:
        with h5py.File(self.path, "r") as f:
            done = set(read_rows(f, "index").tolist())
        for shard in self._shards(quarantine):
            with np.load(shard) as z:
                done.update(z["index"].tolist())
        return done

    def pending(self) -> Pending:
        return Pending(self.n, self.done_indices())

    # -- writing -------------------------------------------------------------------------------
    def add(self, record: dict[str, np.ndarray] | list[dict[str, np.ndarray]]) -> None:
        """Buffer one finished sample, or the list of all rows of one problem; shards are
        written every ``shard_size`` rows or ``shard_seconds`` seconds, never inside a
        problem's rows."""
        self._buffer.extend(record if isinstance(record, list) else [record])
        if (
            len(self._buffer) >= self.shard_size
            or time.monotonic() - self._last_flush >= self.shard_seconds
        ):
            self.flush()

    def flush(self) -> None:
        """Write the buffered samples as one shard (atomically)."""
        self._last_flush = time.monotonic()
        if not self._buffer:
            return
        self.parts.mkdir(exist_ok=True)
        arrays = {
            key.replace("/", "."): np.stack(
                [np.asarray(r.get(key, 0), dtype=dt) for r in self._buffer]
            )
            for key, (_, dt) in self.layout.items()
        }
        name = f"part-{int(arrays['index'].min()):09d}-{uuid.uuid4().hex[:8]}.npz"
        tmp = self.parts / (name + ".tmp")
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
        _fsync_replace(tmp, self.parts / name)
        self._buffer = []

    def consolidate(self) -> int:
        """Merge the main file and all shards into a new main file; returns its sample count."""
        self.flush()
        shards = self._shards()
        with h5py.File(self.path, "r") as f:
            main_keys = list(zip(read_rows(f, "index").tolist(), _alternatives(f), strict=True))
        entries = [(*key, -1, k) for k, key in enumerate(main_keys)]
        seen = set(main_keys)
        for s, shard in enumerate(shards):
            with np.load(shard) as z:
                keys = zip(z["index"].tolist(), z["alternative"].tolist(), strict=True)
            for k, key in enumerate(keys):
                if key not in seen:  # a sample finished twice (killed before its shard was
                    seen.add(key)  # recorded as merged) is the same sample: keep one
                    entries.append((*key, s, k))
        entries.sort()
        block = 256
        blocks = (entries[a : a + block] for a in range(0, len(entries), block))
        self._write_main(blocks=blocks, total=len(entries), shards=shards)
        for shard in shards:
            shard.unlink()
        try:  # leave no empty folder behind (one holding *.bad shards stays)
            self.parts.rmdir()
        except OSError:
            pass
        return len(entries)

    def _write_main(self, blocks, total: int, shards: list[Path] = ()) -> None:
        tmp = self.path.with_name(self.path.name + f".tmp-{uuid.uuid4().hex[:8]}")
        old = h5py.File(self.path, "r") if self.path.exists() and total else None
        cache: OrderedDict[int, dict[str, np.ndarray]] = OrderedDict()  # a few shards in memory
        try:
            with h5py.File(tmp, "w") as f:
                write_header(f, self.dist, self.seed, self.n, self.fields, self.alternatives,
                             self.search)  # fmt: skip
                dsets = {
                    key: create_samples(f, key, total, shape, dt)
                    for key, (shape, dt) in self.layout.items()
                }
                start = 0
                for entries in blocks:
                    src = np.array([e[2] for e in entries])
                    pos = np.array([e[3] for e in entries])
                    for key, (shape, dt) in self.layout.items():
                        out = np.empty((len(entries), *shape), dtype=dt)
                        m = src == -1
                        if m.any() and key == "alternative" and key not in old:
                            out[m] = 0  # a version 1 file being resumed
                        elif m.any():
                            out[m] = read_rows(old, key, pos[m])  # increasing: h5py fancy read
                        for s in np.unique(src[~m]):
                            if s not in cache:
                                if len(cache) >= 16:
                                    cache.popitem(last=False)
                                with np.load(shards[s]) as z:
                                    cache[s] = {k: z[k] for k in z.files}
                            cache.move_to_end(s)
                            ms = src == s
                            out[ms] = cache[s][key.replace("/", ".")][pos[ms]]
                        dsets[key][start : start + len(entries)] = out
                    start += len(entries)
        finally:
            if old is not None:
                old.close()
        _fsync_replace(tmp, self.path)


def _differences(file: dict, now: dict, prefix: str = "") -> str:
    """'name: the file A, now B' for each setting that differs (nested dicts by dotted name)."""
    out = []
    for key in sorted(set(file) | set(now), key=str):
        a, b = file.get(key), now.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            inner = _differences(a, b, f"{prefix}{key}.")
            if inner:
                out.append(inner)
        elif a != b:
            out.append(f"{prefix}{key}: the file {a!r}, now {b!r}")
    return ", ".join(out)
