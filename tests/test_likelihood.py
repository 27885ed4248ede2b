"""The marginal likelihood: probabilistic PCA's closed form and exact log p(x), and the IWAE
estimate (K = 1 is the ELBO on average, it grows with K, and it converges to the exact value
where that is known)."""

import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal

from topovae.models import (
    PPCA,
    ConfigError,
    DesignVAE,
    VAEConfig,
    gaussian_kl,
    iwae,
    log_likelihood,
    log_weights,
)
from topovae.models._likelihood import log_px_given_z

N, Q, SIGMA = 6, 2, 0.3


@pytest.fixture(scope="module")
def synthetic():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(N, Q))
    b = rng.normal(size=N)
    x = rng.normal(size=(20_000, Q)) @ w.T + b + SIGMA * rng.normal(size=(20_000, N))
    return w, b, x


def test_ppca_fit_is_the_closed_form_and_recovers_a_known_model(synthetic):
    w, b, x = synthetic
    ppca = PPCA.fit(x, Q)
    # the closed form from the covariance's eigen-decomposition (another route than the SVD)
    lam, u = np.linalg.eigh(np.cov(x.T, bias=True))
    lam, u = lam[::-1], u[:, ::-1]
    sigma2 = lam[Q:].mean()
    wwt = u[:, :Q] @ np.diag(lam[:Q] - sigma2) @ u[:, :Q].T
    assert ppca.sigma2 == pytest.approx(sigma2, rel=1e-10)
    np.testing.assert_allclose(ppca.W @ ppca.W.T, wwt, atol=1e-10)
    np.testing.assert_allclose(ppca.mean, x.mean(0), atol=1e-12)
    # and it is the generating model, up to a rotation of z, within the sampling error
    assert ppca.sigma2 == pytest.approx(SIGMA**2, rel=0.05)
    np.testing.assert_allclose(ppca.W @ ppca.W.T, w @ w.T, atol=0.1 * np.abs(w @ w.T).max())
    np.testing.assert_allclose(ppca.mean, b, atol=0.05)


def test_ppca_log_likelihood_and_posterior_are_the_exact_gaussian_ones(synthetic):
    _, _, x = synthetic
    ppca = PPCA.fit(x, Q)
    c = ppca.covariance
    rows = x[:50]
    exact = multivariate_normal(ppca.mean, c).logpdf(rows)
    np.testing.assert_allclose(ppca.log_likelihood(rows), exact, rtol=1e-10)
    # p(z | x) of the joint Gaussian [z; x]: cov(z, x) = W^T, cov(x) = C
    mean, cov = ppca.posterior(rows)
    gain = ppca.W.T @ np.linalg.inv(c)
    np.testing.assert_allclose(mean, (rows - ppca.mean) @ gain.T, atol=1e-10)
    np.testing.assert_allclose(cov, np.eye(Q) - gain @ ppca.W, atol=1e-10)
    # the ML fit is at least as likely on its data as the generating model
    assert (
        ppca.log_likelihood(x).mean()
        >= multivariate_normal(synthetic[1], synthetic[0] @ synthetic[0].T + SIGMA**2 * np.eye(N))
        .logpdf(x)
        .mean()
    )
    with pytest.raises(ConfigError, match="q must be"):
        PPCA.fit(x, N)
    with pytest.raises(ConfigError, match="columns"):
        ppca.log_likelihood(rows[:, :3])


def ppca_log_weights(ppca, x, k, rng, shift=0.0, inflate=1.0):
    """(k, B) log p(x|z) + log p(z) - log q(z) for PPCA with q the exact posterior, its mean
    moved by ``shift`` posterior standard deviations and its covariance scaled by ``inflate``."""
    mean, cov = ppca.posterior(x)
    mean, cov = mean + shift * np.sqrt(np.diag(cov)), cov * inflate
    chol = np.linalg.cholesky(cov)
    z = mean + rng.standard_normal((k, *mean.shape)) @ chol.T  # (k, B, Q)
    resid = x - ppca.decode(z.reshape(-1, Q)).reshape(k, -1, N)
    lpx = -0.5 * (N * np.log(2 * np.pi * ppca.sigma2) + (resid**2).sum(-1) / ppca.sigma2)
    lpz = -0.5 * (Q * np.log(2 * np.pi) + (z**2).sum(-1))
    d = np.linalg.solve(chol, (z - mean)[..., None])[..., 0]  # whitened by q's covariance
    lq = -0.5 * (Q * np.log(2 * np.pi) + 2 * np.log(np.diag(chol)).sum() + (d**2).sum(-1))
    return torch.from_numpy(lpx + lpz - lq)


def test_iwae_on_ppca_is_exact_with_the_true_posterior_and_converges_with_a_wrong_one(synthetic):
    _, _, x = synthetic
    ppca = PPCA.fit(x, Q)
    rows = x[:4]
    exact = ppca.log_likelihood(rows)
    rng = np.random.default_rng(1)
    for k in (1, 7):  # every weight is p(x): no variance at all
        np.testing.assert_allclose(iwae(ppca_log_weights(ppca, rows, k, rng)), exact, rtol=1e-9)
    estimates = {}
    for k in (1, 10, 100, 5000):
        runs = [iwae(ppca_log_weights(ppca, rows, k, rng, shift=1.0, inflate=2.0))
                for _ in range(300 if k < 5000 else 2)]  # fmt: skip
        estimates[k] = torch.stack(runs).mean(0).numpy()
    assert np.all(estimates[1] < estimates[10]) and np.all(estimates[10] < estimates[100])
    assert np.all(estimates[100] <= exact + 0.01)
    np.testing.assert_allclose(estimates[5000], exact, atol=0.02)


@pytest.fixture(scope="module")
def tiny_cvae():
    torch.manual_seed(0)
    cfg = VAEConfig(kind="cvae", height=8, width=8, cond_channels=7, latent_dim=3,
                    base_width=4, depth=2, prior="dependent")  # fmt: skip
    model = DesignVAE(cfg).eval()
    with torch.no_grad():  # a prior p(z | c) other than N(0, I)
        model.prior_net[-1].bias.normal_(0, 0.5)
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(3, 1, 8, 8, generator=g) > 0.5).float()
    c = torch.rand(3, 7, 8, 8, generator=g)
    return model, x, c


def test_iwae_with_one_sample_is_the_elbo_on_average(tiny_cvae):
    model, x, c = tiny_cvae
    k = 20_000
    w = log_weights(model, x, c, k=k, generator=torch.Generator().manual_seed(1))  # L_1 draws
    with torch.no_grad():  # the ELBO with the closed-form KL, by its own sampling
        mu, logvar = model.encode(x, c)
        pmu, plogvar = model.prior(c)
        kl = gaussian_kl(mu, logvar, pmu, plogvar).sum(1)
        g = torch.Generator().manual_seed(2)
        z = mu + torch.randn((k, *mu.shape), generator=g) * torch.exp(0.5 * logvar)
        logits = model.decode(z.reshape(-1, 3), c.repeat(k, 1, 1, 1))
        lpx = log_px_given_z("bernoulli", logits, x.repeat(k, 1, 1, 1)).view(k, -1)
    elbo = lpx.mean(0) - kl
    se = torch.sqrt(w.var(0) / k + lpx.var(0) / k)
    assert torch.all((w.mean(0) - elbo).abs() < 4 * se), (w.mean(0), elbo, se)


def test_iwae_grows_with_k_and_reports_per_design(tiny_cvae):
    model, x, c = tiny_cvae
    g = torch.Generator().manual_seed(3)
    mean = {k: torch.stack([log_likelihood(model, x, c, k=k, generator=g) for _ in range(30)])
            .mean(0) for k in (1, 10, 100)}  # fmt: skip
    assert mean[1].shape == (3,)
    assert torch.all(mean[1] < mean[10]) and torch.all(mean[10] < mean[100])
    with pytest.raises(ConfigError, match="k must be"):
        log_likelihood(model, x, c, k=0)


def _train_linear_vae(mu, sigma, decoder_var, encoder_logvar=None, n=50_000, seed=0):
    """The lecture notes' linear VAE on x ~ N(mu, sigma^2): q(z | x) = N(a x + b, v_q),
    p(z) = N(0, 1), p(x | z) = N(c z + d, decoder_var(c)), trained on the reparameterised ELBO
    (the model's `gaussian_kl`) of n data points with fixed noise (common random numbers, so that
    L-BFGS sees one smooth objective); v_q is 1 when ``encoder_logvar`` is None, else learned
    from that start. Returns the fitted (a, b, c, d)."""
    g = torch.Generator().manual_seed(seed)
    x = mu + sigma * torch.randn(n, 1, generator=g, dtype=torch.float64)
    eps = torch.randn(n, 1, generator=g, dtype=torch.float64)
    start = [0.1, 0.0, 1.0, 0.0] + ([] if encoder_logvar is None else [encoder_logvar])
    theta = torch.tensor(start, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([theta], max_iter=2000, tolerance_grad=1e-12, tolerance_change=0,
                            line_search_fn="strong_wolfe")  # fmt: skip

    def elbo_loss():
        opt.zero_grad()
        a, b, c, d = theta[:4]
        m = a * x + b
        logvar = torch.zeros_like(m) if encoder_logvar is None else theta[4].expand_as(m)
        z = m + torch.exp(0.5 * logvar) * eps
        var = decoder_var(c)
        rec = 0.5 * (torch.log(2 * np.pi * var) + (x - c * z - d).pow(2) / var)
        loss = (rec + gaussian_kl(m, logvar)).mean()
        loss.backward()
        return loss

    opt.step(elbo_loss)
    return theta[:4].detach().numpy()


def test_linear_vae_reaches_the_standardising_encoder_and_its_inverse_decoder():
    """The notes' linear example: with a near-deterministic decoder (variance s^2 = 0.01) and a
    learned encoder variance, the ELBO's optimum is c^2 = sigma^2 - s^2, d = mu, a = c / sigma^2,
    b = -a mu, so a -> 1/sigma, b -> -mu/sigma, c -> sigma, d -> mu as s -> 0: the encoder
    standardises the data and the decoder undoes it."""
    mu, sigma = 3.0, 2.0
    s2 = torch.tensor(0.01, dtype=torch.float64)
    a, b, c, d = _train_linear_vae(mu, sigma, lambda c: s2, encoder_logvar=-2.0)
    np.testing.assert_allclose([a, b, c, d], [1 / sigma, -mu / sigma, sigma, mu], rtol=0.015)


def test_linear_vae_with_unit_encoder_variance_reaches_its_own_stationary_point():
    """As the issue writes it, q(z | x) = N(a x + b, 1) and p(x | z) = N(c z + d, c): the
    expected ELBO over x ~ N(mu, sigma^2) is -1/2 log(2 pi c) - E(x - c(ax + b) - d)^2 / (2c)
    - c/2 - E(ax + b)^2 / 2, stationary at d = mu, b = -a mu, a = 1 / (1 + c) and c minimising
    1/2 log c + c/2 + sigma^2 / (2 c (1 + c)); with the encoder's variance fixed at 1 the
    optimum is not a = 1/sigma, c = sigma (that needs the variances to vanish; test above)."""
    from scipy.optimize import minimize_scalar

    mu, sigma = 3.0, 2.0
    c_star = minimize_scalar(
        lambda c: 0.5 * np.log(c) + c / 2 + sigma**2 / (2 * c * (1 + c)), bounds=(1e-3, 10.0),
        method="bounded",
    ).x  # fmt: skip
    a_star = 1 / (1 + c_star)
    a, b, c, d = _train_linear_vae(mu, sigma, lambda c: c.abs() + 1e-6)
    np.testing.assert_allclose([a, b, c, d], [a_star, -a_star * mu, c_star, mu], rtol=0.015)
