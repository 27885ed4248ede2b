"""Probabilistic PCA: the linear latent-variable model of designs, fitted in closed form.

    x = W z + b + eps,   z ~ N(0, I_q),   eps ~ N(0, sigma^2 I_n)

so p(x) = N(b, C) with C = W W^T + sigma^2 I. The maximum-likelihood fit (Tipping & Bishop 1999)
from the sample mean b and the eigen-decomposition S = U diag(lambda) U^T of the sample
covariance: sigma^2 = the mean of the n - q smallest eigenvalues, W = U_q (Lambda_q - sigma^2
I)^(1/2) (up to a rotation of z). The posterior is exact: p(z | x) = N(M^-1 W^T (x - b),
sigma^2 M^-1) with M = W^T W + sigma^2 I_q. So is the log-likelihood, which makes PPCA the
yardstick of the estimates of log p(x) (`topovae.models.log_likelihood`).

    ppca = PPCA.fit(designs.reshape(n, -1), q=16)     # (N, n) float64 array
    ppca.log_likelihood(x)                             # (B,) nats, exact
    mean, cov = ppca.posterior(x)                      # p(z | x)
    ppca.sample(8, np.random.default_rng(0))           # designs, (8, n)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ._config import ConfigError, VAEConfig
from ._vae import DesignVAE

LOG_2PI = float(np.log(2 * np.pi))


@dataclass(frozen=True)
class PPCA:
    """A fitted model: ``W`` (n, q), ``mean`` b (n,), noise variance ``sigma2``."""

    W: np.ndarray
    mean: np.ndarray
    sigma2: float

    @classmethod
    def fit(cls, data, q: int) -> PPCA:
        """The maximum-likelihood PPCA of ``data`` (N, n) with ``q`` latent dimensions."""
        x = np.asarray(data, dtype=np.float64)
        if x.ndim != 2 or not np.isfinite(x).all():
            raise ConfigError(f"data must be a finite (N, n) array, got shape {x.shape}")
        n_samples, n = x.shape
        if isinstance(q, bool) or not isinstance(q, int | np.integer) or not 1 <= q < n:
            raise ConfigError(
                f"q must be an integer in 1..{n - 1} (below the dimension), got {q!r}"
            )
        if n_samples < 2:
            raise ConfigError(f"data must hold at least 2 samples, got {n_samples}")
        mean = x.mean(0)
        centred = x - mean
        # the eigenvalues of S = X^T X / N from the thin SVD of X (N may be below n)
        _, s, vt = np.linalg.svd(centred, full_matrices=False)
        lam = np.zeros(n)
        lam[: s.size] = s**2 / n_samples
        sigma2 = float(lam[q:].mean())
        if sigma2 <= 0:
            raise ConfigError(f"the data span at most {q} dimensions: no noise variance is left")
        scale = np.sqrt(np.maximum(lam[:q] - sigma2, 0.0))
        return cls(W=vt[:q].T * scale, mean=mean, sigma2=sigma2)

    @property
    def latent_dim(self) -> int:
        return self.W.shape[1]

    @property
    def covariance(self) -> np.ndarray:
        """C = W W^T + sigma^2 I, (n, n)."""
        return self.W @ self.W.T + self.sigma2 * np.eye(self.W.shape[0])

    def _x(self, x) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        x = x[None] if x.ndim == 1 else x
        if x.ndim != 2 or x.shape[1] != self.W.shape[0]:
            raise ConfigError(f"x must have {self.W.shape[0]} columns, got shape {x.shape}")
        return x

    def log_likelihood(self, x) -> np.ndarray:
        """Exact log p(x) per row of ``x`` (B, n), in nats (via the q x q matrix M: the
        Woodbury identity and the matrix determinant lemma, no n x n inverse)."""
        x = self._x(x) - self.mean
        n, q = self.W.shape
        m = self.W.T @ self.W + self.sigma2 * np.eye(q)
        chol = np.linalg.cholesky(m)
        proj = np.linalg.solve(chol, self.W.T @ x.T)  # L^-1 W^T (x - b), (q, B)
        quad = ((x**2).sum(1) - (proj**2).sum(0)) / self.sigma2
        logdet = (n - q) * np.log(self.sigma2) + 2 * np.log(np.diag(chol)).sum()
        return -0.5 * (n * LOG_2PI + logdet + quad)

    def posterior(self, x) -> tuple[np.ndarray, np.ndarray]:
        """p(z | x): the means (B, q) and the covariance (q, q), the same for every x."""
        x = self._x(x) - self.mean
        m_inv = np.linalg.inv(self.W.T @ self.W + self.sigma2 * np.eye(self.latent_dim))
        return x @ self.W @ m_inv, self.sigma2 * m_inv

    def decode(self, z) -> np.ndarray:
        """The mean W z + b of p(x | z) per row of ``z`` (B, q)."""
        z = np.asarray(z, dtype=np.float64)
        z = z[None] if z.ndim == 1 else z
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise ConfigError(f"z must have {self.latent_dim} columns, got shape {z.shape}")
        return z @ self.W.T + self.mean

    def sample(self, n: int, rng: np.random.Generator, noise: bool = False) -> np.ndarray:
        """``n`` draws: decoded prior samples W z + b (with ``noise``, plus eps)."""
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"rng must be a numpy Generator, got {type(rng).__name__}")
        x = self.decode(rng.standard_normal((n, self.latent_dim)))
        if noise:
            x = x + np.sqrt(self.sigma2) * rng.standard_normal(x.shape)
        return x


class PPCAModel(DesignVAE):
    """A `PPCA` fit as a design model (kind "ppca"): ``train --model ppca`` fits it in closed
    form on the train split (`fit_ppca`), `load` rebuilds it and every workflow uses it as it
    uses a VAE. Unconditional, prior N(0, I) (so whitened coordinates are z itself), the exact
    posterior p(z | x) as `encode` (its covariance is diagonal: the columns of the maximum-
    likelihood W are orthogonal), and the decoder mean W z + b clipped into (0, 1) as
    densities (`decode` returns their logits). `exact_log_likelihood` is log p(x), which
    `evaluate --nll` reports instead of an estimate."""

    closed_form = True

    def __init__(self, config: VAEConfig) -> None:
        if not isinstance(config, VAEConfig):
            raise TypeError(f"config must be a VAEConfig, got {type(config).__name__}")
        nn.Module.__init__(self)  # none of the networks: three tensors, fitted in closed form
        self.config = config
        n = config.in_channels * config.height * config.width
        frozen = {"requires_grad": False}
        self.W = nn.Parameter(torch.zeros(n, config.latent_dim, dtype=torch.float64), **frozen)
        self.mean = nn.Parameter(torch.full((n,), 0.5, dtype=torch.float64), **frozen)
        self.sigma2 = nn.Parameter(torch.ones((), dtype=torch.float64), **frozen)

    @classmethod
    def from_fit(cls, config: VAEConfig, fit: PPCA) -> PPCAModel:
        model = cls(config)
        with torch.no_grad():
            model.W.copy_(torch.as_tensor(fit.W))
            model.mean.copy_(torch.as_tensor(fit.mean))
            model.sigma2.fill_(fit.sigma2)
        return model

    @classmethod
    def fitted(cls, config: VAEConfig, train_set) -> PPCAModel:
        """`fit_ppca`: the closed-form fit that ``train`` runs instead of training."""
        return fit_ppca(config, train_set)

    @property
    def fit(self) -> PPCA:
        """The `PPCA` these tensors hold (numpy, float64)."""
        as_np = {k: t.detach().cpu().double().numpy() for k, t in
                 (("W", self.W), ("mean", self.mean))}  # fmt: skip
        return PPCA(W=as_np["W"], mean=as_np["mean"], sigma2=float(self.sigma2))

    def condition_features(self, c):
        return None

    def encode(self, x: torch.Tensor, c: torch.Tensor | None = None, feats=None):
        """The exact posterior p(z | x): means (B, q) and log-variances (B, q)."""
        self._check(x, c)
        W = self.W.to(x.device)
        q = self.config.latent_dim
        m = W.T @ W + self.sigma2 * torch.eye(q, dtype=W.dtype, device=W.device)
        centred = x.flatten(1).to(W.dtype) - self.mean
        mu = torch.linalg.solve(m, W.T @ centred.T).T
        var = self.sigma2 * torch.diagonal(torch.linalg.inv(m))
        return mu.to(x.dtype), torch.log(var).expand(x.shape[0], q).to(x.dtype)

    def decode(self, z: torch.Tensor, c: torch.Tensor | None = None, feats=None) -> torch.Tensor:
        """Logits (B, Cin, H, W) of the decoder mean W z + b, clipped into [1e-4, 1 - 1e-4]."""
        self._check(None, c, n=z.shape[0])
        cfg = self.config
        x = (z.to(self.W.dtype) @ self.W.T + self.mean).clamp(1e-4, 1 - 1e-4)
        return torch.logit(x).view(z.shape[0], cfg.in_channels, cfg.height, cfg.width).to(z.dtype)

    def exact_log_likelihood(self, x: torch.Tensor) -> torch.Tensor:
        """log p(x) (B,) in nats of designs x (B, Cin, H, W): the Gaussian of `PPCA`."""
        self._check(x, None)
        return torch.as_tensor(self.fit.log_likelihood(x.flatten(1).double().cpu().numpy()))


def fit_ppca(config: VAEConfig, train_set) -> PPCAModel:
    """The maximum-likelihood PPCA of ``config.latent_dim`` dimensions of the designs of
    ``train_set`` (items with a "density" (Cin, H, W))."""
    if len(train_set) <= config.latent_dim:
        raise ConfigError(
            f"a ppca of latent_dim {config.latent_dim} needs more training designs than "
            f"that; the train split holds {len(train_set)}"
        )
    x = np.stack([train_set[i]["density"].double().numpy().ravel() for i in range(len(train_set))])
    return PPCAModel.from_fit(config, PPCA.fit(x, config.latent_dim))
