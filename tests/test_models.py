"""Design VAEs: shapes, the ELBO terms against independent formulas, training moves the loss,
whitened coordinates, condition normalisation."""

import json

import pytest
import torch
from torch.distributions import Normal, kl_divergence

from topovae.models import (
    ConfigError,
    DesignVAE,
    VAEConfig,
    active_units,
    compliance_weight,
    gaussian_kl,
    kl_weight,
    loss_terms,
    physics_terms,
    project_volume,
)
from topovae.models._vae import normalise_condition

SMALL = dict(latent_dim=6, base_width=8, depth=3)


ARCHS = ("unet", "conv")


def make(kind="vae", h=24, w=40, cc=0, **kw):
    extra = {"beta": 4.0} if kind == "beta-vae" else {}
    cfg = VAEConfig(kind=kind, height=h, width=w, cond_channels=cc, **SMALL, **extra, **kw)
    torch.manual_seed(0)
    return DesignVAE(cfg)


def test_kl_equals_torch_distributions():
    g = torch.Generator().manual_seed(0)
    mu = torch.randn(5, 7, generator=g)
    logvar = torch.randn(5, 7, generator=g)
    expected = kl_divergence(Normal(mu, torch.exp(0.5 * logvar)), Normal(0.0, 1.0))
    torch.testing.assert_close(gaussian_kl(mu, logvar), expected, rtol=1e-6, atol=1e-7)


def test_kl_to_a_learned_prior_equals_torch_distributions():
    g = torch.Generator().manual_seed(1)
    mu, logvar, pmu, plogvar = (torch.randn(5, 7, generator=g) for _ in range(4))
    expected = kl_divergence(
        Normal(mu, torch.exp(0.5 * logvar)), Normal(pmu, torch.exp(0.5 * plogvar))
    )
    torch.testing.assert_close(gaussian_kl(mu, logvar, pmu, plogvar), expected, rtol=1e-5,
                               atol=1e-6)  # fmt: skip
    # the named term of the loss uses it: batch mean of the per-dimension sum
    cfg = VAEConfig(kind="cvae", cond_channels=2, latent_dim=7)
    x = torch.rand(5, 1, 64, 64, generator=g)
    t = loss_terms(cfg, torch.zeros_like(x), x, mu, logvar, prior_mu=pmu, prior_logvar=plogvar)
    assert float(t["kl"]) == pytest.approx(float(expected.sum(1).mean()), rel=1e-5)


def _nontrivial_prior(model):
    """The prior network starts at N(0, I) (its last layer is zero); give it random weights."""
    torch.manual_seed(5)
    for p in model.prior_net[-1].parameters():
        torch.nn.init.normal_(p, std=0.3)
    return model.eval()


@torch.no_grad()
def test_whitened_coordinates_round_trip_and_prior_mean():
    model = _nontrivial_prior(make("cvae", 16, 16, cc=9))
    c = torch.rand(3, 9, 16, 16)
    mu_p, logvar_p = model.prior(c)
    assert float(mu_p.abs().max()) > 0.05 and float((logvar_p).abs().max()) > 0.05
    u = torch.randn(3, SMALL["latent_dim"])
    z = model.to_latent_coordinates(u, c)
    torch.testing.assert_close(z, mu_p + torch.exp(0.5 * logvar_p) * u)
    torch.testing.assert_close(model.whiten(z, c), u, rtol=1e-5, atol=1e-5)
    # u = 0 decodes the prior mean mu(c); the independent prior leaves z = u
    zero = torch.zeros(3, SMALL["latent_dim"])
    torch.testing.assert_close(model.decode_whitened(zero, c), model.decode(mu_p, c))
    vae = make().eval()
    torch.testing.assert_close(vae.to_latent_coordinates(u), u)


@torch.no_grad()
def test_the_dependent_prior_depends_on_the_condition():
    model = make("cvae", 16, 16, cc=9).eval()
    torch.manual_seed(5)
    for p in model.parameters():  # PyTorch's default init shrinks signals layer by layer
        torch.nn.init.normal_(p, std=0.3)
    a, _ = model.prior(torch.zeros(1, 9, 16, 16))
    b, _ = model.prior(torch.rand(1, 9, 16, 16))
    assert float((a - b).abs().max()) > 1e-3


def test_the_load_magnitude_does_not_change_the_design():
    """Compliance is quadratic in the load magnitude, the optimum does not depend on it: the
    U-Net normalises the load channels per sample."""
    model = make("cvae", 16, 16, cc=7).eval()
    c = torch.rand(2, 7, 16, 16)
    scaled = c.clone()
    scaled[:, 1:3] *= 40.0
    z = torch.randn(2, SMALL["latent_dim"])
    torch.testing.assert_close(model.decode(z, c), model.decode(z, scaled))
    torch.testing.assert_close(normalise_condition(c)[:, 3:], c[:, 3:])
    assert float(normalise_condition(scaled)[:, 1:3].abs().max()) == pytest.approx(1.0)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize(("kind", "cc"), [("vae", 0), ("beta-vae", 0), ("cvae", 7)])
@pytest.mark.parametrize(("h", "w"), [(64, 64), (20, 60), (33, 17), (8, 8)])
def test_shapes(kind, cc, h, w, arch):
    model = make(kind, h, w, cc, arch=arch)
    x = torch.rand(3, 1, h, w)
    c = torch.rand(3, cc, h, w) if cc else None
    mu, logvar = model.encode(x, c)
    assert mu.shape == logvar.shape == (3, SMALL["latent_dim"])
    assert model.decode(mu, c).shape == (3, 1, h, w)
    out = model(x, c)
    assert out.logits.shape == (3, 1, h, w)
    assert out.prior_mu.shape == out.prior_logvar.shape == (3, SMALL["latent_dim"])
    s = model.sample(2, c[0] if cc else None, generator=torch.Generator().manual_seed(0))
    assert s.shape == (2, 1, h, w) and 0 <= float(s.min()) and float(s.max()) <= 1
    assert model.reconstruct(x, c).shape == (3, 1, h, w)


def test_sampling_is_reproducible_with_a_generator():
    model = make().eval()
    a = model.sample(4, generator=torch.Generator().manual_seed(3))
    b = model.sample(4, generator=torch.Generator().manual_seed(3))
    c = model.sample(4, generator=torch.Generator().manual_seed(4))
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, c)


@pytest.mark.parametrize(
    ("kind", "cc", "arch", "prior"),
    [("vae", 0, "unet", "auto"), ("beta-vae", 0, "unet", "auto"), ("cvae", 9, "unet", "auto"),
     ("cvae", 9, "unet", "independent"), ("cvae", 3, "conv", "auto"), ("vae", 0, "conv", "auto")],
)  # fmt: skip
def test_two_training_steps_lower_the_loss_on_a_fixed_batch(kind, cc, arch, prior):
    model = make(kind, 16, 16, cc, arch=arch, prior=prior)
    g = torch.Generator().manual_seed(1)
    x = (torch.rand(8, 1, 16, 16, generator=g) > 0.5).float()
    c = torch.rand(8, cc, 16, 16, generator=g) if cc else None
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def loss() -> torch.Tensor:
        o = model(x, c, generator=torch.Generator().manual_seed(2))
        return loss_terms(model.config, o.logits, x, o.mu, o.logvar, 0, None, o.prior_mu,
                          o.prior_logvar)["total"]  # fmt: skip

    before = float(loss().detach())
    for _ in range(2):
        opt.zero_grad()
        loss().backward()
        opt.step()
    assert float(loss().detach()) < before


def test_loss_terms_match_hand_computation():
    cfg = VAEConfig(height=4, width=4, latent_dim=3, likelihood="bernoulli", **{"depth": 1})
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(2, 1, 4, 4, generator=g) > 0.5).float()
    logits = torch.randn(2, 1, 4, 4, generator=g)
    mu, logvar = torch.randn(2, 3, generator=g), torch.randn(2, 3, generator=g)
    t = loss_terms(cfg, logits, x, mu, logvar)
    p = torch.sigmoid(logits)
    rec = -(x * torch.log(p) + (1 - x) * torch.log(1 - p)).sum() / 2
    kl = (0.5 * (mu**2 + logvar.exp() - 1 - logvar)).sum() / 2
    torch.testing.assert_close(t["reconstruction"], rec, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(t["kl"], kl)
    torch.testing.assert_close(t["total"], rec + kl, rtol=1e-5, atol=1e-5)
    gauss = loss_terms(cfg.__class__(**{**cfg.to_dict(), "likelihood": "gaussian"}), logits, x,
                       mu, logvar)  # fmt: skip
    torch.testing.assert_close(gauss["reconstruction"], 0.5 * ((p - x) ** 2).sum() / 2)


def test_beta_warmup_free_bits_capacity_and_volume():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, 1, 8, 8, generator=g)
    logits = torch.randn(4, 1, 8, 8, generator=g)
    mu = torch.zeros(4, 3)
    mu[:, 0] = 2.0  # dim 0 has KL 2, dims 1-2 have KL 0
    logvar = torch.zeros(4, 3)
    base = dict(height=8, width=8, latent_dim=3, depth=1)
    beta = VAEConfig(kind="beta-vae", beta=4.0, kl_warmup_steps=10, **base)
    assert kl_weight(beta, 5) == pytest.approx(2.0)
    t = loss_terms(beta, logits, x, mu, logvar, step=5)
    assert float(t["kl"]) == pytest.approx(2.0) and float(t["weighted_kl"]) == pytest.approx(4.0)
    fb = VAEConfig(free_bits=0.5, **base)
    assert float(loss_terms(fb, logits, x, mu, logvar)["weighted_kl"]) == pytest.approx(3.0)
    cap = VAEConfig(kind="beta-vae", capacity_max=10.0, capacity_steps=100, capacity_gamma=2.0,
                    **base)  # fmt: skip
    assert float(loss_terms(cap, logits, x, mu, logvar, step=50)["weighted_kl"]) == pytest.approx(
        2.0 * abs(2.0 - 5.0)
    )
    vol = VAEConfig(volume_weight=1.0, **base)
    target = torch.sigmoid(logits).mean(dim=(1, 2, 3))
    assert float(loss_terms(vol, logits, x, mu, logvar, volfrac=target)["volume"]) < 1e-10
    off = loss_terms(vol, logits, x, mu, logvar, volfrac=target + 0.1)["volume"]
    assert float(off) == pytest.approx(64 * 0.01, rel=1e-4)


def test_active_units():
    g = torch.Generator().manual_seed(0)
    mu = torch.zeros(500, 5)
    mu[:, 1] = torch.randn(500, generator=g)
    mu[:, 3] = 0.5 * torch.randn(500, generator=g)
    mu[:, 4] = 0.01 * torch.randn(500, generator=g)  # variance 1e-4: collapsed
    assert active_units(mu) == 2


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("kind", ["vae", "cvae"])
def test_the_parameter_estimate_bounds_the_real_count(arch, kind):
    cc = 9 if kind == "cvae" else 0
    cfg = VAEConfig(kind=kind, arch=arch, height=40, width=24, cond_channels=cc, latent_dim=16,
                    base_width=8, depth=3)  # fmt: skip
    real = sum(p.numel() for p in DesignVAE(cfg).parameters())
    assert real <= cfg.parameter_estimate() <= 10 * real


def test_config_round_trips_through_json():
    cfg = VAEConfig(kind="cvae", height=20, width=60, cond_channels=7, latent_dim=16, beta=1.5,
                    free_bits=0.1, norm="group", activation="gelu")  # fmt: skip
    assert VAEConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    # "auto" resolves on construction, so the stored config names the prior
    assert cfg.prior == "dependent" and VAEConfig().prior == "independent"
    assert VAEConfig(kind="cvae", cond_channels=7, arch="conv").prior == "independent"


@pytest.mark.parametrize(
    ("kw", "fragment"),
    [
        ({"kind": "gan"}, "unknown kind 'gan'"),
        ({"latent_dim": 0}, "latent_dim"),
        ({"kind": "cvae"}, "cond_channels"),
        ({"cond_channels": 3}, "cond_channels"),
        ({"kind": "beta-vae", "beta": 1.0}, "beta > 1"),
        ({"norm": "layer"}, "unknown norm"),
        ({"height": -4}, "height"),
        ({"arch": "mlp"}, "unknown arch 'mlp'"),
        ({"prior": "dependent"}, "dependent prior needs a cvae"),
        (
            {"kind": "cvae", "cond_channels": 7, "arch": "conv", "prior": "dependent"},
            "on the unet backbone",
        ),
        ({"free_bits": float("nan")}, r"free_bits must be a number in \[0, 1000\], got nan"),
        ({"beta": float("inf")}, r"beta must be a number in \[0, 10000\], got inf"),
        ({"beta": 1e12}, r"beta must be a number in \[0, 10000\], got 1000000000000.0"),
        ({"volume_weight": 1e30}, r"volume_weight must be a number in \[0, 1e\+06\]"),
        ({"kl_warmup_steps": 10**30}, r"kl_warmup_steps must be an integer in 0..1000000000"),
        ({"base_width": 10**8}, "base_width 100000000 is above max_width 256"),
        ({"depth": 10, "height": 32, "width": 32}, r"2\^10 = 1024\), more than the 32x32 grid"),
        ({"latent_dim": 100_000_000}, "over the limit of"),
    ],
)
def test_bad_configs(kw, fragment):
    with pytest.raises(ConfigError, match=fragment):
        VAEConfig(**kw)
    with pytest.raises(ConfigError, match="unknown model config fields: bogus"):
        VAEConfig.from_dict({"bogus": 1})


def test_conditions_are_checked():
    vae, cvae = make(), make("cvae", cc=2)
    x = torch.rand(2, 1, 24, 40)
    with pytest.raises(ConfigError, match="needs a condition"):
        cvae.encode(x)
    with pytest.raises(ConfigError, match="takes no condition"):
        vae.encode(x, torch.rand(2, 2, 24, 40))
    with pytest.raises(ConfigError, match=r"shape \(B, 2, 24, 40\)"):
        cvae.encode(x, torch.rand(2, 3, 24, 40))
    with pytest.raises(ConfigError, match=r"designs of shape \(B, 1, 24, 40\)"):
        vae.encode(torch.rand(2, 1, 24, 41))


@pytest.mark.parametrize("arch", ARCHS)
def test_condition_changes_the_decoded_design(arch):
    model = make("cvae", 16, 16, cc=2, arch=arch).eval()
    z = torch.zeros(1, SMALL["latent_dim"])
    a = model.decode(z, torch.zeros(1, 2, 16, 16))
    b = model.decode(z, torch.ones(1, 2, 16, 16))
    assert (a - b).abs().max() > 1e-4


# -- physics-aware training: the compliance term ---------------------------------------------
def _mbb_and_design(nelx=12, nely=8):
    from topovae.solvers import preset, solve

    problem = preset("mbb", nelx, nely, 0.5)
    result = solve(problem)
    x = torch.tensor(result.density)[None, None]
    return problem.with_settings(), x


def test_the_compliance_term_is_zero_for_the_simp_design_itself():
    problem, x = _mbb_and_design()
    # a problem whose volume fraction is the design's, so the projection leaves it in place
    from topovae.solvers import Problem

    p = Problem(problem.nelx, problem.nely, float(x.mean()), problem.fixed_x, problem.fixed_y,
                problem.loads)  # fmt: skip
    logits = torch.logit(x.double().clamp(1e-6, 1 - 1e-6))
    t = physics_terms(logits, x, [p])
    assert abs(float(t[0])) < 1e-6
    # a design with the same volume but the material moved is less stiff: the term is > 0
    worse = physics_terms(torch.logit(x.flip(-1).double().clamp(1e-6, 1 - 1e-6)), x, [p])
    assert float(worse[0]) > 0.01


def test_the_compliance_term_gradient_matches_finite_differences():
    problem, x = _mbb_and_design()
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(1, 1, 8, 12, generator=g, dtype=torch.float64, requires_grad=True)
    physics_terms(logits, x, [problem]).sum().backward()
    direction = torch.randn(1, 1, 8, 12, generator=g, dtype=torch.float64)
    h = 1e-5
    with torch.no_grad():
        up = physics_terms(logits + h * direction, x, [problem]).sum()
        down = physics_terms(logits - h * direction, x, [problem]).sum()
    fd = float(up - down) / (2 * h)
    assert float((logits.grad * direction).sum()) == pytest.approx(fd, rel=1e-4, abs=1e-8)


def test_project_volume_meets_the_target_on_the_free_elements():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(3, 6, 7, generator=g, dtype=torch.float64)
    free = torch.rand(3, 6, 7, generator=g) > 0.3
    target = torch.tensor([0.2, 0.5, 0.7], dtype=torch.float64)
    rho = torch.sigmoid(project_volume(logits, free, target))
    got = (rho * free).sum((1, 2)) / free.sum((1, 2))
    torch.testing.assert_close(got, target, rtol=0, atol=1e-10)


def test_project_volume_converges_on_crisp_float32_designs_as_brent_does(monkeypatch):
    """Decoders make crisp designs (|logits| ~ 10-40): the shift must reach the root there too,
    in float32, where Newton steps once bounced at the float's resolution, and within 12
    iterations (a bisection needs ~50); the root is checked against scipy's brentq on the same
    mean in float64."""
    from scipy.optimize import brentq

    from topovae.models import _losses

    monkeypatch.setattr(_losses, "PROJECT_ITERATIONS", 12)

    g = torch.Generator().manual_seed(3)
    rough = torch.randn(6, 16, 16, generator=g)
    logits = 40 * torch.nn.functional.avg_pool2d(rough[:, None], 5, 1, 2)[:, 0]
    free = torch.ones(16, 16, dtype=torch.bool)
    target = torch.linspace(0.25, 0.6, 6)
    shifted = project_volume(logits, free, target)
    got = torch.sigmoid(shifted).mean((1, 2))
    torch.testing.assert_close(got, target, rtol=0, atol=1e-6)

    def excess(s, k):  # the design's volume above its target at shift s, in float64
        return float(torch.sigmoid(logits[k].double() + s).mean()) - float(target[k])

    for k in range(6):
        root = brentq(excess, -40, 40, args=(k,))
        assert float((shifted[k] - logits[k]).mean()) == pytest.approx(root, abs=1e-4)


def test_project_volume_of_no_designs_and_of_a_nan_design():
    free = torch.ones(4, 4, dtype=torch.bool)
    assert project_volume(torch.zeros(0, 4, 4), free, 0.5).shape == (0, 4, 4)
    logits = torch.randn(2, 4, 4, generator=torch.Generator().manual_seed(0))
    logits[1] = float("nan")
    rho = torch.sigmoid(project_volume(logits, free, 0.5))
    assert float(rho[0].mean()) == pytest.approx(0.5, abs=1e-6) and rho[1].isnan().all()


def test_project_volume_gradient_is_the_implicit_functions():
    g = torch.Generator().manual_seed(4)
    logits = (2 * torch.randn(2, 5, 6, generator=g, dtype=torch.float64)).requires_grad_(True)
    free = torch.rand(5, 6, generator=g) > 0.2
    target = torch.tensor([0.3, 0.55], dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda x: project_volume(x, free, target), (logits,))


def test_the_compliance_weight_schedule():
    cfg = VAEConfig(compliance_weight=2.0, compliance_start=10, compliance_ramp=4)
    assert [compliance_weight(cfg, s) for s in (0, 9, 10, 11, 13, 100)] == [
        0.0, 0.0, 0.5, 1.0, 2.0, 2.0
    ]  # fmt: skip
    assert compliance_weight(VAEConfig(), 100) == 0.0
