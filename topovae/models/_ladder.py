"""`LadderVAE` (kind "hvae"): a conditional VAE with two stochastic layers and top-down
inference (Sønderby et al. 2016, the ladder VAE), on the cvae's U-Net backbone.

    model = LadderVAE(VAEConfig(kind="hvae", height=32, width=32, cond_channels=9,
                                latent_dim=16, top_dim=8))

The latent z = [z2, z1] has a top layer z2 (``top_dim`` dimensions) and a bottom layer z1 (the
other ``latent_dim - top_dim``):

    generative   p(z2 | c) = N(mu2(c), sigma2(c)^2)            the cvae's prior network
                 p(z1 | z2, c) = N(mu1(z2, c), sigma1(z2, c)^2)  a top-down network
                 p(x | z1, z2, c)                               the cvae's decoder on [z2, z1]
    inference    the bottom-up pass gives (mu^2, sigma^2) from the encoder's last (coarsest)
                 stage and (mu^1, sigma^1) from the stage before it;
                 q(z2 | x, c) = N(mu^2, sigma^2);
                 q(z1 | x, z2, c) = the precision-weighted product of N(mu^1, sigma^1) and the
                 top-down prior p(z1 | z2, c): 1/s^2 = 1/sigma^1^2 + 1/sigma1^2,
                 m = s^2 (mu^1 / sigma^1^2 + mu1 / sigma1^2) (Sønderby et al.'s eq. 17-18)

The KL of each layer is the closed-form Gaussian one given the sampled z2 above it; both sit in
the same (mu, logvar, prior_mu, prior_logvar) vectors a `DesignVAE` returns, so the loss, its
KL warm-up (every layer's KL ramps together, as in the paper), free bits and the physics term
are the cvae's. `latent_layers` gives the layers' sizes; training logs the KL of each.

Every workflow works in whitened coordinates u = [u2, u1]: z2 = mu2(c) + sigma2(c) u2, then
z1 = mu1(z2, c) + sigma1(z2, c) u1. u ~ N(0, I) is an exact sample of the hierarchical prior and
u = 0 its "prior mean" design (the top mean, then the bottom mean under it).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ._config import VAEConfig
from ._vae import DesignVAE, _act, _zero_linear


class LadderVAE(DesignVAE):
    """See the module docstring; built entirely from a `VAEConfig` of kind "hvae"."""

    def __init__(self, config: VAEConfig) -> None:
        super().__init__(config)  # its prior network and encoder head give the top layer
        cfg = self.config
        d2, d1 = self.latent_layers
        below = self._widths[-2] * self.bottleneck[0] * self.bottleneck[1]
        self.to_lower = nn.Linear(below, 2 * d1)  # bottom layer, from the stage before it
        self.top_down = nn.Sequential(
            nn.Linear(d2 + self._flat, 4 * d1), _act(cfg.activation), _zero_linear(4 * d1, 2 * d1)
        )
        self.to(memory_format=torch.channels_last)

    @property
    def latent_layers(self) -> tuple[int, int]:
        """(top, bottom) latent sizes."""
        return self.config.top_layer_dim, self.config.latent_dim - self.config.top_layer_dim

    # -- the two layers --------------------------------------------------------------------------

    def _bottom_prior(self, z2: torch.Tensor, feats):
        """p(z1 | z2, c): (mu, logvar), each (B, bottom)."""
        h = torch.cat([z2, feats[-1].flatten(1).to(z2.dtype)], dim=1)
        mu, logvar = self.top_down(h).chunk(2, dim=1)
        return mu, logvar.clamp(-10.0, 5.0)

    def _bottom_up(self, x: torch.Tensor, feats):
        """(mu^2, logvar^2, mu^1, logvar^1) of the bottom-up pass."""
        h = self._run_pyramid(self.encoder, self._pad(x), feats)
        mu2, logvar2 = self.to_latent(h[-1].flatten(1)).chunk(2, dim=1)
        below = F.avg_pool2d(h[-2], 2).flatten(1)
        mu1, logvar1 = self.to_lower(below).chunk(2, dim=1)
        return mu2, logvar2.clamp(-30.0, 20.0), mu1, logvar1.clamp(-30.0, 20.0)

    @staticmethod
    def _merge(mu_hat, logvar_hat, mu_p, logvar_p):
        """The precision-weighted posterior of the bottom layer."""
        logvar = -torch.logaddexp(-logvar_hat, -logvar_p)
        mu = (mu_hat * torch.exp(-logvar_hat) + mu_p * torch.exp(-logvar_p)) * torch.exp(logvar)
        return mu, logvar

    def _posterior(self, bottom_up, feats, eps=None):
        """z2 (sampled with ``eps``'s top part, else the posterior mean), then the bottom layer's
        posterior and prior under it: (mu, logvar, prior_mu, prior_logvar) over [z2, z1]."""
        d2 = self.latent_layers[0]
        mu2, logvar2, mu1h, logvar1h = bottom_up
        z2 = mu2 if eps is None else mu2 + eps[:, :d2] * torch.exp(0.5 * logvar2)
        pmu2, plogvar2 = self._dependent_prior(feats)
        pmu1, plogvar1 = self._bottom_prior(z2, feats)
        mu1, logvar1 = self._merge(mu1h, logvar1h, pmu1, plogvar1)
        cat = torch.cat
        return (cat([mu2, mu1], 1), cat([logvar2, logvar1], 1), cat([pmu2, pmu1], 1),
                cat([plogvar2, plogvar1], 1))  # fmt: skip

    # -- the DesignVAE interface -------------------------------------------------------------------
    def prior(self, c: torch.Tensor | None = None, n: int = 1, feats=None):
        """(mu, logvar) of p(z | c) over [z2, z1], the bottom layer's under the top layer's
        mean (the prior is not Gaussian as a whole: `to_latent_coordinates` samples it)."""
        c = self._check(None, c, n=n)
        feats = feats if feats is not None else self.condition_features(c)
        mu2, logvar2 = self._dependent_prior(feats)
        mu1, logvar1 = self._bottom_prior(mu2, feats)
        return torch.cat([mu2, mu1], 1), torch.cat([logvar2, logvar1], 1)

    def encode(self, x: torch.Tensor, c: torch.Tensor | None = None, feats=None):
        """Posterior (mu, logvar) over [z2, z1], the bottom layer's under z2 = its mean."""
        c = self._check(x, c)
        feats = feats if feats is not None else self.condition_features(c)
        mu, logvar, _, _ = self._posterior(self._bottom_up(x, feats), feats)
        return mu, logvar

    def latent_distributions(self, x, c=None, feats=None):
        """As `DesignVAE.latent_distributions`, the bottom layer's under z2 = its mean."""
        c = self._check(x, c)
        feats = feats if feats is not None else self.condition_features(c)
        return self._posterior(self._bottom_up(x, feats), feats)

    def posterior_sample(self, x, c, feats, eps):
        """As `DesignVAE.posterior_sample`; the bottom layer's posterior and prior are those
        under each sample's own z2. ``eps`` (m, B, D): m samples of each design, the bottom-up
        pass run once."""
        feats = feats if feats is not None else self.condition_features(self._check(x, c))
        bottom_up = self._bottom_up(x, feats)
        shape = eps.shape
        if eps.dim() == 3:
            m = shape[0]
            bottom_up = tuple(t.repeat(m, 1) for t in bottom_up)
            feats = [f.repeat(m, 1, 1, 1) for f in feats]
            eps = eps.reshape(-1, shape[-1])
        mu, logvar, pmu, plogvar = self._posterior(bottom_up, feats, eps)
        z = mu + eps * torch.exp(0.5 * logvar)
        return tuple(t.reshape(shape) for t in (z, mu, logvar, pmu, plogvar))

    def to_latent_coordinates(self, u: torch.Tensor, c=None, feats=None) -> torch.Tensor:
        """Whitened u = [u2, u1] -> z = [z2, z1], layer by layer (module docstring)."""
        c = self._check(None, c, n=u.shape[0])
        feats = feats if feats is not None else self.condition_features(c)
        d2 = self.latent_layers[0]
        mu2, logvar2 = self._dependent_prior(feats)
        z2 = mu2 + torch.exp(0.5 * logvar2) * u[:, :d2]
        mu1, logvar1 = self._bottom_prior(z2, feats)
        return torch.cat([z2, mu1 + torch.exp(0.5 * logvar1) * u[:, d2:]], dim=1)

    def whiten(self, z: torch.Tensor, c=None, feats=None) -> torch.Tensor:
        """z = [z2, z1] -> whitened u; inverse of `to_latent_coordinates`."""
        c = self._check(None, c, n=z.shape[0])
        feats = feats if feats is not None else self.condition_features(c)
        d2 = self.latent_layers[0]
        mu2, logvar2 = self._dependent_prior(feats)
        mu1, logvar1 = self._bottom_prior(z[:, :d2], feats)
        return torch.cat([(z[:, :d2] - mu2) * torch.exp(-0.5 * logvar2),
                          (z[:, d2:] - mu1) * torch.exp(-0.5 * logvar1)], dim=1)  # fmt: skip
