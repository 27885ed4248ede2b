"""`DesignVAE`: convolutional VAE / beta-VAE / conditional VAE for density fields.

    model = DesignVAE(VAEConfig(kind="cvae", height=64, width=64, cond_channels=7))
    mu, logvar = model.encode(x, c)            # x (B, 1, H, W) in [0, 1], c (B, Cc, H, W)
    logits = model.decode(z, c)                # (B, 1, H, W)
    designs = model.sample(16, c, generator=torch.Generator().manual_seed(0))   # in [0, 1]

The encoder pads the image to a multiple of 2^depth, halves it ``depth`` times with strided
convolutions and maps the bottleneck to (mu, logvar); the decoder mirrors it with nearest
upsampling and crops back to H x W. A conditional model sees its condition images in the encoder
input and, resized to each resolution, at every decoder stage, so spatial conditions such as
load positions reach the output directly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ._config import ConfigError, VAEConfig


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "group":
        return nn.GroupNorm(min(8, channels), channels)
    return nn.Identity()


def _act(kind: str) -> nn.Module:
    return {"silu": nn.SiLU, "relu": nn.ReLU, "gelu": nn.GELU, "leaky_relu": nn.LeakyReLU}[kind]()


def _conv(cin: int, cout: int, cfg: VAEConfig, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=cfg.norm == "none"),
        _norm(cfg.norm, cout),
        _act(cfg.activation),
    )


class DesignVAE(nn.Module):
    """See the module docstring; built entirely from a `VAEConfig`."""

    def __init__(self, config: VAEConfig) -> None:
        super().__init__()
        self.config = cfg = config
        f = 2**cfg.depth
        self.padded = (-(-cfg.height // f) * f, -(-cfg.width // f) * f)
        self.bottleneck = (self.padded[0] // f, self.padded[1] // f)
        widths = [min(cfg.base_width * 2**k, cfg.max_width) for k in range(cfg.depth + 1)]
        cc = cfg.cond_channels
        # encoder: (B, Cin + Cc, Hp, Wp) -> (B, widths[-1], Hp / 2^depth, Wp / 2^depth)
        enc = [_conv(cfg.in_channels + cc, widths[0], cfg)]
        for k in range(cfg.depth):
            enc += [
                _conv(widths[k], widths[k + 1], cfg, stride=2),
                _conv(widths[k + 1], widths[k + 1], cfg),
            ]
        self.encoder = nn.Sequential(*enc)
        flat = widths[-1] * self.bottleneck[0] * self.bottleneck[1]
        self.to_latent = nn.Linear(flat, 2 * cfg.latent_dim)
        # decoder: z -> (B, widths[-1], bottleneck) -> stages up to (B, widths[0], Hp, Wp)
        self.from_latent = nn.Linear(cfg.latent_dim, flat)
        self.up = nn.ModuleList(
            nn.Sequential(
                _conv(widths[k + 1] + cc, widths[k], cfg), _conv(widths[k], widths[k], cfg)
            )
            for k in reversed(range(cfg.depth))
        )
        self.head = nn.Conv2d(widths[0] + cc, cfg.in_channels, 3, padding=1)
        self._widths = widths

    # -- shapes ------------------------------------------------------------------------------
    def _pad(self, t: torch.Tensor) -> torch.Tensor:
        ph, pw = self.padded[0] - t.shape[-2], self.padded[1] - t.shape[-1]
        return F.pad(t, (0, pw, 0, ph)) if ph or pw else t

    def _check(self, x: torch.Tensor | None, c: torch.Tensor | None, n: int | None = None):
        cfg = self.config
        if x is not None and tuple(x.shape[1:]) != (cfg.in_channels, cfg.height, cfg.width):
            raise ConfigError(
                f"expected designs of shape (B, {cfg.in_channels}, {cfg.height}, {cfg.width}), "
                f"got {tuple(x.shape)}"
            )
        if cfg.conditional:
            if c is None:
                raise ConfigError("this conditional model needs a condition c (B, Cc, H, W)")
            if c.dim() == 3:
                c = c.expand(n if n is not None else x.shape[0], *c.shape)
            if tuple(c.shape[1:]) != (cfg.cond_channels, cfg.height, cfg.width):
                raise ConfigError(
                    f"expected a condition of shape (B, {cfg.cond_channels}, {cfg.height}, "
                    f"{cfg.width}), got {tuple(c.shape)}"
                )
        elif c is not None:
            raise ConfigError(f"a {cfg.kind!r} model takes no condition")
        return c

    # -- the VAE -------------------------------------------------------------------------------
    def encode(self, x: torch.Tensor, c: torch.Tensor | None = None):
        """(B, Cin, H, W) [, (B, Cc, H, W)] -> (mu, logvar), each (B, latent_dim)."""
        c = self._check(x, c)
        h = self._pad(x if c is None else torch.cat([x, c], dim=1))
        h = self.encoder(h).flatten(1)
        mu, logvar = self.to_latent(h).chunk(2, dim=1)
        return mu, logvar.clamp(-30.0, 20.0)

    def decode(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """(B, latent_dim) [, (B, Cc, H, W)] -> logits (B, Cin, H, W)."""
        c = self._check(None, c, n=z.shape[0])
        h = self.from_latent(z).view(z.shape[0], self._widths[-1], *self.bottleneck)
        cp = None if c is None else self._pad(c)
        for stage in self.up:
            h = F.interpolate(h, scale_factor=2, mode="nearest")
            if cp is not None:
                h = torch.cat([h, F.adaptive_avg_pool2d(cp, h.shape[-2:])], dim=1)
            h = stage(h)
        if cp is not None:
            h = torch.cat([h, cp], dim=1)
        return self.head(h)[..., : self.config.height, : self.config.width]

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None, generator=None):
        """Reparameterised pass: (logits, mu, logvar)."""
        mu, logvar = self.encode(x, c)
        eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        z = mu + eps * torch.exp(0.5 * logvar)
        return self.decode(z, c), mu, logvar

    @torch.no_grad()
    def sample(
        self, n: int, c: torch.Tensor | None = None, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """n designs from the prior, densities in [0, 1]: (n, Cin, H, W)."""
        p = next(self.parameters())
        z = torch.randn(n, self.config.latent_dim, generator=generator, device=p.device)
        return torch.sigmoid(self.decode(z.to(p.dtype), c))

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """Decoded posterior means, densities in [0, 1]."""
        mu, _ = self.encode(x, c)
        return torch.sigmoid(self.decode(mu, c))
