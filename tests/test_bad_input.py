"""Bad command lines, one table: every one ends in one line ``Error: ...`` naming the bad value,
exit code 2, before any work starts (nothing is written, no solve or training runs).

``{data}``, ``{cvae}`` and ``{vae}`` stand for the session's tiny dataset and models; ``{file}``
for an existing plain file. /proc takes no new files, even for root.
"""

import pytest
import torch
from conftest import assert_one_line_error

MODEL = "{cvae}"
PROBLEM = ("--data", "{data}", "--index", "0")
NO_GPU = not torch.cuda.is_available()

CASES = [
    # unwritable or wrong outputs, checked before the work
    (("solve", "--out", "/proc/x.png"), "cannot write in folder '/proc'"),
    (("solve", "--json", "/proc/x.json"), "cannot write in folder '/proc'"),
    (("solve", "--out", "design.txt"), "unknown image type '.txt'"),
    (("solve", "--out", "design"), "unknown image type '(none)'"),
    (("solve", "--out", "nofolder/x.png"), "folder 'nofolder' does not exist"),
    (("generate", "-n", "2", "--size", "8x8", "--out", "/proc/x.h5"), "cannot write in folder"),
    (("show", "{data}", "--out", "grid.bmp"), "unknown image type '.bmp'"),
    (("train", "{data}", "--out", "/proc/run"), "cannot write in folder '/proc'"),
    (("train", "{data}", "--out", "{file}"), "is a file; give a folder"),
    (("sample", MODEL, *PROBLEM, "--out", "/proc/s.png"), "cannot write in folder"),
    (("sample", MODEL, *PROBLEM, "--out", "s.txt"), "unknown image type '.txt'"),
    (("explore", "traverse", MODEL, *PROBLEM, "--out", "t.csv"), "unknown image type '.csv'"),
    (("search", MODEL, *PROBLEM, "--out", "/proc/s"), "cannot write in folder '/proc'"),
    (("search", MODEL, *PROBLEM, "--out", "{file}"), "is a file; give a folder"),
    (("evaluate", MODEL, "{data}", "--out", "/proc/e"), "cannot write in folder '/proc'"),
    (("evaluate", MODEL, "{data}", "--out", "{file}"), "is a file; give a folder"),
    (("demo", "--out", "/proc/a/b"), "cannot write in folder '/proc'"),
    (("demo", "--out", "{file}"), "is a file; give a folder"),
    # devices, resolved before the work
    (("sample", MODEL, *PROBLEM, "--device", "foo", "--out", "s.png"), "unknown device 'foo'"),
    (("explore", "traverse", MODEL, *PROBLEM, "--device", "tpu", "--out", "t.png"), "'tpu'"),
    (("search", MODEL, *PROBLEM, "--device", "foo", "--out", "s"), "unknown device 'foo'"),
    (("evaluate", MODEL, "{data}", "--device", "foo", "--out", "e"), "unknown device 'foo'"),
    (("demo", "--device", "foo"), "unknown device 'foo'"),
    (("solve", "--backend", "torch", "--device", "foo"), "unknown device 'foo'"),
    (("generate", "-n", "2", "--size", "8x8", "--device", "foo", "--out", "g.h5"), "'foo'"),
    (("train", "{data}", "--device", "foo", "--out", "r"), "unknown device 'foo'"),
    # sizes that would exhaust memory or disk
    (("solve", "--nelx", "100000", "--nely", "100000"), "100000x100000 grid"),
    (("generate", "-n", "10000000000", "--size", "32x32", "--out", "g.h5"), "GiB free"),
    (("generate", "-n", "2", "--size", "100000x100000", "--out", "g.h5"), "too large"),
    (("sample", MODEL, *PROBLEM, "-n", "100000000", "--out", "s.png"), "got 100000000"),
    (
        ("explore", "traverse", MODEL, *PROBLEM, "--steps", "100000000", "--out", "t.png"),
        "--steps must be an integer in 2..4096, got 100000000",
    ),
    (
        (
            "explore",
            "interpolate",
            MODEL,
            "--data",
            "{data}",
            "--from",
            "0",
            "--to",
            "1",
            "--steps",
            "1",
            "--out",
            "i.png",
        ),
        "--steps must be an integer in 2..4096, got 1",
    ),
    (("evaluate", MODEL, "{data}", "-k", "100000000", "--out", "e"), "-k must be an integer"),
    (("train", "{data}", "--latent-dim", "100000000", "--out", "r"), "parameters"),
    (("train", "{data}", "--depth", "10", "--out", "r"), "depth 10"),
    # NaN and out-of-range numbers
    (("train", "{data}", "--free-bits", "nan", "--out", "r"), "free_bits"),
    (("train", "{data}", "--beta", "nan", "--out", "r"), "beta"),
    (("train", "{data}", "--volume-weight", "inf", "--out", "r"), "volume_weight"),
    (("train", "{data}", "--lr", "inf", "--out", "r"), "lr"),
    (("train", "{data}", "--ema", "1", "--out", "r"), "ema must be a decay in [0, 1), got 1.0"),
    (("generate", "-n", "2", "--size", "8x8", "--seed", "-1", "--out", "g.h5"), "--seed"),
    (("search", MODEL, *PROBLEM, "--seed", "-1", "--out", "s"), "seed"),
    # numbers past any useful value (each trained or solved into nonsense, or failed mid-run)
    (
        ("train", "{data}", "--lr", "1e12", "--out", "r"),
        "lr must be a number in (0, 10], got 1000000000000.0",
    ),
    (("train", "{data}", "--beta", "1e12", "--out", "r"), "beta must be a number in [0, 10000]"),
    (
        ("train", "{data}", "--kl-warmup", "1" + "0" * 30, "--out", "r"),
        "kl_warmup_steps must be an integer in 0..1000000000",
    ),
    (
        ("train", "{data}", "--base-width", "100000000", "--out", "r"),
        "base_width 100000000 is above max_width 256",
    ),
    (("solve", "--nelx", "2000000", "--nely", "1"), "2,000,000 times longer than wide"),
    (("solve", "--penal", "1e12"), "penal must be in [1, 20], got 1000000000000.0"),
    (
        ("explore", "traverse", MODEL, *PROBLEM, "--range", "nan", "0", "--out", "t.png"),
        "--range nan 0.0: give two finite numbers",
    ),
    (
        ("explore", "sweep", MODEL, "-p", "mbb", "--angle", "nan", "--no-simp", "--out", "w.png"),
        "--angle 'nan': give START:STOP:N",
    ),
    (
        ("explore", "page", MODEL, "-p", "mbb", "--sweep", "2:3:2", "--out", "p.html"),
        "--sweep '2:3:2': values must lie in (0, 1)",
    ),
    (
        ("train", "{data}", "--compliance-decode", "foo", "--out", "r"),
        "unknown compliance_decode 'foo'; choose one of: auto, prior_mean, prior_sample, posterior",
    ),
    (
        ("train", "{data}", "--compliance-samples", "-1", "--out", "r"),
        "compliance_samples must be an integer in 0..1000000000, got -1",
    ),
    (
        ("train", "{data}", "--compliance-tolerance", "nan", "--out", "r"),
        "compliance_tolerance must be a number in [0, 10], got nan",
    ),
    (
        ("evaluate", MODEL, "{data}", "--temperature", "-1", "--out", "e"),
        "--temperature must be a number in (0, 10], got -1.0",
    ),
    (
        ("train", "{data}", "--model", "vae", "--compliance-decode", "prior_mean", "--out", "r"),
        "compliance_decode 'prior_mean' needs a cvae",
    ),
    (("train", "{data}", "--init", "{file}", "--out", "r"), "--init:"),
    # the search's own limits, checked before its output folder is made
    (
        ("search", MODEL, *PROBLEM, "--budget", "1000000000000", "--out", "s"),
        "--budget (FE evaluations) must be an integer in 1..1000000, got 1000000000000",
    ),
    (
        ("search", MODEL, *PROBLEM, "--polish", "1000000000000", "--out", "s"),
        "--polish (SIMP iterations) must be an integer in 0..1000000",
    ),
    (
        ("search", MODEL, *PROBLEM, "--starts", "100000000", "--out", "s"),
        "--starts must be an integer in 1..4096, got 100000000",
    ),
    # an empty value: Path("") is the current folder, and the errors used to name '.'
    (("info", ""), "PATH is empty ('')"),
    (("train", "", "--out", "r"), "DATA is empty ('')"),
    (("solve", "--problem-file", ""), "--problem-file is empty ('')"),
    (("evaluate", MODEL, "{data}", "--out", ""), "--out is empty ('')"),
]


@pytest.fixture
def fill(data, tiny_checkpoints, tmp_path):
    plain = tmp_path / "plain.txt"
    plain.write_text("not a folder")
    names = {"data": data, "cvae": tiny_checkpoints["cvae"], "vae": tiny_checkpoints["vae"],
             "file": plain}  # fmt: skip
    return lambda args: [a.format(**names) for a in args]


@pytest.mark.parametrize("args,fragment", CASES, ids=[" ".join(a) for a, _ in CASES])
def test_a_bad_command_line_gets_one_line_and_exit_code_2_before_any_work(
    run, fill, tmp_path, args, fragment
):
    before = set(tmp_path.iterdir())
    result = run(*fill(args))
    assert_one_line_error(result, fragment)
    assert set(tmp_path.iterdir()) == before, "a refused command wrote something"


@pytest.mark.skipif(not NO_GPU, reason="needs a machine without a CUDA GPU")
@pytest.mark.parametrize("command", ["sample", "evaluate", "demo"])
def test_cuda_without_a_gpu_is_refused_up_front(run, fill, command):
    args = {
        "sample": ("sample", MODEL, *PROBLEM, "--out", "s.png"),
        "evaluate": ("evaluate", MODEL, "{data}", "--out", "e"),
        "demo": ("demo",),
    }[command]
    assert_one_line_error(run(*fill(args), "--device", "cuda"), "no CUDA GPU")


def test_refused_generate_runs_leave_no_lock_file_behind(run, data, tmp_path):
    import shutil

    target = tmp_path / "d.h5"
    shutil.copy(data, target)
    before = sorted(p.name for p in tmp_path.iterdir())
    for args, fragment in [
        (("-n", "2", "--size", "8x8"), "exists; pass --resume"),
        (("-n", "2", "--size", "8x8", "--resume"), "was made with other settings (distribution"),
    ]:
        assert_one_line_error(run("generate", *args, "--out", str(target)), fragment)
        assert sorted(p.name for p in tmp_path.iterdir()) == before
