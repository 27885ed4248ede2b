"""Shared fixtures: the CLI driven by click's CliRunner in a temporary folder; one tiny dataset
(12x12, 40 mixed problems), one of another size (8x8) and three tiny trained models (a cvae, a
vae and a ladder hvae, latent 4), each made once per session; torch on one thread."""

import pytest
import torch
from click.testing import CliRunner

from topovae.cli import main
from topovae.datasets import TopologyDataset, distribution, generate
from topovae.models import TrainConfig, Trainer, VAEConfig

TINY = 12  # grid of the session dataset and models
METRIC_KEYS = (  # what an evaluation report holds for every variant (issue: "every metric")
    "ce_mean", "ce_median", "ce_under_1pct", "ce_under_5pct", "ce_binary_mean",
    "ce_binary_median", "pass_rate", "vfe_mean", "floating_mean", "floating_rate",
    "load_disrespect_rate", "greyness_mean",
)  # fmt: skip


@pytest.fixture(scope="session", autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def data(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "tiny.h5"
    generate(path, distribution("mixed", TINY, TINY), n=40, seed=0, workers=1, progress=False)
    return path


@pytest.fixture(scope="session")
def data8(tmp_path_factory):
    """A dataset of another size (8x8) than the tiny models make."""
    path = tmp_path_factory.mktemp("data8") / "small.h5"
    generate(path, distribution("mixed", 8, 8), n=10, seed=0, workers=1, progress=False)
    return path


@pytest.fixture(scope="session")
def tiny_checkpoints(data, tmp_path_factory):
    """kind -> best.pt of a tiny model (latent 4, base width 4, depth 2) trained 2 epochs on
    ``data``. A high learning rate (3e-2: the U-Net starts with z barely felt, FiLM at the
    identity) and a KL weight kept near 0 make its encodings and decodings differ already."""
    train = TopologyDataset(data, "train", in_memory=True)
    val = TopologyDataset(data, "val", in_memory=True)
    paths = {}
    for kind in ("cvae", "vae", "hvae"):
        out = tmp_path_factory.mktemp(f"tiny-{kind}")
        cc = len(train.condition_channels) if kind in ("cvae", "hvae") else 0
        mcfg = VAEConfig(
            kind=kind, height=TINY, width=TINY, cond_channels=cc, latent_dim=4, base_width=4,
            depth=2, kl_warmup_steps=1000,
        )  # fmt: skip
        tcfg = TrainConfig(
            epochs=2, batch_size=16, lr=3e-2, warmup_steps=2, device="cpu", plots=False
        )
        Trainer(mcfg, tcfg, train, val, out).fit(progress=False)
        paths[kind] = out / "best.pt"
    return paths


@pytest.fixture(scope="session")
def cvae(tiny_checkpoints):
    """The tiny cvae, loaded (tests/test_workflows_cli.py overrides it with the path)."""
    from topovae.models import load

    return load(tiny_checkpoints["cvae"])


@pytest.fixture(scope="session")
def vae(tiny_checkpoints):
    from topovae.models import load

    return load(tiny_checkpoints["vae"])


@pytest.fixture
def run(tmp_path, monkeypatch):
    """run(*args) -> click Result of `topovae *args`, in tmp_path."""
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    def invoke(*args):
        return runner.invoke(main, [str(a) for a in args])

    return invoke


def assert_one_line_error(result, *fragments):
    """Bad input: exit code 2, one line ``Error: ...`` holding every fragment, no traceback."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = [ln for ln in result.output.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def run_every_workflow(run, ckpt, data, tmp_path, *, conditional=True, evaluate_args=()):
    """Every workflow command on the checkpoint ``ckpt`` (sample, interpolate, traverse, map,
    page, search with every method the model takes, alternatives, evaluate), each asserted to
    succeed and its picture written; returns (the search command's result, the evaluate
    report). ``evaluate_args``: more options for evaluate (e.g. --nll 4 --factors)."""
    import json

    import h5py

    def ok(*args):
        result = run(*args)
        assert result.exit_code == 0, result.output
        return result

    problem = ("--problem", "cantilever") if conditional else ()
    ok("explore", "sample", ckpt, *problem, "-n", 2, "--device", "cpu", "--out", "s.png")
    with h5py.File(data, "r") as f:
        first, second = (int(i) for i in f["index"][:2])
    ok("explore", "interpolate", ckpt, "--data", data, "--from", first, "--to", second,
       "--steps", 3, "--device", "cpu", "--out", "i.png")  # fmt: skip
    ok("explore", "traverse", ckpt, *problem, "--dim", 1, "--steps", 2, "--device", "cpu",
       "--out", "t.png")  # fmt: skip
    ok("explore", "map", ckpt, "--data", data, "--split", "all", "--grid", 2, "--device", "cpu",
       "--out", "m.png")  # fmt: skip
    ok("explore", "page", ckpt, "--problem", "mbb", "--grid", 2, "--device", "cpu",
       "--out", "p.html")  # fmt: skip
    searched = ok("search", ckpt, "--problem", "cantilever", "--method", "all", "--budget", 6,
                  "--polish", 1, "--device", "cpu", "--quiet", "--out", "s")  # fmt: skip
    ok("alternatives", ckpt, "--problem", "mbb", "-k", 2, "--samples", 8, "--polish", 1,
       "--device", "cpu", "--out", "a.png")  # fmt: skip
    ok("evaluate", ckpt, data, "-k", 2, "--polish", 1, "--limit", 3, *evaluate_args,
       "--device", "cpu", "--quiet", "--out", "e")  # fmt: skip
    for png in ("s.png", "i.png", "t.png", "m.png", "a.png"):
        assert (tmp_path / png).stat().st_size > 0
    assert (tmp_path / "p.html").stat().st_size > 0
    return searched, json.loads((tmp_path / "e" / "report.json").read_text())
