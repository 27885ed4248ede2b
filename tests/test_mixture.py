"""The prior mixture (`VAEConfig.prior_components`, `train --prior-components`): its density is
the mixture's, it starts as the plain prior, fitting it keeps the best validation density, and a
model with one is drawn from by every sampling workflow."""

import json

import pytest
import torch
from conftest import TINY, assert_one_line_error

from topovae.datasets import TopologyDataset
from topovae.models import (
    PLAIN_SHARE,
    ConfigError,
    PriorMixture,
    TrainConfig,
    Trainer,
    VAEConfig,
    build_model,
    fit_prior_mixture,
    load,
    read_checkpoint,
)


def test_the_log_density_is_the_gaussian_mixture_of_torch_distributions():
    torch.manual_seed(0)
    mix = PriorMixture(features=5, dim=3, components=4)
    with torch.no_grad():
        for p in mix.parameters():
            p.normal_(0, 0.5)
    h, u = torch.randn(7, 5), torch.randn(7, 3)
    logits, means, log_scales = mix(h)
    ref = torch.distributions.MixtureSameFamily(
        torch.distributions.Categorical(logits=logits),
        torch.distributions.Independent(torch.distributions.Normal(means, log_scales.exp()), 1),
    )
    torch.testing.assert_close(mix.log_prob(u, h), ref.log_prob(u))


def test_draws_place_the_noise_in_the_components_by_their_shares_spread_systematically():
    mix = PriorMixture(features=2, dim=2, components=2)
    with torch.no_grad():  # component 0 at (+5, +5) with weight ~0.88, component 1 at (-5, -5)
        mix.net[-1].bias.copy_(torch.tensor([1.0, -1.0, 5, 5, -5, -5, -1, -1, -1, -1]))
    g = torch.Generator().manual_seed(0)
    n = 4000
    eps = torch.randn(n, 2, generator=g)
    u = mix.draws(eps, torch.zeros(1, 2), g)
    plain = (u == eps).all(1)
    first, second = (u[:, 0] > 2.5) & ~plain, (u[:, 0] < -2.5) & ~plain
    w = float(torch.sigmoid(torch.tensor(2.0)))
    shares = (PLAIN_SHARE, (1 - PLAIN_SHARE) * w, (1 - PLAIN_SHARE) * (1 - w))
    for got, share in zip((plain, first, second), shares, strict=True):
        assert abs(int(got.sum()) - n * share) <= 1  # systematic: each share to within a draw
    assert int(plain.sum() + first.sum() + second.sum()) == n
    torch.testing.assert_close(u[first], 5 + torch.exp(torch.tensor(-1.0)) * eps[first])
    torch.testing.assert_close(u[second], -5 + torch.exp(torch.tensor(-1.0)) * eps[second])
    # shuffled (the plain draws are not all at the start) and seeded
    assert 0 < int(plain[: n // 2].sum()) < n // 2
    a, b = (mix.draws(eps, torch.zeros(1, 2), torch.Generator().manual_seed(3)) for _ in "ab")
    assert torch.equal(a, b)
    with pytest.raises(ConfigError, match="one condition"):
        mix.draws(eps[:3], torch.zeros(3, 2), g)


def _tiny(cc, **kw):
    return VAEConfig(kind="cvae", height=TINY, width=TINY, cond_channels=cc, latent_dim=4,
                     base_width=4, depth=2, **kw)  # fmt: skip


def test_without_a_mixture_or_before_fitting_the_draws_are_the_plain_prior_samples():
    c = torch.rand(1, 9, TINY, TINY)
    eps = torch.randn(6, 4)
    plain = build_model(_tiny(9)).eval()
    assert plain.prior_draws(eps, c) is eps  # the workflows' draws are unchanged, to the bit
    fresh = build_model(_tiny(9, prior_components=3)).eval()
    torch.testing.assert_close(fresh.prior_draws(eps, c, torch.Generator()), eps)
    assert not any(p.requires_grad for p in fresh.prior_mixture.parameters())


@pytest.mark.parametrize(
    "options, fragment",
    [({"prior_components": -1}, "0..64"), ({"prior_components": True}, "0..64"),
     ({"prior_components": 2, "prior": "independent"}, "dependent prior")],
)  # fmt: skip
def test_bad_mixture_settings_are_one_clear_error(options, fragment):
    with pytest.raises(ConfigError, match=fragment):
        _tiny(9, **options)
    with pytest.raises(ConfigError, match="dependent prior"):
        VAEConfig(kind="vae", height=TINY, width=TINY, prior_components=2)


@pytest.fixture(scope="module")
def mixture_run(data, tiny_checkpoints, tmp_path_factory):
    """A fine-tune of the tiny cvae with a prior mixture of 3 (fitted at the end of the run)."""
    train = TopologyDataset(data, "train", in_memory=True)
    val = TopologyDataset(data, "val", in_memory=True)
    out = tmp_path_factory.mktemp("mixture")
    cfg = VAEConfig.from_dict({**read_checkpoint(tiny_checkpoints["cvae"])["model_config"],
                               "prior_components": 3})  # fmt: skip
    tcfg = TrainConfig(epochs=1, batch_size=16, lr=1e-3, device="cpu", plots=False)
    trainer = Trainer(cfg, tcfg, train, val, out)
    trainer.initialise_from(tiny_checkpoints["cvae"])  # a checkpoint without a mixture
    trainer.fit(progress=False)
    return out / "best.pt", train, val


def test_the_fit_keeps_the_best_validation_density_and_is_saved_in_best_pt(mixture_run):
    path, train, val = mixture_run
    ckpt = read_checkpoint(path)  # the digests were rewritten with the fitted weights
    report = ckpt["prior_fit"]
    assert report["val_log_density"] >= report["val_log_density_plain"]
    model = load(path)
    assert model.config.prior_components == 3
    # fitting again from the fitted mixture never leaves the validation density worse
    start = {k: v.clone() for k, v in model.prior_mixture.state_dict().items()}
    again = fit_prior_mixture(model, train, val)
    assert again["val_log_density"] >= report["val_log_density"] - 1e-4
    if again["step"] == 0:
        for k, v in model.prior_mixture.state_dict().items():
            assert torch.equal(v, start[k])
    if report["step"]:  # fitted: the draws are no longer the plain prior's
        eps = torch.randn(8, 4)
        c = train[0]["condition"][None]
        assert not torch.equal(model.prior_draws(eps, c, torch.Generator()), eps)


def test_a_model_with_a_mixture_works_in_the_sampling_workflows(mixture_run, run, tmp_path, data):
    path = mixture_run[0]
    for args in (
        ("explore", "sample", path, "--problem", "cantilever", "-n", 2, "--device", "cpu",
         "--out", "s.png"),
        ("alternatives", path, "--problem", "mbb", "-k", 2, "--samples", 8, "--polish", 1,
         "--device", "cpu", "--out", "a.png"),
        ("evaluate", path, data, "-k", 3, "--polish", 1, "--limit", 2, "--device", "cpu",
         "--quiet", "--out", "e"),
    ):  # fmt: skip
        r = run(*args)
        assert r.exit_code == 0, r.output
    report = json.loads((tmp_path / "e" / "report.json").read_text())
    assert report["model"]["prior_components"] == 3


def test_the_cli_refuses_bad_components(run, data):
    assert_one_line_error(
        run("train", data, "--model", "vae", "--prior-components", 2, "--out", "r"),
        "prior_components",
    )
