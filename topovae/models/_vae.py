"""`DesignVAE`: VAE / beta-VAE / conditional VAE for density fields, on a U-Net backbone.

    model = DesignVAE(VAEConfig(kind="cvae", height=64, width=64, cond_channels=9))
    out = model(x, c)                          # x (B, 1, H, W) in [0, 1], c (B, Cc, H, W)
    out.logits, out.mu, out.logvar, out.prior_mu, out.prior_logvar
    logits = model.decode_whitened(u, c)       # u (B, D): z = mu(c) + sigma(c) u
    designs = model.sample(16, c, generator=torch.Generator().manual_seed(0))   # in [0, 1]

Two backbones (``config.arch``), both for any H x W (the image is padded to a multiple of
2^depth and the output cropped back):

- ``"unet"`` (the default). A *condition encoder* learns features of the condition images at
  every resolution, after bringing them to comparable scales (`normalise_condition`: load
  components divided by the sample's largest load, full-material fields by their maximum). The
  *decoder* starts from z at the bottleneck, and at every scale concatenates the condition
  features of that scale (U-Net skips) and is modulated by z (FiLM: h * (1 + gamma(z)) +
  beta(z)), so z can change the layout, not only the texture. The *posterior encoder*
  q(z | x, c) sees the design and the condition features of every scale. With the dependent
  prior a *prior network* maps the bottleneck condition features to p(z | c) = N(mu(c),
  sigma(c)^2) (Sohn et al. 2015; Kohl et al. 2018); with the independent prior p(z) = N(0, I).
  An unconditional model (vae, beta-vae) is the same network without the condition path.
- ``"conv"``: the first topovae architecture (checkpoint format 1), kept to load old models and
  as the baseline of `benchmarks/bench_quality.py`: a plain conv encoder/decoder whose decoder
  sees the raw condition images average-pooled to each resolution.

Every workflow works in the whitened coordinates u (z = mu(c) + sigma(c) u, the identity for
the independent prior): u ~ N(0, I) is a prior sample for every problem and u = 0 its prior
mean.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ._config import ConfigError, VAEConfig

# Condition channels in the order topovae's datasets make them (`datasets.BASE_CHANNELS`):
# volume fraction, fx, fy, fixed x, fixed y, passive solid, passive void, then optional
# physical fields (log1p strain energy and von Mises stress of the full-material design).
LOAD_CHANNELS = (1, 2)
FIELD_START = 7
# The groups a partial condition may leave out, as zeros: no well-posed problem has a zero
# volume fraction, no loads or no supports, so an all-zero group means "not given". The
# full-material fields (channels FIELD_START on) depend on both loads and supports and are
# left out with either.
CONDITION_GROUPS = {"volfrac": (0,), "loads": (1, 2), "supports": (3, 4)}


def drop_condition(c: torch.Tensor, groups) -> torch.Tensor:
    """The condition (B, Cc, H, W) or (Cc, H, W) with the named groups (`CONDITION_GROUPS`)
    left out: their channels, and with loads or supports the fields, set to 0."""
    groups = tuple(groups)
    unknown = [g for g in groups if g not in CONDITION_GROUPS]
    if unknown:
        raise ConfigError(
            f"unknown condition group {unknown[0]!r}; choose from: {', '.join(CONDITION_GROUPS)}"
        )
    keep = torch.ones(c.shape[-3], dtype=c.dtype, device=c.device)
    for g in groups:
        keep[list(CONDITION_GROUPS[g])] = 0
        if g != "volfrac":
            keep[FIELD_START:] = 0
    return c * keep[:, None, None]


def given_groups(c: torch.Tensor) -> torch.Tensor:
    """(B, len(CONDITION_GROUPS), H, W) indicator images: 1 where a group is given (not all
    zero), from the condition (B, Cc, H, W) itself."""
    flags = [c[:, list(ch)].abs().amax(dim=(1, 2, 3)) > 0 for ch in CONDITION_GROUPS.values()]
    g = torch.stack(flags, dim=1).to(c.dtype)  # (B, G)
    return g[:, :, None, None].expand(-1, -1, *c.shape[-2:])


class VAEOutput(NamedTuple):
    logits: torch.Tensor  # (B, Cin, H, W)
    mu: torch.Tensor  # (B, D) posterior mean
    logvar: torch.Tensor  # (B, D)
    prior_mu: torch.Tensor  # (B, D) zeros for the independent prior
    prior_logvar: torch.Tensor  # (B, D)
    prior_logits: torch.Tensor | None = None  # (n, Cin, H, W) decodes at the prior mean/samples
    terms: dict[str, torch.Tensor] | None = None  # a family's own loss terms, added to the total
    stats: dict[str, torch.Tensor] | None = None  # and statistics, logged only (`extra_terms`)


def normalise_condition(c: torch.Tensor) -> torch.Tensor:
    """Condition images at comparable scales, (B, Cc, H, W) -> the same shape.

    A load on one node is 1/4 of its magnitude on each of four elements and its magnitude does
    not change the optimal design (compliance is quadratic in it), so the two load channels are
    divided by the sample's largest load component; the fields span orders of magnitude from one
    problem to the next and are divided by their own maximum. Masks and the volume fraction
    are already in [0, 1]."""
    if not isinstance(c, torch.Tensor) or c.ndim != 4:
        what = f"shape {tuple(c.shape)}" if isinstance(c, torch.Tensor) else type(c).__name__
        raise ConfigError(f"conditions must be a (B, Cc, H, W) tensor, got {what}")
    if c.shape[1] <= max(LOAD_CHANNELS):
        return c
    loads = c[:, LOAD_CHANNELS[0] : LOAD_CHANNELS[-1] + 1]
    scale = loads.abs().amax(dim=(1, 2, 3), keepdim=True).clamp_min(1e-12)
    parts = [c[:, : LOAD_CHANNELS[0]], loads / scale, c[:, LOAD_CHANNELS[-1] + 1 : FIELD_START]]
    if c.shape[1] > FIELD_START:
        fields = c[:, FIELD_START:]
        parts.append(fields / fields.amax(dim=(2, 3), keepdim=True).clamp_min(1e-12))
    return torch.cat(parts, dim=1)


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


def _zero_linear(cin: int, cout: int) -> nn.Linear:
    """A linear map that starts at 0: FiLM starts as the identity, the prior as N(0, I)."""
    layer = nn.Linear(cin, cout)
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


class DesignVAE(nn.Module):
    """See the module docstring; built entirely from a `VAEConfig`."""

    # whether decodes are differentiable in the whitened coordinates (gradient latent search)
    continuous_latent = True

    def __init__(self, config: VAEConfig) -> None:
        if not isinstance(config, VAEConfig):
            raise TypeError(f"config must be a VAEConfig, got {type(config).__name__}")
        super().__init__()
        self.config = cfg = config
        f = 2**cfg.depth
        self.padded = (-(-cfg.height // f) * f, -(-cfg.width // f) * f)
        self.bottleneck = (self.padded[0] // f, self.padded[1] // f)
        widths = [min(cfg.base_width * 2**k, cfg.max_width) for k in range(cfg.depth + 1)]
        self._widths = widths
        self._flat = widths[-1] * self.bottleneck[0] * self.bottleneck[1]
        if cfg.arch == "unet":
            self._build_unet(cfg, widths)
        else:
            self._build_conv(cfg, widths)
        # channels-last convolution weights make every convolution (and so every activation)
        # run channels-last, oneDNN's fast layout on the CPU: the demo's training step 1.3x
        # faster on 2 cores (benchmarks/bench_train.py --demo-step)
        self.to(memory_format=torch.channels_last)

    # -- the U-Net backbone ---------------------------------------------------------------------
    def _build_unet(self, cfg: VAEConfig, widths: list[int]) -> None:
        cc, d, depth = cfg.cond_channels, cfg.latent_dim, cfg.depth
        skip = widths if cc else [0] * (depth + 1)  # condition feature channels per scale

        def pyramid(cin: int, extra: list[int]) -> nn.ModuleList:
            """Stage 0 at full resolution, stage k halves the size k times; stage k sees
            ``extra[k]`` more channels (condition features) after its first conv."""
            firsts = [_conv(cin, widths[0], cfg)]
            firsts += [_conv(widths[k - 1], widths[k], cfg, stride=2) for k in range(1, depth + 1)]
            return nn.ModuleList(
                nn.ModuleList([first, _conv(widths[k] + extra[k], widths[k], cfg)])
                for k, first in enumerate(firsts)
            )

        if cc:
            # condition encoder: (B, Cc, Hp, Wp) -> features f_k (B, widths[k], Hp/2^k, Wp/2^k)
            indicators = len(CONDITION_GROUPS) if cfg.partial else 0
            self.cond_encoder = pyramid(cc + indicators, [0] * (depth + 1))
        top = self.latent_layers[0]  # the layer the prior network and the encoder's head give
        if cc and cfg.prior == "dependent":
            self.prior_net = nn.Sequential(
                nn.Flatten(), nn.Linear(self._flat, 4 * top), _act(cfg.activation),
                _zero_linear(4 * top, 2 * top),
            )  # fmt: skip
        if cfg.prior_components:
            from ._mixture import PriorMixture

            self.prior_mixture = PriorMixture(4 * top, d, cfg.prior_components)
        # posterior encoder q(z | x, c): (B, Cin, Hp, Wp) + f_k -> (mu, logvar)
        self.encoder = pyramid(cfg.in_channels, skip)
        self.to_latent = nn.Linear(self._flat, 2 * top)
        # decoder: z -> bottleneck, then up through the scales with skips f_k and FiLM(z)
        self.from_latent = nn.Linear(d, self._flat)
        self.dec_bottom = _conv(widths[depth] + skip[depth], widths[depth], cfg)
        self.film = nn.ModuleList(_zero_linear(d, 2 * widths[k]) for k in range(depth + 1))
        self.up = nn.ModuleList(
            nn.Sequential(
                _conv(widths[k + 1] + skip[k], widths[k], cfg), _conv(widths[k], widths[k], cfg)
            )
            for k in reversed(range(depth))
        )
        self.head = nn.Conv2d(widths[0], cfg.in_channels, 3, padding=1)

    @staticmethod
    def _run_pyramid(stages: nn.ModuleList, h: torch.Tensor, feats=None) -> list[torch.Tensor]:
        out = []
        for k, (first, second) in enumerate(stages):
            h = first(h)
            h = second(h if feats is None else torch.cat([h, feats[k]], dim=1))
            out.append(h)
        return out

    def condition_features(self, c: torch.Tensor | None) -> list[torch.Tensor] | None:
        """Features of the condition at every scale (finest first), or None (unconditional or
        the "conv" backbone). Compute once and pass to `encode` / `decode` / `prior`."""
        if c is None or self.config.arch != "unet":
            return None
        h = normalise_condition(c)
        if self.config.partial:
            h = torch.cat([h, given_groups(c)], dim=1)
        return self._run_pyramid(self.cond_encoder, self._pad(h))

    def _film(self, k: int, h: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.film[k](z)[:, :, None, None].chunk(2, dim=1)
        return h * (1 + gamma) + beta

    # -- the first ("conv") backbone ------------------------------------------------------------
    def _build_conv(self, cfg: VAEConfig, widths: list[int]) -> None:
        cc = cfg.cond_channels
        enc = [_conv(cfg.in_channels + cc, widths[0], cfg)]
        for k in range(cfg.depth):
            enc += [
                _conv(widths[k], widths[k + 1], cfg, stride=2),
                _conv(widths[k + 1], widths[k + 1], cfg),
            ]
        self.encoder = nn.Sequential(*enc)
        self.to_latent = nn.Linear(self._flat, 2 * cfg.latent_dim)
        self.from_latent = nn.Linear(cfg.latent_dim, self._flat)
        self.up = nn.ModuleList(
            nn.Sequential(
                _conv(widths[k + 1] + cc, widths[k], cfg), _conv(widths[k], widths[k], cfg)
            )
            for k in reversed(range(cfg.depth))
        )
        self.head = nn.Conv2d(widths[0] + cc, cfg.in_channels, 3, padding=1)

    # -- shapes ---------------------------------------------------------------------------------
    def _pad(self, t: torch.Tensor) -> torch.Tensor:
        ph, pw = self.padded[0] - t.shape[-2], self.padded[1] - t.shape[-1]
        return F.pad(t, (0, pw, 0, ph)) if ph or pw else t

    def _check(self, x: torch.Tensor | None, c: torch.Tensor | None, n: int | None = None):
        cfg = self.config
        for name, t in (("x", x), ("c", c)):
            if t is not None and not isinstance(t, torch.Tensor):
                raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if x is None and n is None:
            raise TypeError("x must be a torch.Tensor of designs (B, Cin, H, W), got None")
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

    # -- the VAE --------------------------------------------------------------------------------
    def prior(self, c: torch.Tensor | None = None, n: int = 1, feats=None):
        """(mu, logvar) of p(z | c), each (B, latent_dim); zeros for the independent prior
        (B = c's batch, or ``n`` without a condition)."""
        d = self.config.latent_dim
        if self.config.prior == "dependent":
            c = self._check(None, c, n=n)
            return self._dependent_prior(feats if feats is not None else self.condition_features(c))
        b = n if c is None else (c.shape[0] if c.dim() == 4 else n)
        p = next(self.parameters())
        zero = torch.zeros(b, d, device=p.device, dtype=p.dtype)
        return zero, zero

    def _dependent_prior(self, feats):
        """(mu, logvar) of the prior network on the bottleneck condition features."""
        mu, logvar = self.prior_net(feats[-1]).chunk(2, dim=1)
        return mu, logvar.clamp(-10.0, 5.0)

    @property
    def extra_terms(self) -> tuple[str, ...]:
        """Names of the family's own loss terms and statistics (`VAEOutput.terms`, ``stats``)
        that training logs beside the ELBO's."""
        return ()

    @property
    def fitted_prior(self) -> str | None:
        """The submodule fitted after training (`fit_prior`), or None: the prior mixture when
        ``prior_components`` is set."""
        return "prior_mixture" if self.config.prior_components else None

    def fit_prior(self, train_set, val_set, seed: int = 0) -> dict:
        """Fit the `fitted_prior` to the trained model's designs of ``train_set`` (early-stopped
        on ``val_set``); returns what the fit reached."""
        from ._mixture import fit_prior_mixture

        return fit_prior_mixture(self, train_set, val_set, seed=seed)

    def prior_features(self, feats) -> torch.Tensor:
        """The prior network's hidden features (B, 4 * top) of the condition features."""
        return self.prior_net[:3](feats[-1])

    def prior_draws(self, eps: torch.Tensor, c: torch.Tensor | None = None, generator=None):
        """Whitened prior samples (n, D) from standard normal ``eps`` (n, D) under one condition
        ``c`` (1, Cc, H, W): ``eps`` itself, or with a fitted `PriorMixture`
        (``prior_components``) each ``eps`` placed in a component of the mixture or in the
        plain prior (`PriorMixture.draws`, from ``generator``, a CPU one)."""
        if not self.config.prior_components:
            return eps
        with torch.no_grad():
            h = self.prior_features(self.condition_features(self._check(None, c, n=1)))
            return self.prior_mixture.draws(eps.cpu(), h, generator).to(eps)

    def encode(self, x: torch.Tensor, c: torch.Tensor | None = None, feats=None):
        """(B, Cin, H, W) [, (B, Cc, H, W)] -> posterior (mu, logvar), each (B, latent_dim)."""
        c = self._check(x, c)
        if self.config.arch == "unet":
            feats = feats if feats is not None else self.condition_features(c)
            h = self._run_pyramid(self.encoder, self._pad(x), feats)[-1]
        else:
            h = self.encoder(self._pad(x if c is None else torch.cat([x, c], dim=1)))
        mu, logvar = self.to_latent(h.flatten(1)).chunk(2, dim=1)
        return mu, logvar.clamp(-30.0, 20.0)

    def decode(self, z: torch.Tensor, c: torch.Tensor | None = None, feats=None) -> torch.Tensor:
        """(B, latent_dim) [, (B, Cc, H, W)] -> logits (B, Cin, H, W); z in latent coordinates
        (see `decode_whitened` for prior-relative ones)."""
        c = self._check(None, c, n=z.shape[0])
        h = self.from_latent(z).view(z.shape[0], self._widths[-1], *self.bottleneck)
        if self.config.arch == "unet":
            feats = feats if feats is not None else self.condition_features(c)
            depth = self.config.depth
            h = self.dec_bottom(h if feats is None else torch.cat([h, feats[depth]], dim=1))
            h = self._film(depth, h, z)
            for stage, k in zip(self.up, reversed(range(depth)), strict=True):
                h = F.interpolate(h, scale_factor=2, mode="nearest")
                h = stage(h if feats is None else torch.cat([h, feats[k]], dim=1))
                h = self._film(k, h, z)
            return self.head(h)[..., : self.config.height, : self.config.width]
        cp = None if c is None else self._pad(c)
        for stage in self.up:
            h = F.interpolate(h, scale_factor=2, mode="nearest")
            if cp is not None:
                h = torch.cat([h, F.adaptive_avg_pool2d(cp, h.shape[-2:])], dim=1)
            h = stage(h)
        if cp is not None:
            h = torch.cat([h, cp], dim=1)
        return self.head(h)[..., : self.config.height, : self.config.width]

    @property
    def latent_layers(self) -> tuple[int, ...]:
        """Sizes of the stochastic layers that make up z (one layer here; `LadderVAE`: two)."""
        return (self.config.latent_dim,)

    def latent_distributions(self, x: torch.Tensor, c=None, feats=None):
        """(mu, logvar, prior_mu, prior_logvar) of a design's posterior and the prior it is
        measured against (their closed-form KL is the model's KL), each (B, D)."""
        c = self._check(x, c)
        feats = feats if feats is not None else self.condition_features(c)
        mu, logvar = self.encode(x, c, feats)
        return (mu, logvar, *self.prior(c, n=x.shape[0], feats=feats))

    def posterior_sample(self, x: torch.Tensor, c, feats, eps: torch.Tensor):
        """z ~ q(z | x, c) from standard normal ``eps`` (B, D), or (m, B, D) for m samples of
        each design, with (mu, logvar, prior_mu, prior_logvar) shaped alike such that
        log N(z; mu, logvar) = log q(z | x, c) and log N(z; prior_mu, prior_logvar) =
        log p(z | c): (z, mu, logvar, prior_mu, prior_logvar)."""
        mu, logvar, pmu, plogvar = (
            t.expand(eps.shape) for t in self.latent_distributions(x, c, feats)
        )
        return mu + eps * torch.exp(0.5 * logvar), mu, logvar, pmu, plogvar

    def to_latent_coordinates(self, u: torch.Tensor, c=None, feats=None) -> torch.Tensor:
        """Whitened u (B, D) -> z = mu(c) + sigma(c) u."""
        mu, logvar = self.prior(c, n=u.shape[0], feats=feats)
        return mu + torch.exp(0.5 * logvar) * u

    def whiten(self, z: torch.Tensor, c=None, feats=None) -> torch.Tensor:
        """z (B, D) -> whitened u = (z - mu(c)) / sigma(c); inverse of `to_latent_coordinates`."""
        mu, logvar = self.prior(c, n=z.shape[0], feats=feats)
        return (z - mu) * torch.exp(-0.5 * logvar)

    def decode_whitened(self, u: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (B, Cin, H, W) of whitened latent vectors u (B, D): u = 0 is the prior mean."""
        c = self._check(None, c, n=u.shape[0])
        feats = self.condition_features(c)
        return self.decode(self.to_latent_coordinates(u, c, feats), c, feats)

    def forward(
        self,
        x: torch.Tensor,
        c: torch.Tensor | None = None,
        generator=None,
        prior_mean: int = 0,
        prior_noise: bool = False,
    ):
        """Reparameterised pass: a `VAEOutput`. With ``prior_mean`` = n > 0 its
        ``prior_logits`` are the decodes at the prior mean (u = 0) of the first n samples'
        conditions: the model's first designs for their problems (the physics term's input);
        with ``prior_noise`` too, at prior samples z ~ p(z | c) instead (u ~ N(0, I), drawn
        from ``generator``): any of the designs it offers for them. Written on
        `posterior_sample` and `to_latent_coordinates`, so it serves every family."""
        c = self._check(x, c)
        feats = self.condition_features(c)
        d = self.config.latent_dim
        eps = torch.randn((x.shape[0], d), generator=generator, device=x.device, dtype=x.dtype)
        z, mu, logvar, prior_mu, prior_logvar = self.posterior_sample(x, c, feats, eps)
        first = None
        if prior_mean > 0:
            n = prior_mean
            u = torch.zeros((n, d), device=x.device, dtype=mu.dtype)
            if prior_noise:
                u = torch.randn(u.shape, generator=generator, device=x.device, dtype=mu.dtype)
            cn = None if c is None else c[:n]
            fn = None if feats is None else [f[:n] for f in feats]
            first = self.decode(self.to_latent_coordinates(u, cn, fn), cn, fn)
        return VAEOutput(self.decode(z, c, feats), mu, logvar, prior_mu, prior_logvar, first)

    @torch.no_grad()
    def sample(
        self, n: int, c: torch.Tensor | None = None, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """n designs from the prior (p(z | c) for a dependent prior), in [0, 1]: (n, Cin, H, W)."""
        p = next(self.parameters())
        u = torch.randn(n, self.config.latent_dim, generator=generator, device=p.device)
        return torch.sigmoid(self.decode_whitened(u.to(p.dtype), c))

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """Decoded posterior means, densities in [0, 1]."""
        c = self._check(x, c)
        feats = self.condition_features(c)
        mu, _ = self.encode(x, c, feats)
        return torch.sigmoid(self.decode(mu, c, feats))
