"""The VQ-VAE (kind "vqvae"): straight-through gradients, the EMA codebook against the notes'
formula, dead-code restarts, its autoregressive prior's whitened coordinates, and a trained
checkpoint through `load` and every workflow command."""

import numpy as np
import pytest
import torch
from conftest import TINY, assert_one_line_error, run_every_workflow

from topovae.datasets import TopologyDataset
from topovae.models import (
    FAMILIES,
    VQVAE,
    CodePrior,
    ConfigError,
    TrainConfig,
    Trainer,
    VAEConfig,
    VectorQuantiser,
    build_model,
    load,
    read_checkpoint,
)

CC = 9


def _config(**kw):
    return VAEConfig(**{"kind": "vqvae", "height": TINY, "width": TINY, "cond_channels": CC,
                        "latent_dim": 3, "base_width": 4, "depth": 2, "codebook_size": 5,
                        "code_dim": 2, **kw})  # fmt: skip


def _batch(b=6, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(b, 1, TINY, TINY, generator=g) > 0.5).float()
    return x, torch.rand(b, CC, TINY, TINY, generator=g)


def test_the_registry_builds_a_vqvae_and_refuses_bad_settings():
    assert FAMILIES["vqvae"] is VQVAE
    cfg = _config()
    assert cfg.prior == "autoregressive" and cfg.compliance_decode == "posterior"
    assert cfg.codebook == (5, 2) and VAEConfig(kind="vqvae", cond_channels=1).codebook == (64, 8)
    assert isinstance(build_model(cfg), VQVAE)
    bad = (
        ({"codebook_size": 1}, "at least 2"), ({"codebook_size": -3}, "codebook_size"),
        ({"code_dim": 2.5}, "code_dim"), ({"codebook_decay": 1.0}, "codebook_decay"),
        ({"commitment": -1}, "commitment"), ({"arch": "conv"}, "unet"),
        ({"prior": "dependent"}, "autoregressive"), ({"cond_channels": 0}, "cond_channels"),
        ({"compliance_decode": "prior_sample"}, "fitted after"),
    )  # fmt: skip
    for kw, fragment in bad:
        with pytest.raises(ConfigError, match=fragment):
            _config(**kw)
    with pytest.raises(ConfigError, match="codebook_size is for kind 'vqvae'"):
        VAEConfig(kind="cvae", cond_channels=1, codebook_size=8)
    with pytest.raises(ConfigError, match="autoregressive"):
        VAEConfig(kind="cvae", cond_channels=1, prior="autoregressive")


def test_straight_through_gradients_reach_the_encoder():
    torch.manual_seed(0)
    model = build_model(_config(commitment=0.0)).train()
    x, c = _batch()
    out = model(x, c, generator=torch.Generator().manual_seed(0))
    assert out.terms["commitment"] == 0 and out.mu.shape == (6, 3)
    out.logits.sum().backward()  # the reconstruction alone: no commitment gradient
    for name in ("to_latent.weight", "encoder.0.0.0.weight"):
        grad = dict(model.named_parameters())[name].grad
        assert grad is not None and float(grad.abs().sum()) > 0, name
    # the gradient the encoder output receives is the decoder input's (the identity through
    # the quantisation): with a frozen codebook, perturbing z_e by a step that keeps every
    # nearest code moves the decoder input by that step
    assert model.quantiser.embedding.grad is None  # EMA codebook: a buffer, no gradient


def test_the_codebook_loss_variant_trains_the_codebook_by_gradient():
    torch.manual_seed(0)
    model = build_model(_config(codebook_decay=0.0)).train()
    x, c = _batch()
    out = model(x, c, generator=torch.Generator().manual_seed(0))
    assert set(out.terms) == {"commitment", "codebook"} and "codebook" in model.extra_terms
    (out.terms["codebook"] + out.terms["commitment"]).backward()
    assert float(model.quantiser.embedding.grad.abs().sum()) > 0


def test_the_ema_update_is_the_notes_formula_on_a_hand_example():
    vq = VectorQuantiser(codes=2, dim=2, decay=0.5)
    e0 = torch.tensor([[0.0, 0.0], [1.0, 1.0]])
    vq.embedding.copy_(e0)
    vq.embed_sum.copy_(e0)
    vq.cluster_size.fill_(1.0)
    z = torch.tensor([[1.0, 0.0], [3.0, 0.0], [0.0, 2.0]])
    idx = vq.nearest(z)
    assert idx.tolist() == [0, 1, 1]  # (1, 0) is nearer (0, 0); (3, 0) and (0, 2) nearer (1, 1)
    vq.update(z, idx)
    # N_k <- g N_k + (1 - g) n_k; m_k <- g m_k + (1 - g) sum z; e_k = m_k / N_k (g = 0.5)
    n = torch.tensor([0.5 * 1 + 0.5 * 1, 0.5 * 1 + 0.5 * 2])
    m = torch.stack([0.5 * e0[0] + 0.5 * z[0], 0.5 * e0[1] + 0.5 * (z[1] + z[2])])
    torch.testing.assert_close(vq.cluster_size, n)
    torch.testing.assert_close(vq.embedding, m / n[:, None])


def test_an_unused_code_restarts_at_a_vector_of_the_batch():
    vq = VectorQuantiser(codes=3, dim=2, decay=0.5)
    vq.embedding.copy_(torch.tensor([[0.0, 0.0], [50.0, 50.0], [-50.0, 50.0]]))
    vq.embed_sum.copy_(vq.embedding)
    z = torch.tensor([[0.1, 0.0], [0.0, 0.2], [0.3, 0.1], [0.2, 0.2]])
    g = torch.Generator().manual_seed(0)
    for _ in range(4):  # codes 1 and 2 unused: their counts halve, 1/16 is not yet dead
        vq.update(z, vq.nearest(z), g)
    assert float(vq.embedding[1, 0]) == 50.0
    vq.update(z, vq.nearest(z), g)  # 1/32 < 3 % of the mean count: both restart
    rows = {tuple(r) for r in z.tolist()}
    assert tuple(vq.embedding[1].tolist()) in rows and tuple(vq.embedding[2].tolist()) in rows
    assert vq.cluster_size[1:].tolist() == [1.0, 1.0]


def _prior(seed=0):
    torch.manual_seed(seed)
    prior = CodePrior(features=7, slots=3, codes=4, hidden=16)
    with torch.no_grad():
        for p in prior.parameters():
            p.normal_(0, 0.8)
    return prior


def test_standard_normal_coordinates_sample_the_code_prior_and_zero_is_the_greedy_design():
    prior, f = _prior(), torch.randn(1, 7)
    n = 20000
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        codes = prior.codes_of(torch.randn(n, 3, generator=g), f.expand(n, -1))
        first = torch.softmax(prior.logits(torch.zeros(1, 3, dtype=torch.long), f)[0, 0], -1)
        counts = torch.bincount(codes[:, 0], minlength=4).float() / n
        torch.testing.assert_close(counts, first, atol=0.015, rtol=0)
        # the second slot given the first, against the teacher-forced conditional
        k0 = int(torch.argmax(counts))
        sub = codes[codes[:, 0] == k0]
        second = torch.softmax(prior.logits(torch.tensor([[k0, 0, 0]]), f)[0, 1], -1)
        got = torch.bincount(sub[:, 1], minlength=4).float() / len(sub)
        torch.testing.assert_close(got, second, atol=0.03, rtol=0)
        greedy = prior.codes_of(torch.zeros(1, 3), f)[0]
        for i in range(3):
            logits = prior.logits(greedy[None], f)[0, i]
            assert int(greedy[i]) == int(torch.argmax(logits))


def test_whitening_inverts_the_code_map():
    prior = _prior(2)
    g = torch.Generator().manual_seed(3)
    codes = torch.randint(4, (50, 3), generator=g)
    f = torch.randn(50, 7, generator=g)
    with torch.no_grad():
        u = prior.whiten(codes, f)
        assert bool((u >= 0).all()) and bool(torch.isfinite(u).all())
        assert torch.equal(prior.codes_of(u, f), codes)


@pytest.fixture(scope="module")
def vq_run(data, tmp_path_factory):
    train = TopologyDataset(data, "train", in_memory=True)
    val = TopologyDataset(data, "val", in_memory=True)
    out = tmp_path_factory.mktemp("tiny-vqvae")
    cfg = VAEConfig(kind="vqvae", height=TINY, width=TINY, cond_channels=len(
        train.condition_channels), latent_dim=4, base_width=4, depth=2, codebook_size=8,
        code_dim=3)  # fmt: skip
    tcfg = TrainConfig(epochs=3, batch_size=16, lr=3e-2, warmup_steps=2, device="cpu", plots=False)
    trainer = Trainer(cfg, tcfg, train, val, out)
    trainer.fit(progress=False)
    return trainer, out / "best.pt"


def test_training_logs_the_codebook_and_fits_the_code_prior(vq_run):
    trainer, ckpt = vq_run
    for row in trainer.history:
        for key in ("train_commitment", "train_perplexity", "train_code_usage", "val_perplexity"):
            assert np.isfinite(row[key]), key
        assert 1 <= row["train_perplexity"] <= 8 and 0 < row["train_code_usage"] <= 1
        assert row["val_kl"] == 0
    report = read_checkpoint(ckpt)["prior_fit"]
    assert report["val_nll"] < report["val_nll_uniform"] == pytest.approx(4 * np.log(8))
    model = load(ckpt)
    assert isinstance(model, VQVAE)
    assert not any(p.requires_grad for p in model.code_prior.parameters())


def test_a_trained_vqvae_loads_and_works_in_every_workflow(vq_run, run, tmp_path, data):
    ckpt = vq_run[1]
    searched, report = run_every_workflow(run, ckpt, data, tmp_path, evaluate_args=("--factors",))
    assert "cmaes" in searched.output and "gradient" not in searched.output  # nothing to follow
    assert report["model"]["kind"] == "vqvae" and report["metrics"]["first"]["ce_median"] >= 0
    assert_one_line_error(
        run("search", ckpt, "--problem", "mbb", "--method", "gradient", "--out", "g"),
        "gradient", "discrete",
    )  # fmt: skip
    assert not (tmp_path / "g").exists()
    assert_one_line_error(
        run("evaluate", ckpt, data, "--nll", 4, "--out", "n"), "--nll", "discrete"
    )
    assert report["guide"] == 0  # the default: discrete codes have no gradient to guide
    assert_one_line_error(
        run("evaluate", ckpt, data, "--guide", 5, "--out", "n"), "--guide", "discrete"
    )


def test_the_cli_trains_a_vqvae_and_refuses_bad_codebooks(run, data, tmp_path):
    r = run("train", data, "--model", "vqvae", "--latent-dim", 2, "--base-width", 4, "--depth",
            2, "--codebook-size", 4, "--code-dim", 2, "--epochs", 1, "--batch-size", 16,
            "--device", "cpu", "--quiet", "--out", "v")  # fmt: skip
    assert r.exit_code == 0, r.output
    assert read_checkpoint(tmp_path / "v" / "best.pt")["model_config"]["codebook_size"] == 4
    assert_one_line_error(
        run("train", data, "--model", "vqvae", "--codebook-size", 1, "--out", "w"),
        "codebook_size", "at least 2",
    )  # fmt: skip
    assert_one_line_error(
        run("train", data, "--model", "cvae", "--code-dim", 4, "--out", "w"), "code_dim", "vqvae"
    )
