"""topovae.datasets as a library: seeded sampling, deterministic generation, the crash-safe
writer (shards, consolidation, interruption) and the torch `TopologyDataset`.

Everything runs on 12x12 grids (a SIMP solve takes a few tens of ms). The command line, the real
SIGKILL / SIGINT subprocess tests and the refusals are in test_datasets_cli.py.
"""

import json
import shutil

import h5py
import numpy as np
import pytest
import torch

from topovae.datasets import (
    DISTRIBUTIONS,
    FIELDS,
    SUPPORT_FAMILIES,
    DatasetError,
    DatasetWriter,
    ProblemDistribution,
    TopologyDataset,
    distribution,
    generate,
    read_header,
    sample_problem,
)
from topovae.datasets._generate import solve_sample  # the worker function
from topovae.solvers import Problem, ProblemError, compliance, full_material_fields, solve

PROBLEM_KEYS = ("volfrac", "fixed_x", "fixed_y", "loads", "passive_solid", "passive_void")
# every per-sample array except the wall-clock time, which differs from run to run
COMPARED = (
    "index",
    "density",
    *(f"problem/{k}" for k in PROBLEM_KEYS),
    "result/compliance",
    "result/volume",
    "result/iterations",
    "result/converged",
)
N, SEED = 12, 7


def problem_arrays(p: Problem) -> dict[str, np.ndarray]:
    return {"volfrac": np.float64(p.volfrac), **p.to_arrays()}


def read_all(path, keys=COMPARED) -> dict[str, np.ndarray]:
    with h5py.File(path, "r") as f:
        return {k: f[k][:] for k in keys}


def assert_same_samples(a, b):
    """Two files (or read_all dicts) hold the same samples: densities byte-identical, problem
    arrays and results (except seconds) equal."""
    a = a if isinstance(a, dict) else read_all(a)
    b = b if isinstance(b, dict) else read_all(b)
    for k in COMPARED:
        assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape, k
        assert a[k].tobytes() == b[k].tobytes(), f"{k} differs"


@pytest.fixture(scope="module")
def dist():
    return distribution("mixed", 12, 12)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, dist):
    """N samples of (mixed 12x12, SEED) made by one worker, with the physical fields."""
    path = tmp_path_factory.mktemp("ref") / "ref.h5"
    summary = generate(path, dist, N, SEED, workers=1, fields=FIELDS, progress=False)
    assert summary["samples"] == N and summary["solved"] == N
    return path


# -- sampling ------------------------------------------------------------------------------------
def test_sample_problem_is_a_pure_function_of_seed_and_index(dist):
    order = [5, 0, 3, 5, 17, 0]
    first = {i: problem_arrays(sample_problem(dist, 11, i)) for i in order}
    again = {i: problem_arrays(sample_problem(dist, 11, i)) for i in reversed(order)}
    for i in order:
        for k in PROBLEM_KEYS:
            np.testing.assert_array_equal(first[i][k], again[i][k], err_msg=f"{i} {k}")
    # other indices and other seeds give other problems
    loads = [sample_problem(dist, s, i).loads.tobytes() for s in (0, 1) for i in range(20)]
    assert len(set(loads)) == len(loads) == 40
    assert sample_problem(dist, 3, 4).name == "mixed[3:4]"


def test_sample_problem_rejects_negative_seed_or_index(dist):
    with pytest.raises(ProblemError, match="seed and index must be >= 0"):
        sample_problem(dist, -1, 0)
    with pytest.raises(ProblemError, match="seed and index must be >= 0"):
        sample_problem(dist, 0, -3)


@pytest.mark.parametrize("size", [(12, 12), (16, 8)])
@pytest.mark.parametrize("name", DISTRIBUTIONS)
def test_named_distributions_give_valid_problems(name, size):
    nelx, nely = size
    d = distribution(name, nelx, nely)
    assert (d.name, d.nelx, d.nely, d.shape) == (name, nelx, nely, (nely, nelx))
    lo, hi = d.volfrac
    volfracs, n_loads, holes, families = [], [], 0, set()
    for i in range(200):
        p = sample_problem(d, 0, i)  # the Problem constructor validates supports and loads
        assert isinstance(p, Problem)
        assert (p.nelx, p.nely, p.ncases) == (nelx, nely, 1)
        assert p.settings == d.settings
        assert lo <= p.volfrac <= hi
        f = p.loads[0]
        assert np.all(np.isfinite(f))
        free = ~np.stack([p.fixed_x, p.fixed_y])
        assert np.abs(f[free]).sum() > 0  # some load does work
        assert np.all(f[~free] == 0)  # the sampler drops loads on supports
        # the design domain can hold the volume fraction
        n = nelx * nely
        assert p.passive_solid.sum() <= p.volfrac * n <= n - p.passive_void.sum()
        volfracs.append(p.volfrac)
        n_loads.append(int(np.count_nonzero(np.abs(f).sum(0))))
        holes += bool(p.passive_void.any())
        families.add("mbb" if p.fixed_x[:, 0].all() and p.fixed_y.sum() == 1 else "other")
    assert len(set(volfracs)) == 200  # really drawn per sample
    assert max(volfracs) - min(volfracs) > 0.5 * (hi - lo)
    if name == "mbb-like":
        assert families == {"mbb"}
    if name == "mixed":
        assert holes > 0 and max(n_loads) > 1  # holes and several loads do occur
    else:
        assert holes == 0


def test_cantilever_like_clamps_one_whole_edge():
    d = distribution("cantilever-like", 12, 12)
    for i in range(50):
        p = sample_problem(d, 2, i)
        fixed = p.fixed_x & p.fixed_y
        edges = [fixed[0, :], fixed[:, -1], fixed[-1, :], fixed[:, 0]]
        assert sum(e.all() for e in edges) == 1
        assert fixed.sum() == 13 and np.array_equal(p.fixed_x, p.fixed_y)


@pytest.mark.parametrize("name", DISTRIBUTIONS)
def test_distribution_dict_and_json_round_trip(name):
    d = distribution(name, 16, 8)
    assert ProblemDistribution.from_dict(d.to_dict()) == d
    assert ProblemDistribution.from_dict(json.loads(d.to_json())) == d
    custom = ProblemDistribution(
        name="mine", nelx=20, nely=10, volfrac=(0.2, 0.2), supports=("segments", "mbb"),
        loads=(2, 3), load_kinds=("distributed",), load_angle=(-90.0, -90.0),
        magnitude=(2.0, 3.0), holes=(1, 1), pads=True,
    )  # fmt: skip
    back = ProblemDistribution.from_dict(json.loads(custom.to_json()))
    assert back == custom
    assert (
        sample_problem(back, 1, 2).loads.tobytes() == sample_problem(custom, 1, 2).loads.tobytes()
    )


def test_distribution_overrides_and_settings():
    d = distribution("mbb-like", 16, 8, volfrac=(0.4, 0.45), holes=(1, 1))
    assert d.volfrac == (0.4, 0.45) and d.holes == (1, 1) and d.supports == ("mbb",)
    assert (d.settings.filter, d.settings.rmin, d.settings.max_iter) == ("density", 2.0, 300)
    p = sample_problem(d, 0, 0)
    assert 0.4 <= p.volfrac <= 0.45 and p.passive_void.any()


@pytest.mark.parametrize(
    ("kwargs", "fragments"),
    [
        (dict(nelx=3), ["nelx", "3"]),
        (dict(nely=True), ["nely", "True"]),
        (dict(nelx=12.0), ["nelx"]),
        (dict(volfrac=(0.5, 0.3)), ["volfrac", "0.5"]),
        (dict(volfrac=(0.0, 0.5)), ["volfrac"]),
        (dict(volfrac=(0.3, 1.0)), ["volfrac"]),
        (dict(supports=("pinned",)), ["pinned", "clamped-edge"]),
        (dict(supports=()), ["support"]),
        (dict(load_kinds=("moment",)), ["moment", "point"]),
        (dict(load_place="inside"), ["inside", "boundary"]),
        (dict(loads=(0, 1)), ["loads", "(0, 1)"]),
        (dict(loads=(3, 2)), ["loads"]),
        (dict(holes=(-1, 0)), ["holes"]),
        (dict(holes=(2, 1)), ["holes"]),
    ],
)
def test_bad_distribution_configs_raise_clear_problem_errors(kwargs, fragments):
    with pytest.raises(ProblemError) as e:
        ProblemDistribution(**{"nelx": 12, "nely": 12, **kwargs})
    assert "\n" not in str(e.value)
    for frag in fragments:
        assert frag in str(e.value)


def test_bad_distribution_names_and_dicts():
    with pytest.raises(ProblemError, match=r"unknown distribution 'bogus'.*mixed"):
        distribution("bogus", 12, 12)
    good = distribution("mixed", 12, 12).to_dict()
    with pytest.raises(ProblemError, match="unknown distribution fields: colour"):
        ProblemDistribution.from_dict({**good, "colour": "red"})
    with pytest.raises(ProblemError, match="unknown SIMP settings: speed"):
        ProblemDistribution.from_dict({**good, "settings": {"speed": 3}})
    with pytest.raises(ProblemError, match="rmin"):
        ProblemDistribution.from_dict({**good, "settings": {"rmin": 0.1}})
    assert set(SUPPORT_FAMILIES) == {"clamped-edge", "simply-supported", "segments", "mbb"}


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(load_kinds=()),  # today: ValueError "high <= 0" from rng.integers at sampling time
        dict(volfrac=(0.3,)),  # today: ValueError "not enough values to unpack"
        dict(holes=(1,)),  # today: IndexError
        dict(load_angle=(10.0, -10.0)),  # today: ValueError "high - low < 0" at sampling time
        dict(magnitude=(1.0, 0.5)),  # today: ValueError at sampling time
    ],
    ids=["no-load-kinds", "volfrac-1-tuple", "holes-1-tuple", "reversed-angle", "reversed-mag"],
)
def test_malformed_distribution_ranges_raise_problem_error(kwargs):
    """BUG (topovae/datasets/_sampling.py, ProblemDistribution.__post_init__): empty load_kinds,
    ranges that are not (lo, hi) pairs and reversed load_angle / magnitude ranges are not
    validated, so they escape as raw ValueError / IndexError (at construction or only at the
    first sample_problem) instead of one clear ProblemError."""
    with pytest.raises(ProblemError):
        d = ProblemDistribution(nelx=12, nely=12, **kwargs)
        sample_problem(d, 0, 0)


# -- determinism ---------------------------------------------------------------------------------
def test_generation_is_deterministic_across_runs_and_worker_counts(tmp_path, dist, reference):
    one = tmp_path / "one.h5"
    two = tmp_path / "two.h5"
    generate(one, dist, N, SEED, workers=1, fields=FIELDS, progress=False)
    summary = generate(two, dist, N, SEED, workers=2, fields=FIELDS, progress=False)
    assert summary == {**summary, "samples": N, "solved": N}
    keys = (*COMPARED, "fields/strain_energy", "fields/von_mises")
    ref = read_all(reference, keys)
    np.testing.assert_array_equal(ref["index"], np.arange(N))
    for path in (one, two):
        other = read_all(path, keys)
        for k in keys:
            assert other[k].tobytes() == ref[k].tobytes(), f"{path.name}: {k} differs"
    # another seed is another data set
    three = tmp_path / "three.h5"
    generate(three, dist, 3, SEED + 1, workers=1, progress=False)
    with h5py.File(three, "r") as f:
        assert f["density"][:].tobytes() != ref["density"][:3].tobytes()


@pytest.mark.parametrize("i", [0, 5, N - 1])
def test_a_sample_remade_alone_equals_its_row(reference, dist, i):
    problem = sample_problem(dist, SEED, i)
    result = solve(problem, threads=1)
    with h5py.File(reference, "r") as f:
        assert int(f["index"][i]) == i
        assert f["density"][i].tobytes() == result.density.astype(np.float32).tobytes()
        assert f["result/compliance"][i] == result.compliance
        assert f["result/volume"][i] == result.volume
        assert f["result/iterations"][i] == result.iterations
        assert f["result/converged"][i] == result.converged
        assert f["result/seconds"][i] > 0
        for k, v in problem_arrays(problem).items():
            stored = f[f"problem/{k}"][i]
            want = v[0] if k == "loads" else v
            assert stored.tobytes() == np.asarray(want, stored.dtype).tobytes(), k
        energy, von_mises = full_material_fields(problem)
        assert f["fields/strain_energy"][i].tobytes() == energy.astype(np.float32).tobytes()
        assert f["fields/von_mises"][i].tobytes() == von_mises.astype(np.float32).tobytes()


def test_header_and_layout(reference, dist):
    h = read_header(reference)
    assert h["distribution"] == dist
    assert (h["version"], h["seed"], h["n_requested"], h["n"]) == (2, SEED, N, N)
    assert (h["alternatives"], h["alternative_search"]) == (0, None)
    assert h["fields"] == FIELDS and h["pending_shards"] == 0
    with h5py.File(reference, "r") as f:
        assert f.attrs["format"] == "topovae-dataset"
        shapes = {k: (f[k].shape, f[k].dtype) for k in (*COMPARED, "result/seconds")}
        for k in ("density", "fields/strain_energy", "fields/von_mises"):
            assert (f[k].shape, f[k].dtype, f[k].chunks) == ((N, 12, 12), np.float32, (1, 12, 12))
    assert shapes["problem/loads"] == ((N, 2, 13, 13), np.float64)
    assert shapes["problem/fixed_x"] == ((N, 13, 13), np.bool_)
    assert shapes["result/iterations"] == ((N,), np.int32)
    # every sample was solved to convergence and meets its volume fraction
    data = read_all(reference)
    assert data["result/converged"].all()
    np.testing.assert_allclose(data["result/volume"], data["problem/volfrac"], atol=0.02)
    assert np.all((data["density"] >= 0) & (data["density"] <= 1))


# -- the writer: shards, consolidation, interruption ----------------------------------------------
def _records(dist, indices, seed=SEED):
    return [solve_sample(dist.to_json(), seed, i, ()) for i in indices]


def test_shards_are_merged_in_index_order_and_duplicates_dropped(tmp_path, dist, reference):
    path = tmp_path / "d.h5"
    w = DatasetWriter(path, dist, SEED, 6, shard_size=2)
    recs = _records(dist, [4, 1, 0, 5, 2])
    for r in recs:
        w.add(r)  # shards of two: (4, 1), (0, 5); 2 stays buffered
    shards = sorted(w.parts.glob("part-*.npz"))
    assert len(shards) == 2 and read_header(path)["pending_shards"] == 2
    assert read_header(path)["n"] == 0  # the main file is untouched until consolidation
    assert w.done_indices() == {0, 1, 4, 5}
    # a kill after the main file was replaced but before the shards were removed: keep copies
    saved = tmp_path / "saved"
    shutil.copytree(w.parts, saved)
    assert w.consolidate() == 5
    assert not w.parts.exists()  # merged shards are deleted, and their empty folder
    w.parts.mkdir()
    for s in saved.iterdir():
        shutil.copy(s, w.parts / s.name)
    w.close()  # the first writer's process ends (a kill releases its lock the same way)
    w2 = DatasetWriter(path, dist, SEED, 6, mode="resume")
    assert list(w2.pending()) == [3]
    w2.add(_records(dist, [3])[0])
    assert w2.consolidate() == 6
    ref = read_all(reference)
    got = read_all(path)
    np.testing.assert_array_equal(got["index"], np.arange(6))
    assert_same_samples(got, {k: v[:6] for k, v in ref.items()})
    assert read_header(path)["pending_shards"] == 0


def test_resume_with_fewer_samples_than_the_shards_hold(tmp_path, dist):
    """BUG (topovae/datasets/_store.py, DatasetWriter._check_matches / consolidate): --resume
    with a smaller -n than the file already holds is refused when the samples are in the main
    file, but not when they are still in shards (after a kill): consolidate then merges every
    shard, and the file ends with more samples than n_requested (here 6 > 3) and indices >= n.
    Fix: count the shards' indices in the check (refuse), or drop indices >= n on merging."""
    path = tmp_path / "d.h5"
    w = DatasetWriter(path, dist, SEED, 10, shard_size=3)
    for r in _records(dist, range(6)):
        w.add(r)
    assert read_header(path)["pending_shards"] == 2  # killed here: nothing consolidated
    try:
        w2 = DatasetWriter(path, dist, SEED, 3, mode="resume")
        w2.consolidate()
    except DatasetError:
        return  # refusing is fine
    h = read_header(path)
    with h5py.File(path, "r") as f:
        index = f["index"][:]
    assert h["n"] <= h["n_requested"] == 3, (h["n"], index)
    assert index.max() < 3


def test_main_file_holding_more_than_n_is_refused(tmp_path, dist):
    path = tmp_path / "d.h5"
    generate(path, dist, 3, SEED, workers=1, progress=False)
    with pytest.raises(DatasetError, match="already holds 3 samples, more than -n 2"):
        generate(path, dist, 2, SEED, workers=1, mode="resume", progress=False)
    assert read_header(path)["n"] == 3


def test_a_corrupt_shard_does_not_crash_resume(tmp_path, dist):
    """BUG (low; topovae/datasets/_store.py, DatasetWriter.consolidate): done_indices() skips an
    unreadable part-*.npz (its samples are recomputed), but consolidate() then np.load()s every
    shard again and dies with a raw ValueError (no DatasetError, so a traceback from the CLI),
    on every later --resume too. Fix: skip/quarantine (rename to *.bad) unreadable shards in
    consolidate as done_indices does, or raise one clear DatasetError."""
    path = tmp_path / "d.h5"
    generate(path, dist, 2, SEED, workers=1, progress=False)
    parts = path.with_name("d.h5.parts")
    parts.mkdir(exist_ok=True)
    (parts / "part-000000000-deadbeef.npz").write_bytes(b"not a zip file")
    try:
        generate(path, dist, 3, SEED, workers=1, mode="resume", progress=False)
    except DatasetError:
        return  # one clear error is fine too
    np.testing.assert_array_equal(read_all(path, ["index"])["index"], np.arange(3))


def test_keyboard_interrupt_consolidates_finished_samples(tmp_path, dist, reference, monkeypatch):
    path = tmp_path / "d.h5"
    real_add = DatasetWriter.add
    seen = []

    def add(self, records):  # all rows of one problem (one row each here)
        if len(seen) == 4:
            raise KeyboardInterrupt
        seen.append(int(records[0]["index"]))
        real_add(self, records)

    monkeypatch.setattr(DatasetWriter, "add", add)
    with pytest.raises(KeyboardInterrupt):
        generate(path, dist, N, SEED, workers=2, progress=False)
    h = read_header(path)
    assert h["n"] == 4 and h["pending_shards"] == 0 and h["n_requested"] == N
    got = read_all(path)
    np.testing.assert_array_equal(got["index"], sorted(seen))
    ref = read_all(reference)
    assert_same_samples(got, {k: v[sorted(seen)] for k, v in ref.items()})
    monkeypatch.setattr(DatasetWriter, "add", real_add)
    summary = generate(path, dist, N, SEED, workers=2, mode="resume", progress=False)
    assert (summary["samples"], summary["solved"]) == (N, N - 4)
    assert_same_samples(path, reference)


def test_writer_refusals(tmp_path, dist):
    path = tmp_path / "d.h5"
    generate(path, dist, 2, SEED, workers=1, progress=False)
    before = path.read_bytes()
    with pytest.raises(DatasetError, match=r"--resume.*--overwrite"):
        DatasetWriter(path, dist, SEED, 2)
    for other in (
        dict(dist=dist, seed=SEED + 1),
        dict(dist=distribution("mbb-like", 12, 12), seed=SEED),
        dict(dist=distribution("mixed", 16, 8), seed=SEED),
        dict(dist=dist, seed=SEED, fields=FIELDS),
    ):
        kw = {"seed": SEED, "n": 2, "mode": "resume", **other}
        with pytest.raises(DatasetError, match=r"other settings.*--overwrite"):
            DatasetWriter(path, **kw)
    assert path.read_bytes() == before
    with pytest.raises(DatasetError, match="unknown field 'pressure'"):
        DatasetWriter(tmp_path / "e.h5", dist, SEED, 2, fields=("pressure",))
    with pytest.raises(DatasetError, match="does not exist"):
        DatasetWriter(tmp_path / "nope" / "e.h5", dist, SEED, 2)
    for bad in (dict(n=0), dict(n=-1), dict(n=2.0), dict(n=True), dict(n=2, workers=0)):
        with pytest.raises(DatasetError):
            generate(tmp_path / "f.h5", dist, seed=SEED, progress=False, **bad)
    assert not (tmp_path / "f.h5").exists() and not (tmp_path / "e.h5").exists()
    # overwrite starts again with the new settings
    generate(path, dist, 1, SEED + 1, workers=1, mode="overwrite", progress=False)
    h = read_header(path)
    assert (h["seed"], h["n"], h["n_requested"]) == (SEED + 1, 1, 1)


# -- TopologyDataset -----------------------------------------------------------------------------
def _node_counts(h, w):
    """How many of a node's 4 elements lie inside the grid."""
    c = np.zeros((h + 1, w + 1))
    c[:-1, :-1] += 1
    c[1:, :-1] += 1
    c[:-1, 1:] += 1
    c[1:, 1:] += 1
    return c


def test_splits_partition_the_file(reference):
    parts = {s: TopologyDataset(reference, split=s) for s in ("train", "val", "test")}
    idx = {s: [int(ds[k]["index"]) for k in range(len(ds))] for s, ds in parts.items()}
    assert [len(idx[s]) for s in ("train", "val", "test")] == [10, 1, 1]  # round(0.8 * 12) ...
    union = sorted(idx["train"] + idx["val"] + idx["test"])
    assert union == list(range(N))  # disjoint and complete
    assert sorted(int(x["index"]) for x in TopologyDataset(reference, split="all")) == union
    again = TopologyDataset(reference, split="train")
    assert [int(again[k]["index"]) for k in range(len(again))] == idx["train"]
    others = [
        {int(x["index"]) for x in TopologyDataset(reference, split="train", split_seed=s)}
        for s in (1, 2, 3)
    ]
    assert any(o != set(idx["train"]) for o in others)
    halves = [
        TopologyDataset(reference, split=s, fractions=(0.5, 0.5, 0.0)) for s in ("train", "val")
    ]
    assert [len(h) for h in halves] == [6, 6]
    assert len(TopologyDataset(reference, split="test", fractions=(0.5, 0.5, 0.0))) == 0


def test_items_shapes_dtypes_and_condition_channels(reference):
    ds = TopologyDataset(reference, split="all")
    assert len(ds) == N
    assert ds.condition_channels == (
        "volfrac", "fx", "fy", "fixed_x", "fixed_y", "passive_solid", "passive_void",
    )  # fmt: skip
    raw = read_all(reference)
    counts = _node_counts(12, 12)
    for k in range(N):
        item = ds[k]
        assert set(item) == {"density", "condition", "volfrac", "index", "alternative", "position"}
        assert int(item["position"]) == k and ds.problem(k).name.endswith(f"#{item['index']}")
        i = int(item["index"])
        assert item["density"].shape == (1, 12, 12) and item["density"].dtype == torch.float32
        assert item["condition"].shape == (7, 12, 12) and item["condition"].dtype == torch.float32
        assert item["volfrac"].shape == () and item["volfrac"].dtype == torch.float32
        assert item["index"].dtype == torch.int64
        assert item["density"].numpy().tobytes() == raw["density"][i][None].tobytes()
        c = item["condition"].numpy().astype(np.float64)
        vf = np.float32(raw["problem/volfrac"][i])
        assert np.all(c[0] == vf) and float(item["volfrac"]) == vf
        loads = raw["problem/loads"][i]
        for ch, f in ((1, loads[0]), (2, loads[1])):
            # total force weighted by the share of the node's four elements inside the grid
            assert c[ch].sum() == pytest.approx((f * counts).sum() / 4, rel=1e-5, abs=1e-6)
            assert c[ch][0, 0] == pytest.approx(f[:2, :2].mean(), rel=1e-5, abs=1e-7)
        for ch, key in ((3, "problem/fixed_x"), (4, "problem/fixed_y")):
            assert c[ch].min() >= 0 and c[ch].max() <= 1
            assert c[ch].sum() == pytest.approx((raw[key][i] * counts).sum() / 4)
        np.testing.assert_array_equal(c[5], raw["problem/passive_solid"][i])
        np.testing.assert_array_equal(c[6], raw["problem/passive_void"][i])


def test_in_memory_gives_identical_items(reference):
    for split in ("train", "test"):
        lazy = TopologyDataset(reference, split=split, fields=True)
        mem = TopologyDataset(reference, split=split, fields=True, in_memory=True)
        assert len(lazy) == len(mem)
        for k in range(len(lazy)):
            a, b = lazy[k], mem[k]
            for key in a:
                assert torch.equal(a[key], b[key]), (split, k, key)
        lazy.close()
    assert torch.equal(mem[-1]["density"], mem[len(mem) - 1]["density"])
    with pytest.raises(IndexError):
        mem[len(mem)]
    with pytest.raises(IndexError):
        lazy[-len(lazy) - 1]


def test_dataloader_with_workers_sees_every_item_once(reference):
    ds = TopologyDataset(reference, split="all", fields=True)
    direct = {int(ds[k]["index"]): ds[k] for k in range(len(ds))}  # opens a handle before fork
    loader = torch.utils.data.DataLoader(ds, batch_size=4, num_workers=2, shuffle=True)
    for _epoch in range(2):
        seen = []
        for batch in loader:
            assert batch["density"].shape[1:] == (1, 12, 12)
            assert batch["condition"].shape[1:] == (9, 12, 12)
            for j, i in enumerate(batch["index"].tolist()):
                seen.append(i)
                for key in ("density", "condition", "volfrac"):
                    assert torch.equal(batch[key][j], direct[i][key]), (i, key)
        assert sorted(seen) == list(range(N))
    ds.close()


def test_field_channels_and_strain_energy_balance(reference, dist):
    plain = TopologyDataset(reference, split="all")
    ds = TopologyDataset(reference, split="all", fields=True)
    assert ds.condition_channels[-2:] == FIELDS
    raw = read_all(reference, ["index", "fields/strain_energy", "fields/von_mises"])
    for k in range(N):
        item = ds[k]
        i = int(item["index"])
        assert item["condition"].shape == (9, 12, 12)
        assert torch.equal(item["condition"][:7], plain[k]["condition"])
        sed = raw["fields/strain_energy"][i]
        np.testing.assert_array_equal(item["condition"][7].numpy(), np.log1p(sed))
        np.testing.assert_array_equal(
            item["condition"][8].numpy(), np.log1p(raw["fields/von_mises"][i])
        )
        assert sed.min() >= 0 and raw["fields/von_mises"][i].min() >= 0
        # strain energy of the full-material design: 2 * sum(SED) = its compliance f.u
        full = compliance(np.ones((12, 12)), sample_problem(dist, SEED, i))
        assert 2 * sed.astype(np.float64).sum() == pytest.approx(full, rel=1e-5)


def test_fields_flag_on_a_file_without_fields(tmp_path, dist):
    path = tmp_path / "plain.h5"
    generate(path, dist, 2, SEED, workers=1, progress=False)
    stored = tmp_path / "fields.h5"
    generate(stored, dist, 2, SEED, workers=1, fields=FIELDS, progress=False)
    computed = TopologyDataset(path, split="all", fields=True)
    kept = TopologyDataset(stored, split="all", fields=True)
    assert computed.condition_channels == kept.condition_channels
    for k in range(2):  # computed from each problem, they equal the fields the generator stores
        a, b = computed[k]["condition"], kept[k]["condition"]
        assert a.shape == (9, 12, 12)
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_dataset_argument_errors(reference):
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        TopologyDataset(reference, split="dev")
    for fractions in ((0.5, 0.5, 0.5), (0.9, 0.2, -0.1), (1.0, 0.0)):
        with pytest.raises(ValueError, match="fractions"):
            TopologyDataset(reference, fractions=fractions)


def _foreign(tmp_path):
    plain = tmp_path / "plain.h5"
    with h5py.File(plain, "w") as f:
        f["index"] = np.arange(3)
    text = tmp_path / "notes.h5"
    text.write_text("these are not the data you are looking for\n")
    return {"not a topovae dataset": plain, "not an HDF5 file": text}


def test_dataset_refuses_foreign_newer_and_missing_files(tmp_path, reference):
    cases = _foreign(tmp_path)
    newer = tmp_path / "newer.h5"
    shutil.copy(reference, newer)
    with h5py.File(newer, "r+") as f:
        f.attrs["version"] = 99
    cases["version 99, newer"] = newer
    cases["does not exist"] = tmp_path / "missing.h5"
    damaged = tmp_path / "damaged.h5"  # the format attribute, but no settings (was a KeyError)
    shutil.copy(reference, damaged)
    with h5py.File(damaged, "r+") as f:
        del f.attrs["distribution"]
    cases["damaged topovae dataset: its settings lack distribution"] = damaged
    garbled = tmp_path / "garbled.h5"
    shutil.copy(reference, garbled)
    with h5py.File(garbled, "r+") as f:
        f.attrs["fields"] = "not json"
    cases["damaged topovae dataset: unreadable settings"] = garbled
    bare = tmp_path / "bare.h5"  # the settings, but no designs (show and train: KeyError)
    shutil.copy(reference, bare)
    with h5py.File(bare, "r+") as f:
        del f["density"]
    cases["damaged topovae dataset: it has no designs"] = bare
    short = tmp_path / "short.h5"  # the designs cut short: rows past them were IndexErrors
    shutil.copy(reference, short)
    with h5py.File(short, "r+") as f:
        n = f["density"].shape[0]
        f["density"].resize((n - 1, *f["density"].shape[1:]))
    cases[f"damaged topovae dataset: {n - 1} designs for {n} indices"] = short
    for fragment, path in cases.items():
        with pytest.raises(DatasetError) as e:
            TopologyDataset(path)
        msg = str(e.value)
        assert "\n" not in msg and fragment in msg and str(path) in msg
        with pytest.raises(DatasetError):
            read_header(path)


def test_a_second_generate_on_a_file_being_written_is_refused(tmp_path):
    """Two `generate --resume` on one file: the second is refused before touching anything,
    naming the holder; a killed holder's lock is released by the kernel and taken over."""
    import subprocess
    import sys

    from topovae.datasets import DatasetError, DatasetWriter, distribution

    path = tmp_path / "d.h5"
    dist = distribution("mixed", 12, 12)
    first = DatasetWriter(path, dist, 0, 4)
    try:
        with pytest.raises(DatasetError, match=r"is being written by process \d+ on"):
            DatasetWriter(path, dist, 0, 4, mode="resume")
    finally:
        first.close()
    # a process that takes the lock and is killed: the next writer takes over
    code = (
        "import os, signal, sys\n"
        "from topovae.datasets import DatasetWriter, distribution\n"
        f"w = DatasetWriter({str(path)!r}, distribution('mixed', 12, 12), 0, 4, mode='resume')\n"
        "print('locked', flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "locked" in p.stdout and p.returncode == -9, p.stderr
    DatasetWriter(path, dist, 0, 4, mode="resume").close()


def test_pending_indices_are_lazy_and_skip_the_done_ones():
    import itertools

    from topovae.datasets._store import Pending

    p = Pending(10**12, {0, 2, 5, 10**13})  # an index beyond n is not pending and not counted
    assert len(p) == 10**12 - 3
    assert list(itertools.islice(p, 4)) == [1, 3, 4, 6]
    assert list(Pending(4, {1})) == [0, 2, 3]


def test_a_dataset_larger_than_the_free_disk_is_refused_before_the_file_exists(tmp_path):
    out = tmp_path / "huge.h5"
    with pytest.raises(DatasetError, match=r"-n 10000000000 samples of 32x32 need up to .* GiB"):
        generate(out, distribution("mixed", 32, 32), n=10**10, seed=0, workers=1, progress=False)
    assert list(tmp_path.iterdir()) == []
