"""The ladder VAE (kind "hvae"): its two layers against torch.distributions, its whitened
coordinates, and a trained checkpoint through `load` and every workflow command."""

import json
import math

import numpy as np
import pytest
import torch
from conftest import TINY, run_every_workflow
from torch.distributions import Normal, kl_divergence

from topovae.models import (
    FAMILIES,
    ConfigError,
    DesignVAE,
    LadderVAE,
    TrainConfig,
    Trainer,
    VAEConfig,
    build_model,
    iwae,
    load,
    log_weights,
    loss_terms,
)

CC = 9


def _model(seed=0, **kw):
    torch.manual_seed(seed)
    cfg = VAEConfig(kind="hvae", height=TINY, width=TINY, cond_channels=CC, latent_dim=6,
                    top_dim=2, base_width=4, depth=2, **kw)  # fmt: skip
    model = build_model(cfg)
    # away from the zero-initialised identity of the prior and top-down networks
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return model.double().eval().requires_grad_(False)


def _batch(b=5, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(b, 1, TINY, TINY, generator=g) > 0.5).double()
    return x, torch.rand(b, CC, TINY, TINY, generator=g, dtype=torch.float64)


def test_the_registry_builds_each_kind_and_refuses_bad_ladders():
    assert set(FAMILIES) == {"vae", "beta-vae", "cvae", "hvae", "vqvae", "ppca"}
    m = _model()
    assert isinstance(m, LadderVAE) and m.latent_layers == (2, 4)
    assert type(build_model(VAEConfig(kind="vae", height=8, width=8, depth=2))) is DesignVAE
    assert VAEConfig(kind="hvae", cond_channels=1, latent_dim=8).top_layer_dim == 4
    for kw, fragment in (({"top_dim": 6}, "top_dim in 1..5"), ({"arch": "conv"}, "unet"),
                         ({"latent_dim": 1}, "latent_dim >= 2")):  # fmt: skip
        with pytest.raises(ConfigError, match=fragment):
            VAEConfig(**{"kind": "hvae", "cond_channels": 1, "latent_dim": 6, **kw})
    with pytest.raises(ConfigError, match="top_dim is for kind 'hvae'"):
        VAEConfig(kind="cvae", cond_channels=1, top_dim=2)
    with pytest.raises(ConfigError, match="an hvae needs cond_channels >= 1"):
        VAEConfig(kind="hvae")


def test_the_trainer_refuses_a_class_of_another_family(splits_for_ladder):
    train, val, tmp = splits_for_ladder
    cc = len(train.condition_channels)
    cfg = VAEConfig(kind="hvae", height=TINY, width=TINY, cond_channels=cc, latent_dim=4,
                    base_width=4, depth=2)  # fmt: skip
    with pytest.raises(TypeError, match=r"model_class must be LadderVAE \(kind 'hvae'\)"):
        Trainer(cfg, TrainConfig(epochs=1, device="cpu"), train, val, tmp, model_class=DesignVAE)


@pytest.fixture
def splits_for_ladder(data, tmp_path):
    from topovae.datasets import TopologyDataset

    return (TopologyDataset(data, "train", in_memory=True),
            TopologyDataset(data, "val", in_memory=True), tmp_path / "run")  # fmt: skip


def test_the_bottom_posterior_is_the_precision_weighted_product_of_two_gaussians():
    """q(z1 | x, z2) is proportional to N(mu^1, s^1) N(mu1(z2), s1(z2)) (Sønderby et al.)."""
    m = _model()
    x, c = _batch()
    feats = m.condition_features(c)
    mu2, _, mu1h, lv1h = m._bottom_up(x, feats)
    pmu1, plv1 = m._bottom_prior(mu2, feats)
    mu1, lv1 = m._merge(mu1h, lv1h, pmu1, plv1)
    bottom_up, top_down = Normal(mu1h, (0.5 * lv1h).exp()), Normal(pmu1, (0.5 * plv1).exp())
    merged = Normal(mu1, (0.5 * lv1).exp())
    z = [torch.randn_like(mu1) * 3 for _ in range(4)]
    gaps = [(bottom_up.log_prob(t) + top_down.log_prob(t) - merged.log_prob(t)) for t in z]
    for g in gaps[1:]:  # a constant in z: the product is that Gaussian, unnormalised
        torch.testing.assert_close(g, gaps[0], rtol=1e-7, atol=1e-6)


def test_the_kl_of_each_layer_equals_torch_distributions():
    """The loss's KL is KL(q(z2) || p(z2)) + KL(q(z1 | z2) || p(z1 | z2)) at the sampled z2."""
    m = _model()
    x, c = _batch()
    feats = m.condition_features(c)
    eps = torch.randn(x.shape[0], 6, generator=torch.Generator().manual_seed(2), dtype=x.dtype)
    z, mu, lv, pmu, plv = m.posterior_sample(x, c, feats, eps)
    mu2, lv2, mu1h, lv1h = m._bottom_up(x, feats)
    z2 = mu2 + eps[:, :2] * (0.5 * lv2).exp()
    torch.testing.assert_close(z[:, :2], z2)
    pmu2, plv2 = m._dependent_prior(feats)
    pmu1, plv1 = m._bottom_prior(z2, feats)
    mu1, lv1 = m._merge(mu1h, lv1h, pmu1, plv1)
    kl_top = kl_divergence(Normal(mu2, (0.5 * lv2).exp()), Normal(pmu2, (0.5 * plv2).exp()))
    kl_bottom = kl_divergence(Normal(mu1, (0.5 * lv1).exp()), Normal(pmu1, (0.5 * plv1).exp()))
    logits = m.decode(z, c, feats)
    terms = loss_terms(m.config, logits, x, mu, lv, 10**6, None, pmu, plv)
    kl = terms["kl_per_dim"].double()  # the loss's float32
    torch.testing.assert_close(kl[:2], kl_top.mean(0), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(kl[2:], kl_bottom.mean(0), rtol=1e-4, atol=1e-5)
    expected = (kl_top.sum(1) + kl_bottom.sum(1)).mean()
    assert float(terms["kl"]) == pytest.approx(float(expected), rel=1e-5)
    # the importance weight of one sample: log p(x | z) + log p(z) - log q(z | x), layer by layer
    log_q = Normal(mu2, (0.5 * lv2).exp()).log_prob(z2).sum(1) + Normal(
        mu1, (0.5 * lv1).exp()
    ).log_prob(z[:, 2:]).sum(1)
    log_p = Normal(pmu2, (0.5 * plv2).exp()).log_prob(z2).sum(1) + Normal(
        pmu1, (0.5 * plv1).exp()
    ).log_prob(z[:, 2:]).sum(1)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="none")
    w = log_weights(m, x, c, k=1, generator=torch.Generator().manual_seed(2))[0]
    expected_w = (-bce.flatten(1).sum(1) + log_p - log_q).float()
    torch.testing.assert_close(w, expected_w, rtol=1e-5, atol=1e-3)


def test_m_samples_at_once_equal_one_at_a_time():
    """posterior_sample with (m, B, D) noise (the IWAE estimate's) is m calls with (B, D)."""
    m = _model()
    x, c = _batch(3)
    feats = m.condition_features(c)
    eps = torch.randn(4, 3, 6, generator=torch.Generator().manual_seed(5), dtype=x.dtype)
    together = m.posterior_sample(x, c, feats, eps)
    for i in range(4):
        for a, b in zip(together, m.posterior_sample(x, c, feats, eps[i]), strict=True):
            torch.testing.assert_close(a[i], b)


def test_whitened_coordinates_sample_the_hierarchical_prior():
    m = _model()
    _, c = _batch(4)
    u = torch.randn(4, 6, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    z = m.to_latent_coordinates(u, c)
    torch.testing.assert_close(m.whiten(z, c), u, rtol=1e-5, atol=1e-5)
    feats = m.condition_features(c)
    pmu2, plv2 = m._dependent_prior(feats)
    torch.testing.assert_close(z[:, :2], pmu2 + (0.5 * plv2).exp() * u[:, :2])
    pmu1, plv1 = m._bottom_prior(z[:, :2], feats)  # the bottom layer under the sampled top
    torch.testing.assert_close(z[:, 2:], pmu1 + (0.5 * plv1).exp() * u[:, 2:])
    torch.testing.assert_close(m.decode_whitened(u, c), m.decode(z, c))


def test_the_iwae_estimate_of_a_ladder_grows_with_k_on_average():
    m = _model()
    x, c = _batch(3)
    g = torch.Generator().manual_seed(4)
    small = np.mean([iwae(log_weights(m, x, c, k=1, generator=g)).mean() for _ in range(40)])
    large = np.mean([iwae(log_weights(m, x, c, k=64, generator=g)).mean() for _ in range(5)])
    assert math.isfinite(small) and large > small


def test_a_trained_hvae_loads_and_works_in_every_workflow(tiny_checkpoints, run, tmp_path, data):
    ckpt = tiny_checkpoints["hvae"]
    model = load(ckpt)
    assert isinstance(model, LadderVAE) and model.config.kind == "hvae"
    rows = [json.loads(line) for line in (ckpt.parent / "metrics.jsonl").read_text().splitlines()]
    for row in rows:  # the KL of each layer: both layers carry information, and make the whole
        assert row["val_kl_top"] > 0 and row["val_kl_bottom"] > 0
        assert row["val_kl_top"] + row["val_kl_bottom"] == pytest.approx(row["val_kl"], rel=1e-4)

    _, report = run_every_workflow(
        run, ckpt, data, tmp_path, evaluate_args=("--nll", 4, "--factors")
    )
    assert report["model"]["kind"] == "hvae" and report["likelihood"]["nll_nats"] > 0
