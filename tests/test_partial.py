"""Partial conditions: condition groups left out in training (condition dropout) and at use."""

import numpy as np
import pytest
import torch
from conftest import TINY, assert_one_line_error

from topovae.datasets import TopologyDataset
from topovae.models import (
    CONDITION_GROUPS,
    ConfigError,
    TrainConfig,
    Trainer,
    VAEConfig,
    drop_condition,
)
from topovae.models._train import random_drop
from topovae.models._vae import FIELD_START, given_groups
from topovae.solvers import preset
from topovae.workflows import LatentDecoder, WorkflowError


def test_drop_condition_zeroes_the_group_and_with_loads_or_supports_the_fields():
    c = torch.rand(2, 9, 5, 5) + 0.1
    assert given_groups(c).shape == (2, 3, 5, 5) and given_groups(c).min() == 1
    v = drop_condition(c, ["volfrac"])
    assert not v[:, 0].any() and torch.equal(v[:, 1:], c[:, 1:])
    loads = drop_condition(c, ["loads"])
    assert not loads[:, [1, 2]].any() and not loads[:, FIELD_START:].any()
    assert torch.equal(loads[:, [0, 3, 4, 5, 6]], c[:, [0, 3, 4, 5, 6]])
    g = given_groups(drop_condition(c, ["supports", "volfrac"]))
    assert g[:, :, 0, 0].tolist() == [[0.0, 1.0, 0.0]] * 2
    with pytest.raises(ConfigError, match="unknown condition group 'passive'"):
        drop_condition(c, ["passive"])


def test_random_drop_leaves_each_group_out_at_its_rate():
    c = torch.ones(4000, 9, 2, 2)
    out = random_drop(c, 0.25, torch.Generator().manual_seed(0))
    rates = [float((out[:, ch[0], 0, 0] == 0).float().mean()) for ch in CONDITION_GROUPS.values()]
    assert rates == pytest.approx([0.25] * 3, abs=0.03)
    fields_gone = (out[:, FIELD_START, 0, 0] == 0).float().mean()
    assert float(fields_gone) == pytest.approx(1 - 0.75**2, abs=0.03)  # loads or supports
    assert torch.equal(out[:, 5:7], c[:, 5:7])  # passive regions are always given


def test_condition_dropout_needs_a_unet_cvae():
    with pytest.raises(ConfigError, match="condition_dropout needs a cvae"):
        VAEConfig(kind="vae", height=8, width=8, condition_dropout=0.2)
    with pytest.raises(ConfigError, match="condition_dropout must be a probability"):
        VAEConfig(kind="cvae", height=8, width=8, cond_channels=7, condition_dropout=1.0)


@pytest.fixture(scope="module")
def partial_model(data, tmp_path_factory):
    train = TopologyDataset(data, "train", in_memory=True)
    val = TopologyDataset(data, "val", in_memory=True)
    mcfg = VAEConfig(kind="cvae", height=TINY, width=TINY, cond_channels=7, latent_dim=4,
                     base_width=4, depth=2, condition_dropout=0.3)  # fmt: skip
    out = tmp_path_factory.mktemp("partial")
    tcfg = TrainConfig(epochs=1, batch_size=16, device="cpu", plots=False)
    Trainer(mcfg, tcfg, train, val, out).fit(progress=False)
    from topovae.models import load

    return load(out / "best.pt"), out / "best.pt"


def test_a_partial_model_answers_full_and_partial_problems(partial_model, cvae):
    model, _ = partial_model
    problem = preset("cantilever", TINY, TINY, 0.4)
    u = np.zeros((1, 4), np.float32)
    full = LatentDecoder(model, problem).numpy(u, project=True)
    vf_only = LatentDecoder(model, problem, drop=("loads", "supports")).numpy(u, project=True)
    assert full.shape == vf_only.shape == (1, TINY, TINY)
    assert not np.allclose(full, vf_only)  # the indicators and zeros reach the decoder
    np.testing.assert_allclose(vf_only.mean(), 0.4, atol=1e-3)  # still projected on the problem
    with pytest.raises(WorkflowError, match="trained on full conditions only"):
        LatentDecoder(cvae, problem, drop=("loads",))


def test_alternatives_cli_drop(run, partial_model, tiny_checkpoints):
    _, path = partial_model
    ok = run("alternatives", path, "--problem", "cantilever", "-k", "2", "--samples", "4",
             "--polish", "0", "--drop", "loads", "--no-simp", "--out", "a.png")  # fmt: skip
    assert ok.exit_code == 0, ok.output
    assert_one_line_error(
        run("alternatives", tiny_checkpoints["cvae"], "--problem", "cantilever", "--drop",
            "loads", "--out", "b.png"), "--drop", "trained on full conditions only",
    )  # fmt: skip
    assert_one_line_error(
        run("alternatives", path, "--problem", "cantilever", "--drop", "wind", "--out", "c.png"),
        "unknown condition group 'wind'",
    )
