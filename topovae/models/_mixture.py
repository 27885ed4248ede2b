"""`PriorMixture`: a mixture of Gaussians over a conditional model's whitened latent coordinates,
fitted after training to where the model puts the designs of each condition (ex-post density
estimation: Ghosh et al. 2020 fit a Gaussian mixture to an autoencoder's codes; Dai & Wipf 2019's
two-stage VAE fits a second model to the aggregated posterior).

    trainer = Trainer(VAEConfig(kind="cvae", ..., prior_components=6), ...)  # fitted at the end
    fit_prior_mixture(model, train_set, val_set)                              # or by hand

Why: trained on several near-optimal designs per problem, a cvae's decoder makes each of a
held-out problem's alternatives from its posterior, but the Gaussian prior p(z | c) spreads its
mass unevenly over them (`benchmarks/bench_coverage.py --model`), so k prior samples miss the
less stiff ones. The mixture p(u | c) = sum_k pi_k(c) N(m_k(c), diag s_k(c)^2), on the prior
network's hidden features, is fitted by maximum likelihood to draws u ~ q(u | x, c) of the
training designs under every flip and quarter turn of the grid (the model was trained on them;
eight times the conditions generalise better to new problems), with early stopping on the
validation split's (it overfits a few hundred problems within a few hundred steps). It only
changes where prior samples are drawn: `DesignVAE.prior_draws` maps standard normal draws to
draws of the mixture, with the Gaussian prior itself as one more component of weight
`PLAIN_SHARE`, spread over the components systematically, in the same whitened coordinates,
so u = 0 stays the first design and every workflow that walks the latent space
(interpolate, traverse, search, map) is unchanged. The model's ELBO and likelihood stay those of
its Gaussian prior. Before fitting, every component is N(0, I) with equal weight: the same
distribution as the plain prior.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from ._config import ConfigError
from ._fit import design_batches, fit_early_stopped

LOG_SCALE = (-4.0, 2.0)  # component scales within e^-4 .. e^2 of the prior's unit scale
# The share of prior draws from the Gaussian prior itself, the one the decoder was trained and
# judged on (a defensive mixture: Hesterberg 1995). On the alternatives file, with the draws
# spread systematically, it kept a median 3 distinct designs within 10 % on five sampling seeds
# out of five (the fitted mixture alone: 2-3) and the coverage (docs/architecture.md).
PLAIN_SHARE = 0.5


class PriorMixture(nn.Module):
    """Features (B, F) -> mixture logits (B, K), means (B, K, D) and log-scales (B, K, D)."""

    def __init__(self, features: int, dim: int, components: int, hidden: int = 64) -> None:
        super().__init__()
        self.dim, self.components = dim, components
        self.net = nn.Sequential(
            nn.Linear(features, hidden), nn.SiLU(), nn.Linear(hidden, components * (1 + 2 * dim))
        )
        nn.init.zeros_(self.net[-1].weight)  # every component N(0, I), equal weights
        nn.init.zeros_(self.net[-1].bias)
        self.requires_grad_(False)  # not trained with the model: `fit_prior_mixture` fits it

    def forward(self, h: torch.Tensor):
        k, d = self.components, self.dim
        out = self.net(h)
        logits = out[:, :k]
        means = out[:, k : k + k * d].view(-1, k, d)
        log_scales = out[:, k + k * d :].view(-1, k, d).clamp(*LOG_SCALE)
        return logits, means, log_scales

    def log_prob(self, u: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """log p(u | features) (B,) of whitened u (B, D)."""
        logits, means, log_scales = self(h)
        z = (u[:, None] - means) * torch.exp(-log_scales)
        per = -0.5 * z.pow(2).sum(-1) - log_scales.sum(-1) - 0.5 * self.dim * math.log(2 * math.pi)
        return torch.logsumexp(torch.log_softmax(logits, dim=1) + per, dim=1)

    def draws(self, eps: torch.Tensor, h: torch.Tensor, generator=None) -> torch.Tensor:
        """n draws (n, D) for one condition (features ``h`` (1, F) on the model's device) from
        standard normal ``eps`` (n, D, on the CPU), each ``eps`` placed in a component, with
        the plain prior N(0, I) as one more component of weight `PLAIN_SHARE` and the fitted
        ones sharing the rest by their weights. The n draws are spread over the components
        systematically (n evenly spaced points, one random offset, on their cumulative
        weights: each component gets its share of the draws to within one) and shuffled,
        from ``generator`` (a CPU one)."""
        if h.shape[0] != 1:
            raise ConfigError(f"draws are for one condition: features (1, F), got {tuple(h.shape)}")
        logits, means, log_scales = (t[0].float().cpu() for t in self(h))
        n = eps.shape[0]
        weights = torch.cat([torch.tensor([PLAIN_SHARE]), (1 - PLAIN_SHARE) * logits.softmax(0)])
        points = (torch.arange(n) + torch.rand((), generator=generator)) / n
        pick = torch.searchsorted(weights.cumsum(0), points, right=True).clamp(max=self.components)
        pick = pick[torch.randperm(n, generator=generator)]
        fitted = (pick - 1).clamp(min=0)
        out = means[fitted] + torch.exp(log_scales[fitted]) * eps.float()
        return torch.where((pick == 0)[:, None], eps.float(), out)


@torch.no_grad()
def _whitened_draws(model, dataset, draws: int, generator: torch.Generator, batch: int = 256,
                    symmetries: bool = True):  # fmt: skip
    """(features (n, F), whitened posterior draws (draws, n, D)) of every design of ``dataset``
    (with ``symmetries``, under every flip and quarter turn of the grid too, when the dataset
    names its condition channels: the model was trained on them)."""
    dim = model.config.latent_dim
    device = next(model.parameters()).device
    hs, us = [], []
    for x, c in design_batches(dataset, device, symmetries, batch):
        feats = model.condition_features(c)
        eps = torch.randn((draws, len(x), dim), generator=generator).to(device)
        z = model.posterior_sample(x, c, feats, eps)[0].reshape(-1, dim)
        cr = c.repeat(draws, 1, 1, 1)
        u = model.whiten(z, cr, [f.repeat(draws, 1, 1, 1) for f in feats])
        hs.append(model.prior_features(feats).cpu())
        us.append(u.view(draws, len(x), dim).cpu())
    return torch.cat(hs), torch.cat(us, dim=1)


def fit_prior_mixture(
    model, train_set, val_set, *, draws: int = 8, steps: int = 1000, lr: float = 1e-3,
    weight_decay: float = 1e-3, batch_size: int = 256, every: int = 50, seed: int = 0,
    symmetries: bool = True,
) -> dict[str, Any]:  # fmt: skip
    """Fit ``model.prior_mixture`` (module docstring) by Adam on ``draws`` posterior draws of
    each design of ``train_set``, keeping the parameters with the best mean log-density of the
    ``val_set`` draws (checked every ``every`` steps). Returns the validation log-densities per
    design (the plain prior's, the mixture's) and the step kept."""
    mixture = getattr(model, "prior_mixture", None)
    if mixture is None:
        raise ConfigError("this model has no prior mixture (VAEConfig.prior_components = 0)")
    if len(train_set) == 0 or len(val_set) == 0:
        raise ConfigError("fitting the prior mixture needs designs in the train and val splits")
    g = torch.Generator().manual_seed(seed)
    was_training = model.training
    model.eval()
    h, u = _whitened_draws(model, train_set, draws, g, symmetries=symmetries)
    hv, uv = _whitened_draws(model, val_set, draws, g, symmetries=False)
    model.train(was_training)
    mixture.cpu()
    hv, uv = hv.repeat(draws, 1), uv.reshape(-1, uv.shape[-1])
    u = u.reshape(-1, u.shape[-1])
    h = h.repeat(draws, 1)
    plain = float((-0.5 * uv.pow(2).sum(1) - 0.5 * uv.shape[1] * math.log(2 * math.pi)).mean())
    loss, step = fit_early_stopped(
        mixture, lambda pick: -mixture.log_prob(u[pick], h[pick]).mean(),
        lambda: -mixture.log_prob(uv, hv).mean(), len(u), g, steps=steps, lr=lr,
        weight_decay=weight_decay, batch_size=batch_size, every=every,
    )  # fmt: skip
    mixture.to(next(model.parameters()).device)
    return {"val_log_density_plain": plain, "val_log_density": -loss, "step": step}
