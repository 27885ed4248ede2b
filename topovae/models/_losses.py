"""The ELBO of a design VAE as named terms.

For a batch of designs x with posterior q(z|x, c) = N(mu, diag(exp(logvar))) and prior
p(z|c) = N(mu_p, diag(exp(logvar_p))) (mu_p = 0, logvar_p = 0: the independent prior N(0, I)):

    reconstruction = -log p(x|z, c), summed over pixels, averaged over the batch
                     bernoulli: BCE-with-logits; gaussian: 0.5 * sum((sigmoid(logits) - x)^2)
    kl             = KL(q || p) = 0.5 * sum(logvar_p - logvar
                                            + (exp(logvar) + (mu - mu_p)^2) / exp(logvar_p) - 1),
                     batch mean (both forms of the conditional ELBO: Sohn et al. 2015)
    weighted_kl    = beta * w(t) * sum_d max(KL_d, free_bits)           (w: linear KL warm-up)
                     or, with a capacity schedule, gamma * |KL - C(t)|   (Burgess et al. 2018)
    volume         = volume_weight * H * W * mean_b (mean(sigmoid(logits_b)) - vf_b)^2
                     (scaled by the pixel count to weigh like the summed reconstruction)
    total          = reconstruction + weighted_kl + volume

Free bits act per latent dimension on the batch-mean KL (Kingma et al. 2016).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ._config import VAEConfig


def gaussian_kl(
    mu: torch.Tensor,
    logvar: torch.Tensor,
    prior_mu: torch.Tensor | None = None,
    prior_logvar: torch.Tensor | None = None,
) -> torch.Tensor:
    """Closed-form KL(N(mu, exp(logvar)) || N(prior_mu, exp(prior_logvar))) per sample and
    dimension, (B, D); the prior defaults to N(0, 1)."""
    if prior_mu is None:
        return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)
    return 0.5 * (
        prior_logvar - logvar + (logvar.exp() + (mu - prior_mu).pow(2)) * torch.exp(-prior_logvar)
        - 1.0
    )  # fmt: skip


def kl_weight(cfg: VAEConfig, step: int) -> float:
    """beta times the linear warm-up factor at optimisation step ``step``."""
    warm = min(1.0, step / cfg.kl_warmup_steps) if cfg.kl_warmup_steps else 1.0
    return cfg.beta * warm


def loss_terms(
    cfg: VAEConfig,
    logits: torch.Tensor,
    x: torch.Tensor,
    mu: torch.Tensor,
    logvar: torch.Tensor,
    step: int = 0,
    volfrac: torch.Tensor | None = None,
    prior_mu: torch.Tensor | None = None,
    prior_logvar: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """The named terms of the module docstring (scalars) plus "kl_per_dim" (D,)."""
    b = x.shape[0]
    logits = logits.float()
    if cfg.likelihood == "bernoulli":
        rec = F.binary_cross_entropy_with_logits(logits, x, reduction="sum") / b
    else:
        rec = 0.5 * (torch.sigmoid(logits) - x).pow(2).sum() / b
    if prior_mu is not None:
        prior_mu, prior_logvar = prior_mu.float(), prior_logvar.float()
    kl_dim = gaussian_kl(mu.float(), logvar.float(), prior_mu, prior_logvar).mean(0)
    kl = kl_dim.sum()
    kl_fb = kl_dim.clamp(min=cfg.free_bits).sum() if cfg.free_bits > 0 else kl
    if cfg.capacity_max > 0:
        frac = min(1.0, step / cfg.capacity_steps) if cfg.capacity_steps else 1.0
        weighted = cfg.capacity_gamma * (kl_fb - cfg.capacity_max * frac).abs()
    else:
        weighted = kl_weight(cfg, step) * kl_fb
    volume = torch.zeros((), device=x.device)
    if cfg.volume_weight > 0 and volfrac is not None:
        decoded = torch.sigmoid(logits).mean(dim=(1, 2, 3))
        pixels = x.shape[-1] * x.shape[-2]
        volume = cfg.volume_weight * pixels * (decoded - volfrac.float()).pow(2).mean()
    return {
        "reconstruction": rec,
        "kl": kl,
        "weighted_kl": weighted,
        "volume": volume,
        "total": rec + weighted + volume,
        "kl_per_dim": kl_dim.detach(),
    }


def active_units(mu: torch.Tensor, threshold: float = 0.01) -> int:
    """Latent dimensions whose posterior mean varies across the data: Var_x[mu_d] > threshold
    (Burda et al. 2016). ``mu`` is (N, D) over a dataset."""
    return int((mu.float().var(dim=0) > threshold).sum())
