"""Training design VAEs: checkpoints, exact resume, logs and plots, the NaN stop, refusals, CLI.

Everything runs on CPU on a 40-sample 12x12 dataset generated once per session; the Trainer tests
use tiny models (latent 4, base width 4, depth 2), the CLI tests its default architecture.
"""

import csv
import json
import math
import shutil

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import TINY, assert_one_line_error

from topovae.cli import main
from topovae.datasets import TopologyDataset
from topovae.models import (
    ConfigError,
    DesignVAE,
    TrainConfig,
    Trainer,
    TrainingError,
    VAEConfig,
    _train,
    load,
    read_checkpoint,
)

CHECKPOINT_VERSION = _train.CHECKPOINT_VERSION
H, W, CC = 12, 12, 7  # grid and condition channels of the generated dataset
PNG = b"\x89PNG\r\n\x1a\n"
CHECKPOINT_KEYS = {
    "format", "version", "model_config", "train_config", "model", "optimizer", "scheduler",
    "step", "epoch", "best", "rng", "data", "metrics", "digest", "digests", "init",
}  # fmt: skip
COLUMNS = [
    "epoch", "step", "lr", "seconds",
    "train_reconstruction", "train_kl", "train_weighted_kl", "train_volume", "train_total",
    "val_reconstruction", "val_kl", "val_weighted_kl", "val_volume", "val_total",
    "val_elbo", "val_active_units", "val_iou",
]  # fmt: skip
FIGURES = ("loss.png", "reconstructions.png", "samples.png", "kl.png")


# -- fixtures and helpers ----------------------------------------------------------------------
@pytest.fixture(scope="session")
def splits(data):
    """(train, val): 32 and 4 samples, so 2 steps per epoch at batch size 16."""
    train = TopologyDataset(data, "train", in_memory=True)
    val = TopologyDataset(data, "val", in_memory=True)
    assert (len(train), len(val)) == (32, 4)
    return train, val


def model_config(kind="vae", **kw):
    cc = CC if kind == "cvae" else 0
    return VAEConfig(
        kind=kind, height=H, width=W, cond_channels=cc, latent_dim=4, base_width=4, depth=2, **kw
    )


def make_trainer(splits, out, kind="vae", fingerprint=None, model_kw=None, **kw):
    settings = dict(epochs=3, batch_size=16, warmup_steps=2, device="cpu", plots=False)
    tcfg = TrainConfig(**{**settings, **kw})
    mcfg = model_config(kind, **(model_kw or {}))
    return Trainer(mcfg, tcfg, *splits, out, data_fingerprint=fingerprint)


def jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def timeless(rows):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


def assert_same_weights(a: dict, b: dict):
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"tensors differ: {different}"


def all_finite(state: dict) -> bool:
    return all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())


def probe_inputs(splits, kind, n=3):
    g = torch.Generator().manual_seed(5)
    z = torch.randn(n, 4, generator=g)
    x = torch.stack([splits[0][k]["density"] for k in range(n)])
    c = torch.stack([splits[0][k]["condition"] for k in range(n)]) if kind == "cvae" else None
    return z, x, c


# -- 1. checkpoints ----------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["vae", "cvae"])
def test_checkpoints_are_plain_dicts_and_load_rebuilds_the_trained_model(splits, tmp_path, kind):
    t = make_trainer(splits, tmp_path, kind, epochs=2, fingerprint={"file": "tiny.h5"})
    history = t.fit(progress=False)
    assert [r["epoch"] for r in history] == [1, 2]
    for name in ("last.pt", "best.pt"):
        ckpt = torch.load(tmp_path / name, weights_only=True)
        assert type(ckpt) is dict and set(ckpt) == CHECKPOINT_KEYS, name
        assert (ckpt["format"], ckpt["version"]) == ("topovae-checkpoint", CHECKPOINT_VERSION)
        assert VAEConfig.from_dict(ckpt["model_config"]) == t.mcfg
        assert ckpt["train_config"] == t.tcfg.to_dict()
        assert ckpt["data"] == {"file": "tiny.h5"}
        assert not list(tmp_path.glob("*.tmp")), "a temporary checkpoint file was left behind"
    last = torch.load(tmp_path / "last.pt", weights_only=True)
    assert (last["epoch"], last["step"]) == (2, 4)
    assert last["metrics"] == history
    assert_same_weights(last["model"], t.model.state_dict())

    model = load(tmp_path / "last.pt")
    assert isinstance(model, DesignVAE) and not model.training and model.config == t.mcfg
    trained = t.model.eval()
    z, x, c = probe_inputs(splits, kind)
    with torch.no_grad():
        assert torch.equal(model.decode(z, c), trained.decode(z, c))
        for got, expected in zip(model.encode(x, c), trained.encode(x, c), strict=True):
            assert torch.equal(got, expected)
        # the comparison means something: training moved the weights away from the init
        torch.manual_seed(0)
        fresh = DesignVAE(t.mcfg).eval()
        assert not torch.equal(fresh.decode(z, c), trained.decode(z, c))

    best = torch.load(tmp_path / "best.pt", weights_only=True)
    assert_same_weights(load(tmp_path / "best.pt").state_dict(), best["model"])


# -- 2. exact resume ---------------------------------------------------------------------------
@pytest.mark.parametrize("kind,ema", [("vae", 0.0), ("cvae", 0.0), ("cvae", 0.8)])
def test_an_interrupted_and_resumed_run_equals_an_uninterrupted_one(
    splits, tmp_path, monkeypatch, kind, ema
):
    full = make_trainer(splits, tmp_path / "full", kind, ema=ema)
    expected = full.fit(progress=False)
    assert len(expected) == 3

    real = Trainer._train_epoch
    calls = []

    def interrupted(self, bar):
        calls.append(self.epoch)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(self, bar)

    cut = tmp_path / "cut"
    monkeypatch.setattr(Trainer, "_train_epoch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        make_trainer(splits, cut, kind, ema=ema).fit(progress=False)
    monkeypatch.setattr(Trainer, "_train_epoch", real)
    after_one = read_checkpoint(cut / "last.pt")
    assert after_one["epoch"] == 1 and len(jsonl(cut / "metrics.jsonl")) == 1

    resumed = make_trainer(splits, cut, kind, ema=ema)  # a new process: same configs
    got = resumed.fit(resume=True, progress=False)

    assert_same_weights(resumed.model.state_dict(), full.model.state_dict())
    assert_same_weights(resumed.eval_model.state_dict(), full.eval_model.state_dict())
    assert not torch.equal(  # the resumed run did train on from epoch 1
        after_one["model"]["to_latent.weight"], resumed.model.state_dict()["to_latent.weight"]
    )
    assert (resumed.step, resumed.epoch, resumed.best) == (full.step, full.epoch, full.best)
    assert timeless(got) == timeless(expected)
    rows = jsonl(cut / "metrics.jsonl")
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert timeless(rows) == timeless(expected)
    with open(cut / "metrics.csv", newline="") as f:
        assert [int(r["epoch"]) for r in csv.DictReader(f)] == [1, 2, 3]
    a, b = read_checkpoint(cut / "last.pt"), read_checkpoint(tmp_path / "full" / "last.pt")
    assert_same_weights(a["model"], b["model"])
    assert torch.equal(a["rng"]["noise"], b["rng"]["noise"])
    assert a["scheduler"] == b["scheduler"]
    for k, state in b["optimizer"]["state"].items():
        for name, value in state.items():
            assert torch.equal(a["optimizer"]["state"][k][name], value), (k, name)


def test_ema_checkpoints_hold_the_running_average_of_the_weights(splits, tmp_path):
    """e_1 = w_1, e_k = d e_(k-1) + (1 - d) w_k over the weights after each step, computed here
    from the raw weights; the average (buffers too) is what `load` rebuilds, the raw weights
    travel beside it for resume."""
    d = 0.6
    t = make_trainer(splits, tmp_path, "cvae", ema=d, epochs=2)
    seen = []
    t.opt.register_step_post_hook(
        lambda *_: seen.append({k: v.detach().double() for k, v in t.model.state_dict().items()})
    )
    t.fit(progress=False)
    assert len(seen) == 4
    expected = dict(seen[0])
    for w in seen[1:]:
        expected = {k: d * expected[k] + (1 - d) * w[k] for k in w}
    ckpt = read_checkpoint(tmp_path / "last.pt")
    floats = [k for k, v in ckpt["model"].items() if v.is_floating_point()]
    assert "to_latent.weight" in floats and any("running_var" in k for k in floats)
    for k in floats:
        torch.testing.assert_close(ckpt["model"][k].double(), expected[k], rtol=1e-5, atol=1e-6)
    assert_same_weights(ckpt["train_model"], t.model.state_dict())
    assert ckpt["ema_averaged"] == 4
    name = "to_latent.weight"
    assert not torch.equal(ckpt["model"][name], ckpt["train_model"][name])
    assert_same_weights(load(tmp_path / "last.pt").state_dict(), ckpt["model"])


@pytest.mark.parametrize("bad", [1.0, -0.1, float("nan"), True, "0.9"])
def test_ema_outside_zero_one_is_refused(bad):
    with pytest.raises(ConfigError, match=r"ema must be a decay in \[0, 1\), got"):
        TrainConfig(ema=bad)


def test_resume_refuses_ema_weights_that_do_not_match_their_digest(splits, tmp_path):
    make_trainer(splits, tmp_path, "vae", ema=0.5, epochs=1).fit(progress=False)
    ckpt = torch.load(tmp_path / "last.pt", weights_only=True)
    ckpt["train_model"]["to_latent.weight"] += 1.0
    torch.save(ckpt, tmp_path / "last.pt")
    with pytest.raises(ConfigError, match="digest mismatch in the training weights"):
        make_trainer(splits, tmp_path, "vae", ema=0.5, epochs=2).fit(resume=True, progress=False)
    del ckpt["digests"]  # a file from before per-part digests: the training weights' own digest
    torch.save(ckpt, tmp_path / "last.pt")
    with pytest.raises(ConfigError, match="no intact training weights"):
        make_trainer(splits, tmp_path, "vae", ema=0.5, epochs=2).fit(resume=True, progress=False)


def test_an_epoch_logged_but_not_checkpointed_is_not_logged_twice(splits, tmp_path, monkeypatch):
    """A kill between the log line of epoch 2 and its last.pt: resume redoes epoch 2."""
    full = make_trainer(splits, tmp_path / "full")
    expected = full.fit(progress=False)

    real = _train._atomic_save

    def killed(obj, path):
        if path.name == "last.pt" and obj["epoch"] == 2:
            raise KeyboardInterrupt
        real(obj, path)

    cut = tmp_path / "cut"
    monkeypatch.setattr(_train, "_atomic_save", killed)
    with pytest.raises(KeyboardInterrupt):
        make_trainer(splits, cut).fit(progress=False)
    monkeypatch.setattr(_train, "_atomic_save", real)
    assert [r["epoch"] for r in jsonl(cut / "metrics.jsonl")] == [1, 2]
    assert read_checkpoint(cut / "last.pt")["epoch"] == 1

    resumed = make_trainer(splits, cut)
    resumed.fit(resume=True, progress=False)
    assert [r["epoch"] for r in jsonl(cut / "metrics.jsonl")] == [1, 2, 3]
    assert timeless(jsonl(cut / "metrics.jsonl")) == timeless(expected)
    with open(cut / "metrics.csv", newline="") as f:
        assert [int(r["epoch"]) for r in csv.DictReader(f)] == [1, 2, 3]
    assert_same_weights(resumed.model.state_dict(), full.model.state_dict())


def test_a_new_run_in_an_old_run_folder_does_not_append_to_its_logs(splits, tmp_path):
    """Training again into a run folder without resume: either refused, or logs start afresh."""
    make_trainer(splits, tmp_path, epochs=2).fit(progress=False)
    second = make_trainer(splits, tmp_path, epochs=2, seed=1)
    try:
        second.fit(progress=False)
    except ConfigError:
        assert [r["epoch"] for r in jsonl(tmp_path / "metrics.jsonl")] == [1, 2]
        return
    rows = jsonl(tmp_path / "metrics.jsonl")
    assert [r["epoch"] for r in rows] == [1, 2], "metrics.jsonl mixes two runs"
    assert timeless(rows) == timeless(second.history)
    with open(tmp_path / "metrics.csv", newline="") as f:
        assert [int(r["epoch"]) for r in csv.DictReader(f)] == [1, 2], "metrics.csv mixes runs"


# -- 3. best checkpoint, logs, figures ----------------------------------------------------------
def test_best_holds_the_epoch_with_the_lowest_validation_loss(splits, tmp_path, monkeypatch):
    """Validation totals forced to 5, 3, 4: best.pt is epoch 2, last.pt epoch 3."""
    real = Trainer.evaluate
    forced = [5.0, 3.0, 4.0]
    weights = {}  # epoch -> the weights it was evaluated with

    def evaluate(self, dataset=None):
        out = real(self, dataset)
        epoch = len(weights) + 1
        out["total"] = forced[epoch - 1]
        weights[epoch] = {k: v.clone() for k, v in self.model.state_dict().items()}
        return out

    monkeypatch.setattr(Trainer, "evaluate", evaluate)
    history = make_trainer(splits, tmp_path, plots=True).fit(progress=False)
    assert [r["val_total"] for r in history] == [5.0, 3.0, 4.0]
    best, last = read_checkpoint(tmp_path / "best.pt"), read_checkpoint(tmp_path / "last.pt")
    assert (best["epoch"], best["best"], len(best["metrics"])) == (2, 3.0, 2)
    assert (last["epoch"], last["best"]) == (3, 3.0)
    assert_same_weights(best["model"], weights[2])
    assert_same_weights(last["model"], weights[3])

    rows = jsonl(tmp_path / "metrics.jsonl")
    assert [list(r) for r in rows] == [COLUMNS] * 3
    assert rows == history
    with open(tmp_path / "metrics.csv", newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == COLUMNS
        table = list(reader)
    assert len(table) == 3
    for row, logged in zip(table, rows, strict=True):
        assert {k: float(v) for k, v in row.items()} == pytest.approx(logged, rel=1e-12)
    for r in rows:
        assert 0 <= r["val_iou"] <= 1 and 0 <= r["val_active_units"] <= 4
        assert r["val_elbo"] == pytest.approx(-(r["val_reconstruction"] + r["val_kl"]))
        assert all(math.isfinite(v) for v in r.values())
    assert [r["step"] for r in rows] == [2, 4, 6]
    for name in FIGURES:
        assert (tmp_path / name).read_bytes()[:8] == PNG, name


def test_best_is_the_argmin_of_a_real_run(splits, tmp_path):
    history = make_trainer(splits, tmp_path, epochs=4, lr=3e-3).fit(progress=False)
    best = read_checkpoint(tmp_path / "best.pt")
    k = min(range(len(history)), key=lambda i: history[i]["val_total"])
    assert best["epoch"] == history[k]["epoch"] and best["best"] == history[k]["val_total"]


def test_plots_false_writes_no_figures(splits, tmp_path):
    make_trainer(splits, tmp_path, epochs=1, plots=False).fit(progress=False)
    assert (tmp_path / "last.pt").exists()
    assert not list(tmp_path.glob("*.png"))


# -- 4. NaN --------------------------------------------------------------------------------------
def poison_loss(monkeypatch, from_step, how="loss"):
    """From the ``from_step``-th training step (1-based) on, make the loss (or only its
    gradient) non-finite; evaluation (no grad) is left alone."""
    real = _train.loss_terms
    calls = [0]

    def poisoned(cfg, logits, x, mu, logvar, *args, **kw):
        terms = real(cfg, logits, x, mu, logvar, *args, **kw)
        if torch.is_grad_enabled():
            calls[0] += 1
            if calls[0] >= from_step:
                if how == "loss":
                    terms["total"] = terms["total"] * float("nan")
                else:  # finite loss, NaN gradient: d sqrt(|0|) = inf * 0
                    terms["total"] = terms["total"] + (mu * 0).abs().sqrt().sum()
        return terms

    monkeypatch.setattr(_train, "loss_terms", poisoned)


def test_a_nan_loss_stops_training_and_keeps_the_last_good_epoch(splits, tmp_path, monkeypatch):
    poison_loss(monkeypatch, from_step=3)  # the first step of epoch 2
    t = make_trainer(splits, tmp_path)
    with pytest.raises(TrainingError) as e:
        t.fit(progress=False)
    msg = str(e.value)
    for fragment in ("nan", "step 2", "epoch 2", str(tmp_path / "last.pt")):
        assert fragment in msg, msg
    ckpt = read_checkpoint(tmp_path / "last.pt")
    assert (ckpt["epoch"], ckpt["step"], len(ckpt["metrics"])) == (1, 2, 1)
    assert all_finite(ckpt["model"])
    for name, p in t.model.named_parameters():  # no optimiser step was taken on the NaN loss
        assert torch.equal(ckpt["model"][name], p.detach()), name
    assert [r["epoch"] for r in jsonl(tmp_path / "metrics.jsonl")] == [1]
    model = load(tmp_path / "last.pt")
    assert torch.isfinite(model.sample(2, generator=torch.Generator().manual_seed(0))).all()


def test_a_nan_loss_in_the_first_epoch_claims_no_checkpoint(splits, tmp_path, monkeypatch):
    poison_loss(monkeypatch, from_step=1)
    with pytest.raises(TrainingError) as e:
        make_trainer(splits, tmp_path).fit(progress=False)
    assert not (tmp_path / "last.pt").exists()
    assert "kept" not in str(e.value), f"the message points at a checkpoint never written: {e}"


def test_nan_gradients_never_reach_a_checkpoint(splits, tmp_path, monkeypatch):
    """A finite loss with NaN gradients at the last step of epoch 1 must not be saved as the
    'last good' epoch (weights and optimizer state would be NaN)."""
    poison_loss(monkeypatch, from_step=2, how="grad")
    with pytest.raises(TrainingError) as e:
        make_trainer(splits, tmp_path).fit(progress=False)
    last = tmp_path / "last.pt"
    if last.exists():
        ckpt = read_checkpoint(last)
        assert all_finite(ckpt["model"]), f"last.pt holds NaN weights; the error says: {e.value}"
        assert all(math.isfinite(r["val_total"]) for r in ckpt["metrics"])


# -- 5. refusals ---------------------------------------------------------------------------------
@pytest.fixture
def one_epoch(splits, tmp_path):
    out = tmp_path / "run"
    make_trainer(splits, out, epochs=1, fingerprint={"file": "a.h5", "n": 40}).fit(progress=False)
    return out


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        (dict(model_kw={"beta": 2.0}), "another model configuration"),
        (dict(kind="cvae"), "another model configuration"),
        (dict(fingerprint={"file": "a.h5", "n": 41}), "other data"),
        (dict(lr=5e-4), r"keeps its optimisation settings; asked for lr 0.0005 \(the run has 0"),
        (dict(batch_size=8), "batch_size 8 .the run has 16."),
    ],
)
def test_resume_refuses_another_model_or_other_data(splits, one_epoch, change, fragment):
    before = (one_epoch / "last.pt").read_bytes()
    change = {"fingerprint": {"file": "a.h5", "n": 40}, **change}
    t = make_trainer(splits, one_epoch, epochs=2, **change)
    with pytest.raises(ConfigError, match=fragment):
        t.fit(resume=True, progress=False)
    assert (one_epoch / "last.pt").read_bytes() == before
    assert [r["epoch"] for r in jsonl(one_epoch / "metrics.jsonl")] == [1]


def test_resume_refuses_a_folder_without_last_checkpoint(splits, tmp_path):
    with pytest.raises(ConfigError, match="nothing to resume"):
        make_trainer(splits, tmp_path / "empty").fit(resume=True, progress=False)


def _foreign(tmp_path, what):
    path = tmp_path / f"{what}.pt"
    if what == "list":
        torch.save([1, 2, 3], path)
    elif what == "text":
        path.write_text("not a checkpoint\n")
    elif what == "plain-dict":
        torch.save({"model": {}}, path)
    elif what == "empty":
        path.write_bytes(b"")
    return path


@pytest.mark.parametrize("what", ["list", "text", "plain-dict", "empty"])
def test_read_checkpoint_refuses_foreign_files(tmp_path, what):
    path = _foreign(tmp_path, what)
    with pytest.raises(ConfigError, match="is not a topovae checkpoint"):
        read_checkpoint(path)
    with pytest.raises(ConfigError, match="is not a topovae checkpoint"):
        load(path)


def test_read_checkpoint_refuses_a_truncated_checkpoint(one_epoch, tmp_path):
    data = (one_epoch / "last.pt").read_bytes()
    cut = tmp_path / "cut.pt"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ConfigError, match="is not a topovae checkpoint"):
        read_checkpoint(cut)


def test_augmentation_is_on_by_default_and_seeded(splits, tmp_path):
    runs = {}
    for name, kw in (("a", {}), ("b", {}), ("off", {"augment": False}), ("seed", {"seed": 1})):
        t = make_trainer(splits, tmp_path / name, "cvae", epochs=1, **kw)
        t.fit(progress=False)
        runs[name] = t.model.state_dict()
    assert TrainConfig().augment is True
    assert_same_weights(runs["a"], runs["b"])  # same seed, same flips and turns
    for other in ("off", "seed"):
        assert not torch.equal(runs["a"]["head.weight"], runs[other]["head.weight"]), other


def test_the_compliance_term_trains_and_is_logged(splits, tmp_path):
    """Physics-aware training: the compliance term of augmented samples, through the batched
    FE; its column is logged and the first training step already pays it (start 0)."""
    trainer = make_trainer(splits, tmp_path, "cvae", epochs=1,
                           model_kw={"compliance_weight": 0.5, "compliance_ramp": 1})  # fmt: skip
    history = trainer.fit(progress=False)
    assert math.isfinite(history[0]["train_compliance"])
    assert history[0]["train_compliance"] != 0.0
    assert len(trainer._problem_cache) > 0
    # validation judges the term too, so val_total (which picks best.pt) is the objective
    row = history[0]
    assert math.isfinite(row["val_compliance"]) and row["val_compliance"] != 0.0
    base = row["val_reconstruction"] + row["val_weighted_kl"] + row["val_volume"]
    assert row["val_total"] == pytest.approx(base + 0.5 * row["val_compliance"], rel=1e-5)


def test_the_physics_term_judges_the_prior_mean_design_of_a_cvae(splits, tmp_path):
    """compliance_decode: a cvae's term judges its first designs (the prior-mean decodes), an
    unconditional model's its reconstructions; only the first compliance_samples of a batch are
    judged, and their SIMP compliance is solved once per sample, matching the CPU solver."""
    from topovae.solvers import compliance

    assert model_config("cvae", compliance_weight=1.0).compliance_decode == "prior_mean"
    assert model_config("vae", compliance_weight=1.0).compliance_decode == "posterior"
    with pytest.raises(ConfigError, match="'prior_mean' needs a cvae"):
        model_config("vae", compliance_decode="prior_mean")
    physics = {"compliance_weight": 0.5, "compliance_samples": 3}
    trainer = make_trainer(splits, tmp_path, "cvae", epochs=1, model_kw=physics)
    history = trainer.fit(progress=False)
    assert math.isfinite(history[0]["train_compliance"]) and history[0]["train_compliance"] > 0
    train, val = splits
    judged = {ds: [k for d, k in trainer._reference if d is ds] for ds in (train, val)}
    assert len(judged[train]) == 2 * 3  # 2 steps, 3 judged samples each
    assert len(judged[val]) == 3  # one validation batch, no flips
    for (ds, position), value in trainer._reference.items():
        density = ds[position]["density"][0].double().numpy()
        assert value == pytest.approx(compliance(density, ds.problem(position)), rel=1e-6)


def test_compliance_tolerance_leaves_good_enough_designs_alone():
    """The hinge: a design within the tolerance of its SIMP compliance counts zero; a worse one
    counts its log ratio less log(1 + tolerance); tolerance 0 is the plain term."""
    from topovae.models import physics_hinge

    terms = torch.log(torch.tensor([0.97, 1.0, 1.05, 1.1, 1.5]))  # C / C_SIMP
    hinged = physics_hinge(terms, 0.1)
    assert hinged[:4].tolist() == pytest.approx([0.0, 0.0, 0.0, 0.0], abs=1e-7)
    assert hinged[4].item() == pytest.approx(math.log(1.5 / 1.1))
    assert torch.equal(physics_hinge(terms, 0.0), terms)
    assert model_config("cvae", compliance_tolerance=0.1).compliance_tolerance == 0.1
    with pytest.raises(ConfigError, match=r"compliance_tolerance must be a number in \[0, 10\]"):
        model_config("cvae", compliance_tolerance=-0.1)


def test_best_checkpoint_compares_only_epochs_judged_with_the_same_physics_weight(splits, tmp_path):
    """A physics term that starts at step 3 (epoch 2 of 3) raises the validation total: the
    epoch before it, judged without the term, must not stay best.pt."""
    physics = {"compliance_weight": 1000.0, "compliance_samples": 2, "compliance_start": 3}
    trainer = make_trainer(splits, tmp_path, "cvae", epochs=3, model_kw=physics)
    history = trainer.fit(progress=False)
    assert history[0]["val_compliance"] == 0 and history[1]["val_compliance"] > 0
    assert history[0]["val_total"] < min(r["val_total"] for r in history[1:])  # the trap
    best = read_checkpoint(tmp_path / "best.pt")
    assert best["epoch"] in (2, 3)
    assert best["best"] == min(r["val_total"] for r in history[1:])


def test_epochs_before_a_late_physics_term_are_validated_only_for_the_curves(splits, tmp_path):
    """20 epochs of 2 steps, the physics term from step 34: the epochs judged with the final
    weight (the candidates for best.pt) are all validated; before them only the first, every
    2nd (epochs // 10) and none other; their logs leave the val_ values out (JSONL) or empty
    (CSV), the figures still draw, and best.pt is the best of the physics epochs."""
    physics = {"compliance_weight": 1000.0, "compliance_samples": 2, "compliance_start": 34}
    trainer = make_trainer(splits, tmp_path, "cvae", epochs=20, model_kw=physics, plots=True)
    history = trainer.fit(progress=False)
    final = [r["epoch"] for r in history if r["step"] >= 34]
    assert final == [17, 18, 19, 20]
    validated = [r["epoch"] for r in history if "val_total" in r]
    assert validated == [1, 2, 4, 6, 8, 10, 12, 14, 16, *final]
    assert all(r["val_compliance"] > 0 for r in history if r["epoch"] in final)
    best = read_checkpoint(tmp_path / "best.pt")
    assert best["epoch"] in final
    assert best["best"] == min(r["val_total"] for r in history if r["epoch"] in final)
    assert jsonl(tmp_path / "metrics.jsonl") == history
    with open(tmp_path / "metrics.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in table] == list(range(1, 21))
    for row, logged in zip(table, history, strict=True):
        assert {k for k, v in row.items() if v != ""} == set(logged)
    for name in FIGURES:
        assert (tmp_path / name).read_bytes()[:8] == PNG, name


def test_validating_leaves_training_alone(splits, tmp_path, monkeypatch):
    """Validation draws its noise from a generator of its own: a run that validates every
    epoch trains exactly the weights of one that validates a few (the late physics term's)."""
    physics = {"compliance_weight": 1000.0, "compliance_samples": 2, "compliance_start": 34}
    thinned = make_trainer(splits, tmp_path / "a", "cvae", epochs=20, model_kw=physics)
    thinned.fit(progress=False)
    monkeypatch.setattr(Trainer, "_validates", lambda self, epoch: True)
    every = make_trainer(splits, tmp_path / "b", "cvae", epochs=20, model_kw=physics)
    history = every.fit(progress=False)
    assert all("val_total" in r for r in history)
    assert_same_weights(thinned.model.state_dict(), every.model.state_dict())


def test_a_run_stopped_at_an_epoch_that_was_not_validated_resumes_as_if_never_stopped(
    splits, tmp_path, monkeypatch
):
    physics = {"compliance_weight": 1000.0, "compliance_samples": 2, "compliance_start": 34}
    full = make_trainer(splits, tmp_path / "full", "cvae", epochs=20, model_kw=physics)
    expected = full.fit(progress=False)
    assert "val_total" not in expected[4]  # epoch 5: not validated
    real = Trainer._train_epoch

    def interrupted(self, bar):
        if self.epoch == 5:
            raise KeyboardInterrupt
        return real(self, bar)

    cut = tmp_path / "cut"
    monkeypatch.setattr(Trainer, "_train_epoch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        make_trainer(splits, cut, "cvae", epochs=20, model_kw=physics).fit(progress=False)
    monkeypatch.setattr(Trainer, "_train_epoch", real)
    resumed = make_trainer(splits, cut, "cvae", epochs=20, model_kw=physics)
    got = resumed.fit(resume=True, progress=False)
    assert timeless(got) == timeless(expected) == timeless(jsonl(cut / "metrics.jsonl"))
    assert_same_weights(resumed.model.state_dict(), full.model.state_dict())
    with open(cut / "metrics.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in table] == list(range(1, 21))
    assert [r["val_total"] != "" for r in table] == ["val_total" in r for r in expected]


def test_without_a_late_physics_term_every_epoch_is_validated(splits, tmp_path):
    history = make_trainer(splits, tmp_path, epochs=20).fit(progress=False)
    assert all("val_total" in r for r in history) and len(history) == 20


def test_forward_decodes_the_prior_mean_of_the_first_samples(splits):
    train, _ = splits
    torch.manual_seed(0)
    model = DesignVAE(model_config("cvae")).eval()
    x = torch.stack([train[k]["density"] for k in range(4)])
    c = torch.stack([train[k]["condition"] for k in range(4)])
    out = model(x, c, prior_mean=2)
    assert out.prior_logits.shape == (2, 1, H, W)
    mu, _ = model.prior(c)
    torch.testing.assert_close(out.prior_logits, model.decode(mu[:2], c[:2]))
    torch.testing.assert_close(out.prior_logits, model.decode_whitened(torch.zeros(2, 4), c[:2]))
    assert model(x, c).prior_logits is None


def test_forward_decodes_prior_samples_of_the_first_samples(splits):
    """compliance_decode "prior_sample": the term judges decodes at z ~ p(z | c), u drawn from
    the training noise generator right after the reparameterisation noise."""
    train, _ = splits
    torch.manual_seed(0)
    model = DesignVAE(model_config("cvae")).eval()
    x = torch.stack([train[k]["density"] for k in range(4)])
    c = torch.stack([train[k]["condition"] for k in range(4)])
    out = model(x, c, torch.Generator().manual_seed(5), prior_mean=2, prior_noise=True)
    g = torch.Generator().manual_seed(5)
    torch.randn(4, 4, generator=g)  # the posterior's noise
    u = torch.randn(2, 4, generator=g)
    torch.testing.assert_close(out.prior_logits, model.decode_whitened(u, c[:2]))
    assert not torch.allclose(out.prior_logits, model.decode_whitened(torch.zeros(2, 4), c[:2]))
    cfg = model_config("cvae", compliance_weight=1.0, compliance_decode="prior_sample")
    assert cfg.compliance_decode == "prior_sample"
    with pytest.raises(ConfigError, match="'prior_sample' needs a cvae"):
        model_config("vae", compliance_decode="prior_sample")


def test_physics_terms_with_a_known_reference_equals_solving_it(splits):
    from topovae.models import physics_terms

    train, _ = splits
    x = torch.stack([train[k]["density"] for k in range(3)])
    problems = [train.problem(k) for k in range(3)]
    logits = torch.logit(x.double().clamp(0.05, 0.95)) + 0.3 * torch.randn(3, 1, H, W).double()
    solved = physics_terms(logits, x, problems)
    from topovae.solvers import compliance

    reference = torch.tensor([compliance(x[k, 0].double().numpy(), problems[k]) for k in range(3)])
    torch.testing.assert_close(physics_terms(logits, x, problems, reference), solved)
    with pytest.raises(ConfigError, match="one Problem per design"):
        physics_terms(logits, x, problems[:2])


def test_floating_terms_on_hand_made_designs():
    """A cantilever (clamped left edge, load at the right): a bar from the support to the load
    carries it all (term 0, no gradient on the empty elements); an island apart from it floats
    in the binarisation, and the term is its soft density over the solid's size, which raising
    the island's logits raises."""
    from topovae.models import floating_terms
    from topovae.solvers import preset

    nelx, nely = 12, 6
    p = preset("cantilever", nelx, nely)
    load_row = int(np.argmax(np.abs(p.loads[0, 1]).max(axis=1)))  # the loaded node's row
    row = min(load_row, nely - 1)
    bar = np.full((nely, nelx), 0.02)
    bar[row, :] = 0.98
    island = bar.copy()
    top = 0 if row > 2 else nely - 1
    island[top, 4:6] = 0.98
    for design, floating in ((bar, 0), (island, 2)):
        vf = (design > 0.5).mean()
        q = p.replace(volfrac=float(vf))
        logits = torch.logit(torch.as_tensor(design))[None, None].requires_grad_(True)
        term = floating_terms(logits, [q])
        value = float(term.detach()[0])
        rho = torch.sigmoid(logits.detach()[0, 0].double())
        if floating == 0:
            assert value == 0.0
        else:
            solid = int((design > 0.5).sum())
            # the projection shifts the logits slightly: the island's density ~0.98 each
            assert value == pytest.approx(float(rho[top, 4:6].sum()) / solid, rel=0.05)
            term.sum().backward()
            assert float(logits.grad[0, 0, top, 4:6].min()) > 0  # raising it raises the term
    with pytest.raises(ConfigError, match="floating_weight 1 is part of the physics term"):
        model_config("cvae", floating_weight=1.0)


def test_the_floating_term_is_part_of_the_physics_term(splits, tmp_path):
    """floating_weight: the judged designs' floating material is logged and weighs into the
    physics term (val_total = the rest + w_c (compliance term, floating included))."""
    physics = {"compliance_weight": 0.5, "compliance_samples": 3, "floating_weight": 2.0}
    trainer = make_trainer(splits, tmp_path, "cvae", epochs=1, model_kw=physics)
    row = trainer.fit(progress=False)[0]
    assert 0 <= row["train_floating"] <= 1 and 0 <= row["val_floating"] <= 1
    base = row["val_reconstruction"] + row["val_weighted_kl"] + row["val_volume"]
    assert row["val_total"] == pytest.approx(base + 0.5 * row["val_compliance"], rel=1e-5)
    off = make_trainer(splits, tmp_path / "off", "cvae", epochs=1,
                       model_kw={**physics, "floating_weight": 0.0})  # fmt: skip
    assert "train_floating" not in off.fit(progress=False)[0]


def test_a_run_can_start_from_a_checkpoints_weights(splits, tmp_path):
    """initialise_from (train --init): a fine-tune from another run's weights with other loss
    settings; another architecture is refused naming what differs; the checkpoints say where
    the weights came from."""
    base = make_trainer(splits, tmp_path / "base", "cvae", epochs=1)
    base.fit(progress=False)
    fine = make_trainer(splits, tmp_path / "fine", "cvae", epochs=1,
                        model_kw={"compliance_weight": 0.5, "compliance_samples": 2})  # fmt: skip
    fine.initialise_from(tmp_path / "base" / "last.pt")
    assert_same_weights(fine.model.state_dict(), base.model.state_dict())
    fine.fit(progress=False)
    ckpt = read_checkpoint(tmp_path / "fine" / "last.pt")
    assert ckpt["init"]["checkpoint"] == str(tmp_path / "base" / "last.pt")
    assert ckpt["init"]["digest"] == read_checkpoint(tmp_path / "base" / "last.pt")["digest"]
    assert ckpt["step"] == 2  # a fresh schedule
    tcfg = TrainConfig(epochs=1, batch_size=16, device="cpu", plots=False)
    wider = VAEConfig(kind="cvae", height=H, width=W, cond_channels=CC, latent_dim=3,
                      base_width=4, depth=2)  # fmt: skip
    other = Trainer(wider, tcfg, *splits, tmp_path / "other")
    with pytest.raises(
        ConfigError, match="another architecture: latent_dim 3 \\(the checkpoint has 4\\)"
    ):
        other.initialise_from(tmp_path / "base" / "last.pt")
    with pytest.raises(ConfigError, match="has already trained"):
        fine.initialise_from(tmp_path / "base" / "last.pt")


def test_train_init_on_the_command_line(data, tmp_path):
    args = ["train", str(data), "--model", "cvae", "--latent-dim", "4", "--base-width", "4",
            "--depth", "2", "--epochs", "1", "--batch-size", "16", "--device", "cpu",
            "-q"]  # fmt: skip
    runner = CliRunner()
    assert runner.invoke(main, [*args, "--out", str(tmp_path / "a")]).exit_code == 0
    first = str(tmp_path / "a" / "last.pt")
    r = runner.invoke(main, [*args, "--out", str(tmp_path / "b"), "--init", first,
                             "--compliance-weight", "1", "--compliance-samples", "2"])  # fmt: skip
    assert r.exit_code == 0, r.output
    ckpt = read_checkpoint(tmp_path / "b" / "last.pt")
    assert ckpt["init"]["checkpoint"] == first
    assert ckpt["model_config"]["compliance_decode"] == "prior_mean"
    assert ckpt["metrics"][0]["train_compliance"] > 0
    r = runner.invoke(main, [*args, "--out", str(tmp_path / "a"), "--init", first, "--resume"])
    assert_one_line_error(r, "--init starts a run")
    r = runner.invoke(main, [*args, "--out", str(tmp_path / "c"), "--init", str(tmp_path / "x.pt")])
    assert_one_line_error(r, "x.pt")
    assert not (tmp_path / "c").exists()


def test_a_format_2_checkpoint_judged_the_posterior(tmp_path):
    """Before compliance_decode (format 2) the physics term judged the reconstruction."""
    cfg = model_config("cvae")
    config_v2 = {k: v for k, v in cfg.to_dict().items()
                 if k not in ("compliance_decode", "compliance_samples")}  # fmt: skip
    path = tmp_path / "v2.pt"
    torch.save({"format": "topovae-checkpoint", "version": 2, "model_config": config_v2,
                "model": DesignVAE(cfg).state_dict()}, path)  # fmt: skip
    assert load(path).config.compliance_decode == "posterior"


def test_a_format_1_checkpoint_loads_as_the_conv_backbone(tmp_path):
    """Checkpoints written before the U-Net (format 1) have no arch or prior in their config:
    every model then was the conv backbone with the N(0, I) prior."""
    cfg = model_config("cvae", arch="conv")
    torch.manual_seed(3)
    old = DesignVAE(cfg).eval()
    config_v1 = {k: v for k, v in cfg.to_dict().items() if k not in ("arch", "prior")}
    path = tmp_path / "v1.pt"
    torch.save({"format": "topovae-checkpoint", "version": 1, "model_config": config_v1,
                "model": old.state_dict()}, path)  # fmt: skip
    model = load(path)
    assert (model.config.arch, model.config.prior) == ("conv", "independent")
    z = torch.randn(2, 4)
    c = torch.rand(2, CC, H, W)
    assert torch.equal(model.decode(z, c), old.decode(z, c))
    for version in (0, "2", None):
        torch.save({"format": "topovae-checkpoint", "version": version}, path)
        with pytest.raises(ConfigError, match="no valid checkpoint version"):
            read_checkpoint(path)


def test_a_checkpoint_with_flipped_bytes_in_its_weights_is_refused(one_epoch, tmp_path):
    ckpt = read_checkpoint(one_epoch / "last.pt")
    raw = bytearray((one_epoch / "last.pt").read_bytes())
    weight = ckpt["model"]["to_latent.weight"].numpy().tobytes()
    at = raw.find(weight)  # the tensor's bytes lie uncompressed in the zip archive
    assert at > 0
    n = min(4096, len(weight))
    raw[at : at + n] = bytes(b ^ 0xFF for b in raw[at : at + n])
    bad = tmp_path / "bad.pt"
    bad.write_bytes(bytes(raw))
    with pytest.raises(ConfigError, match="is corrupted: digest mismatch"):
        read_checkpoint(bad)
    with pytest.raises(ConfigError, match="digest mismatch"):
        load(bad)


def flip_bytes(path, tensor, out):
    """Write ``path`` to ``out`` with up to 4 KiB of ``tensor``'s bytes inverted in place (the
    tensor's bytes lie uncompressed in the zip archive)."""
    raw = bytearray(path.read_bytes())
    data = tensor.numpy().tobytes()
    at = raw.find(data)
    assert at > 0
    n = min(4096, len(data))
    raw[at : at + n] = bytes(b ^ 0xFF for b in raw[at : at + n])
    out.write_bytes(bytes(raw))
    return out


def largest_moment(ckpt):
    moments = [  # contiguous ones: a channels-last tensor's bytes lie in another order
        t for s in ckpt["optimizer"]["state"].values() for t in s.values()
        if t.numel() > 1 and t.is_contiguous()
    ]  # fmt: skip
    return max(moments, key=torch.Tensor.numel)


def test_damage_outside_the_weights_is_refused_and_named(one_epoch, tmp_path):
    """4 KiB flipped inside the optimizer state once resumed without a word (and ended in
    nan): every part of the file now has its digest."""
    path = one_epoch / "last.pt"
    ckpt = read_checkpoint(path)
    assert set(ckpt["digests"]) == set(ckpt) - {"digest", "digests"}
    bad = flip_bytes(path, largest_moment(ckpt), tmp_path / "bad.pt")
    with pytest.raises(ConfigError, match="digest mismatch in the optimizer state"):
        read_checkpoint(bad)
    # a part changed by hand (the file re-saved, so the archive itself is sound)
    for key, name in [("rng", "random-number states"), ("metrics", "metrics")]:
        damaged = torch.load(path, weights_only=True)
        if key == "rng":
            damaged["rng"]["noise"][0] ^= 1
        else:
            damaged["metrics"][0]["train_total"] += 1.0
        torch.save(damaged, tmp_path / "edited.pt")
        with pytest.raises(ConfigError, match=f"digest mismatch in the {name}"):
            read_checkpoint(tmp_path / "edited.pt")
    # a file written before per-part digests still reads (only its weights are checked)
    old = torch.load(path, weights_only=True)
    del old["digests"]
    torch.save(old, tmp_path / "old.pt")
    assert read_checkpoint(tmp_path / "old.pt")["step"] == ckpt["step"]


def test_cli_resume_and_init_refuse_a_damaged_optimizer_state(cli_runs, data, run, tmp_path):
    _, original = cli_runs["cvae"]
    shutil.copytree(original, tmp_path / "runA")
    last = tmp_path / "runA" / "last.pt"
    flip_bytes(last, largest_moment(torch.load(last, weights_only=True)), last)
    before = last.read_bytes()
    args = ["train", data, "--model", "cvae", "--latent-dim", 4, "--epochs", 3, "--batch-size",
            16, "-q"]  # fmt: skip
    result = run(*args, "--out", "runA", "--resume")
    assert_one_line_error(result, "last.pt", "digest mismatch in the optimizer state")
    assert last.read_bytes() == before  # refused before any work: nothing rewritten
    result = run(*args, "--out", "runB", "--init", last)
    assert_one_line_error(result, "last.pt", "digest mismatch in the optimizer state")
    assert not (tmp_path / "runB" / "last.pt").exists()


def test_read_checkpoint_refuses_a_newer_version_and_a_missing_file(tmp_path):
    path = tmp_path / "new.pt"
    torch.save({"format": "topovae-checkpoint", "version": 99}, path)
    with pytest.raises(ConfigError) as e:
        read_checkpoint(path)
    assert "version 99" in str(e.value) and "upgrade topovae" in str(e.value)
    with pytest.raises(ConfigError, match="does not exist"):
        read_checkpoint(tmp_path / "missing.pt")


# -- 6. the command line -------------------------------------------------------------------------
@pytest.fixture(scope="session")
def cli_runs(data, tmp_path_factory):
    """Two-epoch runs of `topovae train` (vae and cvae), done once: kind -> (result, folder)."""
    root = tmp_path_factory.mktemp("cli")
    runs = {}
    for kind in ("vae", "cvae"):
        out = root / f"run-{kind}"
        result = CliRunner().invoke(main, [
            "train", str(data), "--model", kind, "--latent-dim", "4", "--epochs", "2",
            "--batch-size", "16", "--out", str(out), "-q",
        ])  # fmt: skip
        runs[kind] = (result, out)
    return runs


@pytest.mark.parametrize("kind", ["vae", "cvae"])
def test_cli_train(cli_runs, kind):
    result, out = cli_runs[kind]
    assert result.exit_code == 0, result.output
    assert "IoU" in result.output and "epoch 2" in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    ckpt = read_checkpoint(out / "last.pt")
    cfg = ckpt["model_config"]
    assert (cfg["kind"], cfg["latent_dim"], cfg["height"], cfg["width"]) == (kind, 4, H, W)
    # a cvae conditions on the full-material fields by default (two more channels)
    assert cfg["cond_channels"] == (CC + 2 if kind == "cvae" else 0)
    assert (cfg["arch"], cfg["prior"]) == ("unet", "dependent" if kind == "cvae" else "independent")
    assert ckpt["train_config"]["augment"] is True
    assert ckpt["epoch"] == 2 and ckpt["data"]["n"] == 40
    assert [r["epoch"] for r in jsonl(out / "metrics.jsonl")] == [1, 2]
    for name in FIGURES:
        assert (out / name).read_bytes()[:8] == PNG


def test_cli_resume_continues(cli_runs, data, run, tmp_path):
    _, original = cli_runs["vae"]
    out = tmp_path / "runA"
    shutil.copytree(original, out)
    before = jsonl(out / "metrics.jsonl")
    result = run(
        "train", data, "--model", "vae", "--latent-dim", 4, "--epochs", 3, "--batch-size", 16,
        "--out", "runA", "--resume", "-q",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "epoch 3" in result.output and "IoU" in result.output
    rows = jsonl(out / "metrics.jsonl")
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert rows[:2] == before
    assert read_checkpoint(out / "last.pt")["epoch"] == 3


@pytest.mark.parametrize("kind", ["vae", "cvae"])
def test_cli_sample(cli_runs, run, tmp_path, kind):
    _, out = cli_runs[kind]
    extra = ["--problem", "cantilever"] if kind == "cvae" else []
    result = run("sample", out / "best.pt", "-n", 4, "--out", "s.png", *extra)
    assert result.exit_code == 0, result.output
    assert "wrote s.png" in result.output
    assert (tmp_path / "s.png").read_bytes()[:8] == PNG


def test_cli_train_bad_input(data, run, tmp_path):
    def train(path, *extra):
        return run("train", path, "--latent-dim", 4, "--epochs", 1, "--out", "r", "-q", *extra)

    assert_one_line_error(train("missing.h5"), "missing.h5", "does not exist")
    (tmp_path / "foreign.h5").write_text("hello\n")
    assert_one_line_error(train("foreign.h5"), "foreign.h5", "not an HDF5 file")
    torch.save({"a": 1}, tmp_path / "model.pt")
    assert_one_line_error(train("model.pt"), "model.pt")
    assert_one_line_error(run("train", data, "--latent-dim", 0, "--out", "r", "-q"), "latent_dim")
    assert_one_line_error(train(data, "--model", "gan"), "gan", "vae, beta-vae, cvae")
    assert_one_line_error(train(data, "--epochs", 0), "epochs")
    # numbers are checked finite and in range, the bad value named (NaN passed "< 0" checks)
    assert_one_line_error(train(data, "--free-bits", "nan"), "free_bits", "got nan")
    assert_one_line_error(train(data, "--beta", "nan"), "beta", "got nan")
    assert_one_line_error(train(data, "--volume-weight", "inf"), "volume_weight", "got inf")
    assert_one_line_error(train(data, "--lr", "inf"), "lr", "got inf")
    assert_one_line_error(train(data, "--seed", -1), "seed", "got -1")
    assert_one_line_error(train(data, "--depth", 10), "depth 10", "use depth <= 4")
    assert_one_line_error(train(data, "--latent-dim", 100_000_000), "parameters", "limit")
    assert_one_line_error(train(data, "--arch", "mlp"), "arch 'mlp'", "unet, conv")
    assert_one_line_error(train(data, "--seed", 2**70), "seed", "2^32")
    # an empty --out is the current folder: refused, not filled with the run's files
    r = run("train", data, "--latent-dim", 4, "--epochs", 1, "--out", "", "-q")
    assert_one_line_error(r, "--out is empty")
    assert not (tmp_path / "last.pt").exists()
    assert not (tmp_path / "r" / "last.pt").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cli_train_refuses_cuda_without_a_gpu(data, run):
    result = run("train", data, "--latent-dim", 4, "--out", "r", "-q", "--device", "cuda")
    assert_one_line_error(result, "cuda", "no CUDA GPU")


def test_cli_resume_refuses_another_model(cli_runs, data, run, tmp_path):
    _, original = cli_runs["vae"]
    shutil.copytree(original, tmp_path / "runA")
    before = (tmp_path / "runA" / "last.pt").read_bytes()
    result = run(
        "train", data, "--model", "cvae", "--latent-dim", 4, "--epochs", 3, "--batch-size", 16,
        "--out", "runA", "--resume", "-q",
    )  # fmt: skip
    assert_one_line_error(result, "another model configuration")
    assert (tmp_path / "runA" / "last.pt").read_bytes() == before
    result = run("train", data, "--latent-dim", 4, "--out", "nothing", "--resume", "-q")
    assert_one_line_error(result, "nothing to resume")


def test_cli_sample_bad_input(cli_runs, data, run, tmp_path):
    vae, cvae = cli_runs["vae"][1] / "best.pt", cli_runs["cvae"][1] / "best.pt"
    assert_one_line_error(run("sample", data, "--out", "s.png"), "not a topovae checkpoint")
    assert_one_line_error(run("sample", "missing.pt", "--out", "s.png"), "does not exist")
    assert_one_line_error(run("sample", cvae, "--out", "s.png"), "cvae", "--problem")
    result = run("sample", cvae, "--problem", "no-such-preset", "--out", "s.png")
    assert_one_line_error(result, "no-such-preset")
    assert_one_line_error(run("sample", vae, "-n", 0, "--out", "s.png"), "-n")
    assert not (tmp_path / "s.png").exists()
    # an unconditional model takes a problem too: its designs are then scored on it
    result = run("sample", vae, "--problem", "cantilever", "--out", "s.png")
    assert result.exit_code == 0 and (tmp_path / "s.png").exists(), result.output


def test_torchrun_with_two_processes_exits_cleanly(data, tmp_path):
    """`torchrun --nproc_per_node 2 -m topovae train ...` (gloo on the CPU): every rank exits 0,
    rank 0 alone reports and writes one set of files."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    torchrun = Path(sys.executable).with_name("torchrun")
    if not torchrun.exists():
        pytest.skip("torchrun is not installed beside this Python")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [str(torchrun), "--nproc_per_node", "2", "-m", "topovae", "train", str(data),
           "--model", "cvae", "--latent-dim", "4", "--base-width", "4", "--depth", "2",
           "--epochs", "2", "--batch-size", "16", "--device", "cpu", "--out",
           str(tmp_path / "run"), "-q"]  # fmt: skip
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.count("epoch 2, val loss") == 1, p.stdout
    assert read_checkpoint(tmp_path / "run" / "last.pt")["epoch"] == 2
    assert len(jsonl(tmp_path / "run" / "metrics.jsonl")) == 2


def test_torchrun_replicas_end_identical_and_rank_0_saves_them(data, tmp_path):
    """Two gloo ranks under the real torchrun, each a Trainer through the API: gradients are
    averaged, so both ranks end with the same parameters and rank 0's last.pt holds them. The
    documented difference from one process: BatchNorm's running statistics are each rank's own
    (DDP broadcasts rank 0's at every forward, so they differ only by the last step), and the run
    is not the one-process run with the same global batch."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    torchrun = Path(sys.executable).with_name("torchrun")
    if not torchrun.exists():
        pytest.skip("torchrun is not installed beside this Python")
    worker = Path(__file__).with_name("ddp_worker.py")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [str(torchrun), "--nproc_per_node", "2", str(worker), str(data), str(tmp_path / "run"),
           str(tmp_path)]  # fmt: skip
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    params = {name for name, _ in _tiny_cvae(data).named_parameters()}
    assert params and params <= set(r0)
    for name in params:
        torch.testing.assert_close(r0[name], r1[name], rtol=0, atol=0, msg=name)
    saved = read_checkpoint(tmp_path / "run" / "last.pt")["model"]
    for name, value in r0.items():
        torch.testing.assert_close(saved[name], value, rtol=0, atol=0, msg=name)
    stats = [n for n in r0 if n.endswith("running_mean")]
    assert stats and any(not torch.equal(r0[n], r1[n]) for n in stats)  # each rank's own


def _tiny_cvae(data):
    train = TopologyDataset(data, "train", in_memory=True)
    return DesignVAE(
        VAEConfig(kind="cvae", height=TINY, width=TINY, cond_channels=len(train.condition_channels),
                  latent_dim=4, base_width=4, depth=2)
    )  # fmt: skip


def test_a_second_trainer_in_a_run_folder_being_trained_is_refused(splits, tmp_path):
    from topovae._lock import WriterLock

    held = WriterLock(tmp_path / "run" / ".lock", "x", ConfigError)
    (tmp_path / "run").mkdir()
    held.acquire()  # another process training there (the lock file is the OS lock)
    held.owner.write_text("process 4711 on somehost\n")
    try:
        with pytest.raises(ConfigError, match="is being written by process 4711 on somehost"):
            make_trainer(splits, tmp_path / "run").fit(progress=False)
        assert not (tmp_path / "run" / "last.pt").exists()
    finally:
        held.release()
    make_trainer(splits, tmp_path / "run", epochs=1).fit(progress=False)  # released: trains
    assert (tmp_path / "run" / "last.pt").exists()


def test_resume_into_a_missing_folder_leaves_nothing_behind(splits, tmp_path):
    with pytest.raises(ConfigError, match="nothing to resume"):
        make_trainer(splits, tmp_path / "new").fit(resume=True, progress=False)
    assert not (tmp_path / "new").exists()


def test_cli_resume_on_another_dataset_names_the_data(cli_runs, data8, run, tmp_path):
    """Another file (here another grid, so another model size too) is named as other data."""
    _, original = cli_runs["vae"]
    shutil.copytree(original, tmp_path / "runB")
    result = run("train", data8, "--latent-dim", 4, "--epochs", 3, "--batch-size", 16,
                 "--out", "runB", "--resume", "-q")  # fmt: skip
    assert_one_line_error(result, "trained on other data")


def test_cli_train_ema_saves_the_average(data, run, tmp_path):
    r = run("train", data, "--latent-dim", 4, "--base-width", 4, "--depth", 2, "--epochs", 2,
            "--batch-size", 16, "--ema", 0.5, "--out", "e", "-q")  # fmt: skip
    assert r.exit_code == 0, r.output
    ckpt = read_checkpoint(tmp_path / "e" / "last.pt")
    assert ckpt["train_config"]["ema"] == 0.5 and ckpt["ema_averaged"] == 4
    weight = "to_latent.weight"
    assert not torch.equal(ckpt["model"][weight], ckpt["train_model"][weight])


# -- the library call behind `topovae train` ----------------------------------------------------
def test_workflows_train_is_what_the_train_command_does(data, tmp_path):
    from topovae.workflows import train

    options = dict(latent_dim=4, base_width=4, depth=2, beta=0.5)
    tcfg = TrainConfig(epochs=2, batch_size=16, seed=3, device="cpu", plots=False)
    trainer = train(data, tmp_path / "lib", "cvae", train_config=tcfg, progress=False, **options)
    cfg = trainer.mcfg
    assert (cfg.kind, cfg.height, cfg.width, cfg.beta) == ("cvae", TINY, TINY, 0.5)
    assert cfg.cond_channels == 9  # the 7 problem images and the two full-material fields
    assert len(trainer.history) == 2
    args = ["train", str(data), "--model", "cvae", "--latent-dim", "4", "--base-width", "4",
            "--depth", "2", "--beta", "0.5", "--epochs", "2", "--batch-size", "16", "--seed",
            "3", "--device", "cpu", "--quiet", "--out", str(tmp_path / "cli")]  # fmt: skip
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    a, b = (
        read_checkpoint(tmp_path / "lib" / "last.pt"),
        read_checkpoint(tmp_path / "cli" / "last.pt"),
    )
    assert a["model_config"] == b["model_config"] and a["data"] == b["data"]
    assert_same_weights(a["model"], b["model"])
    with pytest.raises(ConfigError, match="height comes from the dataset"):
        train(data, tmp_path / "bad", "vae", height=8)
    assert not (tmp_path / "bad").exists()
