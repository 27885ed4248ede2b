"""The marginal likelihood of a design under a trained VAE: the importance-weighted estimate.

The ELBO bounds log p(x | c) from below. With K samples z_k ~ q(z | x, c),

    log p(x | c) >= L_K = log (1/K) sum_k p(x | z_k, c) p(z_k | c) / q(z_k | x, c)

(Burda, Grosse & Salakhutdinov 2016, the IWAE bound): L_1 is the one-sample ELBO, E[L_K] grows
with K, and L_K -> log p(x | c) as K grows. `iwae` takes the log weights; `log_likelihood`
computes them for a `DesignVAE`.

The likelihood is the model's own: Bernoulli, -BCE(logits, x) summed over the elements (for
0/1 designs a probability; for grey densities the cross-entropy the training loss uses), or
Gaussian with unit variance, normalised (-0.5 ||sigmoid(logits) - x||^2 - n/2 log 2 pi).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ._config import ConfigError, check_model

LOG_2PI = math.log(2 * math.pi)


def iwae(log_weights: torch.Tensor) -> torch.Tensor:
    """(K, B) log importance weights -> (B,) the estimate log (1/K) sum_k exp(w_k)."""
    if not isinstance(log_weights, torch.Tensor) or log_weights.ndim != 2:
        raise ConfigError("log_weights must be a (K, B) tensor")
    return torch.logsumexp(log_weights, dim=0) - math.log(log_weights.shape[0])


def _log_normal(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z; mu, diag(exp(logvar))), summed over the last dimension."""
    return -0.5 * (LOG_2PI + logvar + (z - mu).pow(2) * torch.exp(-logvar)).sum(-1)


def log_px_given_z(likelihood: str, logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """log p(x | z) per design (B,) of logits and designs (B, C, H, W)."""
    if likelihood == "bernoulli":
        return -F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)
    n = x[0].numel()
    return -0.5 * (torch.sigmoid(logits) - x).pow(2).flatten(1).sum(1) - 0.5 * n * LOG_2PI


@torch.no_grad()
def log_weights(
    model, x: torch.Tensor, c: torch.Tensor | None = None, k: int = 100,
    generator: torch.Generator | None = None, chunk: int = 1024,
) -> torch.Tensor:  # fmt: skip
    """(k, B) log importance weights log p(x | z, c) + log p(z | c) - log q(z | x, c) with
    z ~ q(z | x, c), for designs x (B, Cin, H, W) [and conditions c]; decoded ``chunk``
    designs at a time."""
    check_model(model)
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= 100_000:
        raise ConfigError(f"k must be an integer in 1..100,000, got {k!r}")
    model = model.eval()
    p = next(model.parameters())
    x = x.to(p.device, p.dtype)
    c = None if c is None else c.to(p.device, p.dtype)
    c = model._check(x, c)
    feats = model.condition_features(c)
    b, d = x.shape[0], model.config.latent_dim
    # every sample's z and its log q - log p at once (the encoder runs once per design; a
    # hierarchical model's posterior and prior depend on the sampled layers)
    eps = torch.randn((k, b, d), generator=generator, device=p.device, dtype=x.dtype)
    z, mu, logvar, pmu, plogvar = model.posterior_sample(x, c, feats, eps)
    log_ratio = _log_normal(z, pmu, plogvar) - _log_normal(z, mu, logvar)  # (k, B)
    out = torch.empty(k, b, device=p.device)
    per = max(1, chunk // b)  # samples of every design decoded together
    for s in range(0, k, per):
        m = min(per, k - s)
        rep = None if c is None else c.repeat(m, 1, 1, 1)
        rep_feats = None if feats is None else [f.repeat(m, 1, 1, 1) for f in feats]
        logits = model.decode(z[s : s + m].reshape(m * b, d), rep, rep_feats).float()
        lpx = log_px_given_z(model.config.likelihood, logits, x.repeat(m, 1, 1, 1).float())
        out[s : s + m] = (lpx.view(m, b) + log_ratio[s : s + m]).float()
    return out


def log_likelihood(
    model, x: torch.Tensor, c: torch.Tensor | None = None, k: int = 100,
    generator: torch.Generator | None = None,
) -> torch.Tensor:  # fmt: skip
    """The IWAE estimate of log p(x | c) per design (B,), in nats, with ``k`` samples."""
    return iwae(log_weights(model, x, c, k, generator))
