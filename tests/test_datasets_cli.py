"""`topovae generate / info / show`: crash safety under a real SIGKILL and a Ctrl-C of a running
`python -m topovae generate`, resuming, refusals (one line ``Error: ...``, exit code 2).

Crash test design: the CLI is run as a real subprocess (its own session / process group) on a
12x12 grid with 400 samples and two workers. The writer flushes a shard every 64 samples, so we
poll for the first ``<out>.parts/part-*.npz`` and SIGKILL (or SIGINT) the parent at once; the
remaining ~336 samples leave a margin for the poll (with 150, a quiet machine once finished all
of them before the Ctrl-C landed). No patching of shard_size is needed.
"""

import glob
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import assert_one_line_error

from topovae.datasets import (
    DatasetError,
    DatasetWriter,
    TopologyDataset,
    distribution,
    generate,
    read_header,
)

ROOT = Path(__file__).resolve().parents[1]
COMPARED = (
    "index", "density", "problem/volfrac", "problem/fixed_x", "problem/fixed_y", "problem/loads",
    "problem/passive_solid", "problem/passive_void", "result/compliance", "result/volume",
    "result/iterations", "result/converged",
)  # fmt: skip
CRASH_N, CRASH_SEED = 400, 5
CRASH_ARGS = ["-d", "mixed", "--size", "12x12", "-n", CRASH_N, "--seed", CRASH_SEED, "-q"]
posix_only = pytest.mark.skipif(os.name != "posix", reason="signals and process groups")


def read_all(path, keys=COMPARED):
    with h5py.File(path, "r") as f:
        return {k: f[k][:] for k in keys}


def assert_same_rows(path, reference, rows=None):
    """``path`` holds the samples ``rows`` of ``reference`` (all rows by default): densities
    byte-identical, problem arrays and results equal (the wall-clock seconds are not compared)."""
    got, ref = read_all(path), read_all(reference)
    if rows is not None:
        ref = {k: v[rows] for k, v in ref.items()}
    for k in COMPARED:
        assert got[k].dtype == ref[k].dtype and got[k].shape == ref[k].shape, k
        assert got[k].tobytes() == ref[k].tobytes(), f"{k} differs"


def _env():
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def _start_generate(out: Path) -> subprocess.Popen:
    """`python -m topovae generate` in its own process group; stderr goes to <out>.stderr (not a
    pipe: orphaned workers would hold a pipe open and block the read)."""
    cmd = [sys.executable, "-m", "topovae", "generate", *map(str, CRASH_ARGS)]
    cmd += ["--out", str(out), "--workers", "2"]
    with open(_stderr(out), "w") as err:
        return subprocess.Popen(
            cmd, cwd=out.parent, env=_env(), start_new_session=True,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
            preexec_fn=_terminal_sigint,
        )  # fmt: skip


def _terminal_sigint() -> None:
    """SIGINT as a terminal's foreground job has it. A test run started in the background
    (`make test &`) inherits SIGINT ignored, and Python then installs no handler, so the
    Ctrl-C test's child would ignore the signal and run to its end (rc 0)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _stderr(out: Path) -> Path:
    return out.with_name(out.name + ".stderr")


def _wait_for_shard(proc: subprocess.Popen, out: Path, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    pattern = str(out) + ".parts/part-*.npz"
    while not glob.glob(pattern):
        if proc.poll() is not None:
            err = _stderr(out).read_text()
            pytest.fail(f"generate ended (rc {proc.returncode}) before a shard appeared: {err}")
        if time.monotonic() > deadline:
            pytest.fail(f"no shard after {timeout} s")
        time.sleep(0.01)


def _group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of a process group, from /proc."""
    members = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()  # state, ppid, pgrp, ...
        if fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(d.name))
    return members


def _kill_group(pgid: int) -> None:
    """Clean up whatever our own subprocess's group left behind."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run the interrupted ones must equal."""
    path = tmp_path_factory.mktemp("reference") / "ref.h5"
    dist = distribution("mixed", 12, 12)
    summary = generate(path, dist, CRASH_N, CRASH_SEED, workers=2, progress=False)
    assert summary["samples"] == CRASH_N
    return path


@pytest.fixture(scope="module")
def killed(tmp_path_factory):
    """A `topovae generate` SIGKILLed after its first shard: (out, shard indices, kill time)."""
    out = tmp_path_factory.mktemp("killed") / "data.h5"
    proc = _start_generate(out)
    try:
        _wait_for_shard(proc, out)
        proc.kill()  # SIGKILL to the parent only, as the OOM killer or `kill -9` would
        proc.wait(timeout=30)
        killed_at = time.monotonic()
        shards = sorted(out.parent.glob("data.h5.parts/part-*.npz"))
        indices = np.concatenate([np.load(s)["index"] for s in shards])
        yield {"out": out, "indices": indices, "pgid": proc.pid, "killed_at": killed_at}
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        _kill_group(proc.pid)


# -- crash safety --------------------------------------------------------------------------------
@posix_only
def test_a_killed_run_leaves_a_readable_main_file_and_shards(killed):
    out = killed["out"]
    h = read_header(out)
    assert h["n"] == 0 and h["n_requested"] == CRASH_N and h["seed"] == CRASH_SEED
    assert h["pending_shards"] >= 1
    with h5py.File(out, "r") as f:
        assert f["density"].shape == (0, 12, 12) and f["index"].shape == (0,)
    idx = killed["indices"]
    assert len(idx) >= 1 and len(set(idx.tolist())) == len(idx)
    assert idx.min() >= 0 and idx.max() < CRASH_N


@posix_only
def test_info_after_a_kill_mentions_the_pending_shards(run, killed):
    result = run("info", killed["out"])
    assert result.exit_code == 0, result.output
    assert f"0 of {CRASH_N} samples (12x12), seed {CRASH_SEED}" in result.output
    n_shards = read_header(killed["out"])["pending_shards"]
    assert f"{n_shards} shard file(s)" in result.output and "--resume" in result.output


@posix_only
def test_resume_after_a_kill_equals_an_uninterrupted_run(run, killed, reference, tmp_path):
    out = tmp_path / "data.h5"
    shutil.copy(killed["out"], out)
    shutil.copytree(killed["out"].with_name("data.h5.parts"), tmp_path / "data.h5.parts")
    result = run("generate", *CRASH_ARGS, "--out", "data.h5", "--workers", 2, "--resume")
    assert result.exit_code == 0, result.output
    done = len(killed["indices"])
    assert f"data.h5: {CRASH_N} samples ({CRASH_N - done} solved now" in result.output
    h = read_header(out)
    assert (h["n"], h["n_requested"], h["pending_shards"]) == (CRASH_N, CRASH_N, 0)
    np.testing.assert_array_equal(read_all(out, ["index"])["index"], np.arange(CRASH_N))
    assert_same_rows(out, reference)
    # resuming a complete file solves nothing and changes no sample
    result = run("generate", *CRASH_ARGS, "--out", "data.h5", "--resume")
    assert result.exit_code == 0 and "(0 solved now" in result.output, result.output
    assert_same_rows(out, reference)


@posix_only
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_worker_processes_exit_when_generate_is_killed(killed):
    """BUG (topovae/datasets/_generate.py, _executor/_init_worker): after a SIGKILL of
    `topovae generate` its ProcessPoolExecutor workers live on forever as orphans (blocked on
    the call queue), one set per crash, e.g. on a cluster node that restarts the job.
    Fix: in `_init_worker`, on Linux set prctl(PR_SET_PDEATHSIG, SIGKILL) (ctypes), or start a
    daemon thread that exits the worker (os._exit) once os.getppid() changes."""
    deadline = killed["killed_at"] + 5.0
    while (left := _group_members(killed["pgid"])) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert left == [], f"orphaned worker processes still alive: {left}"


@posix_only
def test_ctrl_c_keeps_finished_samples_in_the_main_file(run, reference, tmp_path):
    out = tmp_path / "data.h5"
    proc = _start_generate(out)
    try:
        _wait_for_shard(proc, out)
        shards = out.parent.glob("data.h5.parts/part-*.npz")
        finished = set(np.concatenate([np.load(s)["index"] for s in shards]).tolist())
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        _kill_group(proc.pid)
    err = _stderr(out).read_text()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "interrupted" in err and "--resume" in err
    h = read_header(out)
    assert h["pending_shards"] == 0  # merged into the main file at once
    assert h["n"] < CRASH_N
    index = read_all(out, ["index"])["index"]
    assert np.all(np.diff(index) > 0)
    assert finished <= set(index.tolist())  # every sample finished before Ctrl-C is kept
    assert_same_rows(out, reference, rows=index)
    result = run("generate", *CRASH_ARGS, "--out", out, "--workers", 2, "--resume")
    assert result.exit_code == 0, result.output
    assert f"({CRASH_N - h['n']} solved now" in result.output
    assert_same_rows(out, reference)


# -- generate, info, show ------------------------------------------------------------------------
SMALL = ["-d", "mixed", "--size", "12x12", "-n", 6, "--seed", 3, "--workers", 1, "-q"]


def test_generate_info_show(run, tmp_path):
    result = run("generate", *SMALL, "--out", "d.h5")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("d.h5: 6 samples (6 solved now, ")
    result = run("info", "d.h5")
    assert result.exit_code == 0, result.output
    out = result.output
    data = read_all(tmp_path / "d.h5", ["result/compliance", "result/converged"])
    assert "d.h5: topovae dataset v2, 6 of 6 samples (12x12), seed 3" in out
    assert "distribution mixed: volfrac (0.25, 0.6)" in out
    assert "fields: none" in out and "await merging" not in out
    assert f"converged {data['result/converged'].mean():.1%}" in out
    assert f"compliance: mean {data['result/compliance'].mean():.4g}" in out
    assert "KiB per design" in out
    result = run("show", "d.h5", "-n", 4, "--out", "x.png")
    assert result.exit_code == 0, result.output
    assert "wrote x.png" in result.output
    assert (tmp_path / "x.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    result = run("show", "d.h5", "-n", 50, "--out", "all.png")  # more than the file holds
    assert result.exit_code == 0 and (tmp_path / "all.png").stat().st_size > 0


def test_generate_with_fields_and_torch_device(run, tmp_path):
    result = run("generate", *SMALL[:5], 4, "--seed", 3, "-q", "--fields", "--out", "f.h5")
    assert result.exit_code == 0, result.output
    assert "fields: strain_energy, von_mises" in run("info", "f.h5").output
    ds = TopologyDataset(tmp_path / "f.h5", fields=True, split="all")
    assert len(ds) == 4 and ds[0]["condition"].shape == (9, 12, 12)
    # the batched torch path stores the same problems, in index order
    result = run("generate", *SMALL[:5], 4, "--seed", 3, "-q", "--device", "cpu", "--batch", 3,
                 "--out", "t.h5")  # fmt: skip
    assert result.exit_code == 0, result.output
    a, b = read_all(tmp_path / "f.h5"), read_all(tmp_path / "t.h5")
    for k in ("index", "problem/volfrac", "problem/loads", "problem/fixed_x"):
        np.testing.assert_array_equal(a[k], b[k])
    assert b["result/converged"].all()


def test_resume_continues_a_file_under_its_own_simp_settings(run, tmp_path):
    """A file made under other SIMP settings (here a factor-reuse setting that is not today's
    default, as every file made before the default changed) resumes: the file's settings
    hold; a --ctol that contradicts them is refused."""
    import dataclasses

    dist = distribution("mixed", 12, 12)
    old = dataclasses.replace(dist, settings=dataclasses.replace(dist.settings, reuse_tol=0.0))
    generate(tmp_path / "d.h5", old, n=3, seed=3, workers=1, progress=False)
    n5 = [*SMALL[:4], "-n", 5, *SMALL[6:]]
    assert_one_line_error(run("generate", *n5, "--ctol", "1e-3", "--out", "d.h5", "--resume"),
                          "--ctol 0.001 differs from the 0", "its own SIMP settings")  # fmt: skip
    result = run("generate", *n5, "--out", "d.h5", "--resume")
    assert result.exit_code == 0, result.output
    header = read_header(tmp_path / "d.h5")
    assert header["n"] == 5 and header["distribution"].settings.reuse_tol == 0.0


def test_existing_file_refusals_resume_and_overwrite(run, tmp_path):
    assert run("generate", *SMALL, "--out", "d.h5").exit_code == 0
    path = tmp_path / "d.h5"
    before = path.read_bytes()
    assert_one_line_error(run("generate", *SMALL, "--out", "d.h5"), "exists", "--resume",
                          "--overwrite")  # fmt: skip
    others = {
        "seed": ["--seed", 4],
        "distribution": ["-d", "mbb-like"],
        "size": ["--size", "16x8"],
        "fields": ["--fields"],
    }
    named = {  # the refusal names what differs
        "seed": "seed: the file 3, now 4",
        "distribution": "distribution.name: the file 'mixed', now 'mbb-like'",
        "size": "distribution.nelx: the file 12, now 16",
        "fields": "fields: the file (), now",
    }
    for what, extra in others.items():
        result = run("generate", *SMALL, *extra, "--out", "d.h5", "--resume")
        assert_one_line_error(result, "other settings", named[what], "--overwrite")
    assert_one_line_error(
        run("generate", *SMALL, "--out", "d.h5", "--resume", "--overwrite"), "exclude each other"
    )
    n2 = [*SMALL[:4], "-n", 2, *SMALL[6:]]
    assert_one_line_error(
        run("generate", *n2, "--out", "d.h5", "--resume"), "already holds 6 samples"
    )
    assert path.read_bytes() == before, "a refused command changed the file"
    # --resume with a larger n extends the file
    n8 = [*SMALL[:4], "-n", 8, *SMALL[6:]]
    result = run("generate", *n8, "--out", "d.h5", "--resume")
    assert result.exit_code == 0 and "8 samples (2 solved now" in result.output, result.output
    # --overwrite replaces it, settings and all
    result = run("generate", *n2, "--seed", 9, "--out", "d.h5", "--overwrite")
    assert result.exit_code == 0, result.output
    h = read_header(path)
    assert (h["seed"], h["n"], h["n_requested"]) == (9, 2, 2)
    # --resume of a file that does not exist yet simply starts it
    result = run("generate", *n2, "--out", "new.h5", "--resume")
    assert result.exit_code == 0 and read_header(tmp_path / "new.h5")["n"] == 2


def _bad_files(tmp_path, reference):
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["index"] = np.arange(3)
        f["density"] = np.zeros((3, 12, 12), np.float32)
    text = tmp_path / "text.h5"
    text.write_text("hello\n")
    newer = tmp_path / "newer.h5"
    shutil.copy(reference, newer)
    with h5py.File(newer, "r+") as f:
        f.attrs["version"] = 99
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(Path(reference).read_bytes()[:2000])
    return {
        "foreign.h5": "not a topovae dataset",
        "text.h5": "not an HDF5 file",
        "newer.h5": "version 99, newer",
        "truncated.h5": "not an HDF5 file",
        "missing.h5": "does not exist",
    }


def test_foreign_newer_and_missing_files_give_one_line(run, tmp_path, reference):
    for name, fragment in _bad_files(tmp_path, reference).items():
        assert_one_line_error(run("info", name), name, fragment)
        assert_one_line_error(run("show", name, "--out", "x.png"), fragment)
        with pytest.raises(DatasetError, match=fragment):
            TopologyDataset(tmp_path / name)
        if name != "missing.h5":
            result = run("generate", *CRASH_ARGS, "--out", name, "--resume")
            assert_one_line_error(result, fragment)
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["-d", "bogus"], ["bogus", "mixed"]),
        (["--size", "0x64"], ["0x64"]),
        (["--size", "abc"], ["abc", "64x64"]),
        (["--size", "3x3"], ["3x3"]),
        (["--size", "64x"], ["64x"]),
        (["--size", "8x8x8"], ["8x8x8"]),
        (["-n", 0], ["-n", "0"]),
        (["-n", -5], ["-n", "-5"]),
        (["--seed", -1], ["--seed", "-1"]),
        (["--seed", 99999999999999999999999], ["--seed", "2^63", "99999999999999999999999"]),
        (["--workers", 0], ["--workers", "0"]),
        (["--device", "tpu"], ["tpu", "cpu"]),
        (["--out", "nowhere/d.h5"], ["nowhere"]),
        (["--out", "."], ["folder"]),
        (["--resume", "--overwrite"], ["--resume", "--overwrite"]),
    ],
)
def test_bad_generate_options_give_one_line_and_exit_2(run, tmp_path, args, fragments):
    base = ["-d", "mixed", "--size", "12x12", "-n", 2, "-q", "--out", "d.h5"]
    assert_one_line_error(run("generate", *base, *args), *fragments)
    assert not (tmp_path / "d.h5").exists()
    assert not list(tmp_path.glob("d.h5*"))  # no stray temporary, lock or shard folder


def test_unreachable_dask_scheduler(run, tmp_path):
    result = run("generate", *SMALL, "--out", "d.h5", "--scheduler", "tcp://127.0.0.1:1")
    assert_one_line_error(result)
    line = result.output.strip()
    assert "cannot reach the Dask scheduler at 'tcp://127.0.0.1:1'" in line or (
        "dask" in line and "pip install" in line
    ), line


def test_a_failed_scheduler_start_leaves_no_file(run, tmp_path):
    """BUG (topovae/datasets/_generate.py, generate): the DatasetWriter creates the (empty) main
    file before the executor starts, so a bad --scheduler (or a missing dask) leaves d.h5 behind;
    re-running the corrected command then fails with "exists; pass --resume ...". Fix: create
    the executor (or at least check the scheduler / import dask) before creating the writer, or
    remove the file made by this call when the executor fails to start."""
    result = run("generate", *SMALL, "--out", "d.h5", "--scheduler", "tcp://127.0.0.1:1")
    assert result.exit_code == 2
    assert not (tmp_path / "d.h5").exists()


def test_the_dask_extra_named_in_the_error_exists():
    """The --scheduler error says "pip install 'topovae[dask]'": that extra must exist in
    pyproject.toml (it was missing until e24bf61), or the command installs nothing."""
    tomllib = pytest.importorskip("tomllib")
    source = (ROOT / "topovae" / "datasets" / "_generate.py").read_text()
    assert "topovae[dask]" in source
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    assert "dask" in extras and any("distributed" in r for r in extras["dask"]), extras


def test_show_and_info_argument_errors(run, tmp_path):
    assert run("generate", *SMALL, "--out", "d.h5").exit_code == 0
    assert_one_line_error(run("show", "d.h5", "-n", 0, "--out", "x.png"), "-n", "0")
    assert_one_line_error(run("show", "d.h5", "--out", "nowhere/x.png"), "nowhere")
    # a file with no samples yet
    empty = tmp_path / "empty.h5"
    DatasetWriter(empty, distribution("mixed", 12, 12), 0, 5)
    assert_one_line_error(run("show", "empty.h5", "--out", "x.png"), "no samples")
    result = run("info", "empty.h5")
    assert result.exit_code == 0 and "0 of 5 samples" in result.output, result.output
    assert not (tmp_path / "x.png").exists()


def test_generate_ctol_stops_earlier_and_the_file_keeps_the_rule(run, tmp_path):
    """The rule travels in the file's settings: info shows it, resuming without it is refused,
    and each label stopped where its compliance first settled."""
    import h5py

    from topovae.datasets import read_header
    from topovae.datasets._sampling import sample_problem
    from topovae.solvers import solve

    assert run("generate", "--size", "16x16", "-n", "3", "--ctol", "1e-3", "--out", "fast.h5",
               "-q").exit_code == 0  # fmt: skip
    assert run("generate", "--size", "16x16", "-n", "3", "--out", "full.h5", "-q").exit_code == 0
    header = read_header(tmp_path / "fast.h5")
    assert header["distribution"].settings.ctol == 1e-3
    assert "ctol 0.001" in run("info", "fast.h5").output
    with h5py.File(tmp_path / "fast.h5") as fast, h5py.File(tmp_path / "full.h5") as full:
        assert np.all(fast["result/iterations"][:] < full["result/iterations"][:])
        k = 0
        p = sample_problem(header["distribution"], 0, int(fast["index"][k]))
        assert fast["result/iterations"][k] == solve(p).iterations  # p carries the rule
    # a resume continues under the file's own settings, its ctol included
    r = run("generate", "--size", "16x16", "-n", "4", "--out", "fast.h5", "--resume", "-q")
    assert r.exit_code == 0, r.output
    assert read_header(tmp_path / "fast.h5")["distribution"].settings.ctol == 1e-3
    assert_one_line_error(
        run("generate", "--size", "16x16", "-n", "2", "--ctol", "2", "--out", "x.h5"), "ctol"
    )


def _damage(path, key):
    """Invert 4 bytes inside the first chunk of ``key``: its fletcher32 checksum fails on read."""
    import h5py

    with h5py.File(path, "r") as f:
        chunk = f[key].id.get_chunk_info(0)
    with open(path, "r+b") as fh:
        fh.seek(chunk.byte_offset + chunk.size // 2)
        raw = fh.read(4)
        fh.seek(chunk.byte_offset + chunk.size // 2)
        fh.write(bytes(b ^ 0xFF for b in raw))


@pytest.mark.parametrize("command, key", [("info", "problem/volfrac"), ("info", "problem/loads"),
                                          ("info", "density"), ("info", "result/compliance"),
                                          ("show", "density"), ("train", "result/compliance"),
                                          ("evaluate", "result/compliance")])  # fmt: skip
def test_info_and_show_name_a_corrupted_chunk_in_one_line(run, reference, tmp_path, command, key):
    """info reads every array back (its integrity line), so damage anywhere is found; show
    reads the designs; train and evaluate verify the whole file up front, so damage even in an
    array they never read (the SIMP compliances) is named before any work, leaving no run."""
    assert "every chunk's checksum verified" in run("info", str(reference)).output

    path = tmp_path / "bad.h5"
    shutil.copy(reference, path)
    _damage(path, key)
    (tmp_path / "model.pt").write_bytes(b"")  # evaluate verifies the data before the model
    args = {
        "info": ("info", "bad.h5"),
        "show": ("show", "bad.h5", "--out", "g.png"),
        "train": ("train", "bad.h5", "--out", "run", "--epochs", "1"),
        "evaluate": ("evaluate", "model.pt", "bad.h5", "--out", "report"),
    }[command]
    assert_one_line_error(run(*args), "is corrupted: checksum mismatch in " + key)
    assert not (tmp_path / "run").exists() and not (tmp_path / "report").exists()


def test_clean_refuses_a_corrupted_file_leaving_nothing(run, reference, tmp_path):
    """clean reads the whole source back before it takes the output's lock: a damaged chunk is
    refused in one line and no output, temporary or lock file appears."""
    path = tmp_path / "bad.h5"
    shutil.copy(reference, path)
    _damage(path, "density")
    before = sorted(p.name for p in tmp_path.iterdir())
    assert_one_line_error(run("clean", "bad.h5", "--out", "c.h5"), "checksum mismatch in density")
    assert sorted(p.name for p in tmp_path.iterdir()) == before
