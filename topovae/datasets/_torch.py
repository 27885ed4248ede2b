"""`TopologyDataset`: a torch Dataset over a dataset file, for DataLoaders with many workers.

    ds = TopologyDataset("data.h5", split="train")          # 80 / 10 / 10 by default
    item = ds[0]        # {"density": (1, H, W), "condition": (C, H, W), "volfrac": (), "index",
                        #  "alternative", "position": k, so that ds.problem(k) is its Problem}
    ds.group(k)         # positions of every design of item k's problem (its alternatives)

The condition channels, at element resolution (node fields averaged over each element's four
corners), in the order of `condition_channels`: volume fraction (constant), fx, fy, fixed x,
fixed y, passive solid, passive void, then optionally the physical fields of the full-material
design (strain energy and von Mises stress, log1p-scaled): the file's when it stores them, else
computed from each problem (one FE solve per sample, cached).
A file of designs without problems (imported images or arrays, see `import_images`) has zero
load, support and passive channels and no `problem`; ``has_problems`` tells.
The split is a permutation of the file's problems by ``split_seed``, the same on every machine;
all designs of one problem (the rows sharing its index: alternatives) are on one side. For a
file of one design per problem this is the permutation of its rows it always was.
h5py handles are opened lazily in each DataLoader worker (a handle must not cross a fork).
"""

from __future__ import annotations

import os

import h5py
import numpy as np
import torch

from .._checks import check_path
from ._store import FIELDS, DatasetError, read_header, read_rows

BASE_CHANNELS = (
    "volfrac", "fx", "fy", "fixed_x", "fixed_y", "passive_solid", "passive_void",
)  # fmt: skip
SPLITS = ("train", "val", "test", "all")


def _node_to_element(a: np.ndarray) -> np.ndarray:
    """(..., H+1, W+1) -> (..., H, W): mean of each element's four corner nodes."""
    return 0.25 * (a[..., :-1, :-1] + a[..., 1:, :-1] + a[..., :-1, 1:] + a[..., 1:, 1:])


def condition_channels(
    volfrac, loads, fixed_x, fixed_y, passive_solid, passive_void, fields=()
) -> np.ndarray:
    """(C, H, W) float32 condition images of one problem, in `BASE_CHANNELS` order then fields.

    ``loads`` is (2, H+1, W+1) (one load case); node fields are averaged onto the elements."""
    h, w = passive_solid.shape
    channels = [
        np.full((h, w), np.float32(volfrac), np.float32),
        _node_to_element(np.asarray(loads[0], np.float64)),
        _node_to_element(np.asarray(loads[1], np.float64)),
        _node_to_element(np.asarray(fixed_x, np.float32)),
        _node_to_element(np.asarray(fixed_y, np.float32)),
        np.asarray(passive_solid, np.float32),
        np.asarray(passive_void, np.float32),
    ]
    channels += [np.log1p(f) for f in fields]
    return np.stack(channels).astype(np.float32)


def problem_condition(problem, fields: bool = False) -> np.ndarray:
    """Condition images of a `Problem` (its first load case), as the dataset makes them."""
    extra = ()
    if fields:
        from ..solvers import full_material_fields

        extra = full_material_fields(problem)
    return condition_channels(
        problem.volfrac, problem.loads[0], problem.fixed_x, problem.fixed_y,
        problem.passive_solid, problem.passive_void, extra,
    )  # fmt: skip


def _check_index(k) -> None:
    if isinstance(k, bool) or not isinstance(k, int | np.integer):
        raise TypeError(f"index must be an integer, got {type(k).__name__}")


def _shares(fractions) -> bool:
    """Whether ``fractions`` are 3 finite shares >= 0 summing to 1."""
    try:
        f = np.asarray(fractions, dtype=np.float64)
    except (TypeError, ValueError):
        return False
    return f.shape == (3,) and bool(np.all(f >= 0)) and bool(np.isclose(f.sum(), 1))


class TopologyDataset(torch.utils.data.Dataset):
    """Densities and their conditioning from a topovae dataset file (see the module docstring).

    split: "train", "val", "test" or "all"; fractions: (train, val, test) shares.
    in_memory: read the split's arrays once into memory (fast epochs when it fits).
    fields: add the physical-field channels (stored in the file, or computed and cached).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        split: str = "train",
        fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
        split_seed: int = 0,
        in_memory: bool = False,
        fields: bool = False,
    ) -> None:
        self.path = check_path(path, "the dataset path")
        self.header = read_header(self.path)  # validates format and version
        if not isinstance(split, str) or split not in SPLITS:
            raise DatasetError(f"unknown split {split!r}; choose one of: {', '.join(SPLITS)}")
        if not _shares(fractions):
            raise DatasetError(f"fractions must be 3 shares >= 0 summing to 1, got {fractions!r}")
        if isinstance(split_seed, bool) or not isinstance(split_seed, int | np.integer):
            raise TypeError(f"split_seed must be an integer, got {type(split_seed).__name__}")
        if split_seed < 0:
            raise DatasetError(f"split_seed must be >= 0, got {split_seed}")
        with h5py.File(self.path, "r") as f:
            index = read_rows(f, "index")
            alternative = read_rows(f, "alternative") if "alternative" in f else None
        problems, first = np.unique(index, return_index=True)
        n = len(problems)
        perm = np.random.default_rng(split_seed).permutation(n)
        a = round(fractions[0] * n)
        b = a + round(fractions[1] * n)
        part = {"train": perm[:a], "val": perm[a:b], "test": perm[b:], "all": perm}[split]
        if n == len(index):  # one design per problem (the rows' index ascends)
            self.rows = np.sort(first[part])
        else:
            self.rows = np.flatnonzero(np.isin(index, problems[part]))  # file rows, sorted
        self.indices = index[self.rows]  # each item's problem id
        self.alternatives = (
            np.zeros(len(self.rows), np.int64) if alternative is None
            else alternative[self.rows].astype(np.int64)
        )  # fmt: skip
        self.n_problems = len(np.unique(self.indices))
        self.fields = FIELDS if fields else ()
        self._stored_fields = bool(fields) and tuple(self.header["fields"]) == FIELDS
        self._field_cache: dict[int, list[np.ndarray]] = {}
        self.condition_channels = BASE_CHANNELS + tuple(self.fields)
        self._file: h5py.File | None = None
        self._pid: int | None = None
        self._memory: dict[str, np.ndarray] | None = None
        with h5py.File(self.path, "r") as f:
            # designs without problems (imported): no loads, supports or passive masks
            self.has_problems = "problem/loads" in f
            if fields and not self.has_problems:
                raise DatasetError(
                    f"{str(self.path)!r} holds designs without problems: they have no "
                    "full-material fields (use fields=False)"
                )
            if in_memory:
                self._memory = {k: read_rows(f, k, self.rows) for k in self._keys()}
        if not self.has_problems:
            d = self.header["distribution"]
            nodes, elems = (d.nely + 1, d.nelx + 1), (d.nely, d.nelx)
            self._absent = {
                "problem/loads": np.zeros((2, *nodes)), "problem/fixed_x": np.zeros(nodes, bool),
                "problem/fixed_y": np.zeros(nodes, bool),
                "problem/passive_solid": np.zeros(elems, bool),
                "problem/passive_void": np.zeros(elems, bool),
            }  # fmt: skip

    def _keys(self) -> list[str]:
        keys = ["index", "density", "problem/volfrac"]
        if self.has_problems:
            keys += ["problem/loads", "problem/fixed_x", "problem/fixed_y",
                     "problem/passive_solid", "problem/passive_void"]  # fmt: skip
        return keys + ([f"fields/{f}" for f in self.fields] if self._stored_fields else [])

    def __len__(self) -> int:
        return len(self.rows)

    def _handle(self) -> h5py.File:
        if self._file is None or self._pid != os.getpid():
            self._file = h5py.File(self.path, "r")
            self._pid = os.getpid()
        return self._file

    def _read(self, k: int) -> dict[str, np.ndarray]:
        if self._memory is not None:
            r = {key: v[k] for key, v in self._memory.items()}
        else:
            f = self._handle()
            row = int(self.rows[k])
            r = {key: read_rows(f, key, row) for key in self._keys()}
        if not self.has_problems:
            r.update(self._absent)
        return r

    def __getitem__(self, k: int) -> dict[str, torch.Tensor]:
        _check_index(k)
        if not -len(self) <= k < len(self):
            raise IndexError(f"index {k} out of range for a split of {len(self)} samples")
        k %= len(self)
        r = self._read(k)
        condition = condition_channels(
            r["problem/volfrac"], r["problem/loads"], r["problem/fixed_x"], r["problem/fixed_y"],
            r["problem/passive_solid"], r["problem/passive_void"],
            self._fields(k, r),
        )  # fmt: skip
        vf = np.float32(r["problem/volfrac"])
        return {
            "density": torch.from_numpy(np.asarray(r["density"], np.float32)[None]),
            "condition": torch.from_numpy(condition),
            "volfrac": torch.tensor(vf),
            "index": torch.tensor(int(r["index"])),
            "alternative": torch.tensor(int(self.alternatives[k])),
            "position": torch.tensor(k),  # in this split: `problem(position)` is its Problem
        }

    def _fields(self, k: int, r: dict[str, np.ndarray]) -> list[np.ndarray]:
        if not self.fields:
            return []
        if self._stored_fields:
            return [r[f"fields/{f}"] for f in self.fields]
        if k not in self._field_cache:
            from ..solvers import ProblemError, full_material_fields

            try:
                values = full_material_fields(self.problem(k))
                self._field_cache[k] = [v.astype(np.float32) for v in values]
            except ProblemError:  # a sample today's validation refuses: no fields
                shape = np.shape(r["density"])
                self._field_cache[k] = [np.zeros(shape, np.float32)] * len(FIELDS)
        return self._field_cache[k]

    def position(self, index: int) -> int | None:
        """Where the (first) sample with file index ``index`` is in this split (None: not in
        it)."""
        _check_index(index)
        where = np.flatnonzero(self.indices == index)
        return int(where[0]) if where.size else None

    def group(self, k: int) -> np.ndarray:
        """Positions in this split of every design of item ``k``'s problem (itself included),
        by alternative rank: the stiffest first."""
        _check_index(k)
        if not -len(self) <= k < len(self):
            raise IndexError(f"index {k} out of range for a split of {len(self)} samples")
        where = np.flatnonzero(self.indices == self.indices[k])
        return where[np.argsort(self.alternatives[where], kind="stable")]

    def first_designs(self) -> np.ndarray:
        """Positions of one item per problem (its stiffest design), in file order."""
        return (
            np.flatnonzero(np.r_[True, self.indices[1:] != self.indices[:-1]])
            if len(self)
            else np.zeros(0, np.int64)
        )

    def problem(self, k: int):
        """The `Problem` of item ``k`` (with the file's SIMP settings); a `ProblemError` for a
        sample that today's validation refuses (files made before it existed)."""
        from ..solvers import Problem, ProblemError

        if not self.has_problems:
            raise ProblemError(
                f"{self.path.name} holds designs without problems (imported): sample "
                f"{k} has no loads or supports"
            )
        _check_index(k)
        if not -len(self) <= k < len(self):
            raise IndexError(f"index {k} out of range for a split of {len(self)} samples")
        r = self._read(k % len(self))
        dist = self.header["distribution"]
        return Problem(
            dist.nelx, dist.nely, float(r["problem/volfrac"]), r["problem/fixed_x"],
            r["problem/fixed_y"], r["problem/loads"], passive_solid=r["problem/passive_solid"],
            passive_void=r["problem/passive_void"], settings=dist.settings,
            name=f"{dist.name}#{int(r['index'])}",
        )  # fmt: skip

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_file"] = None  # never pickle an open h5py handle into a worker
        return state

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
