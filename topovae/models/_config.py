"""`VAEConfig`: everything that defines a design VAE, as a dataclass that round-trips to JSON.

    cfg = VAEConfig(kind="cvae", height=64, width=64, cond_channels=7, latent_dim=32)
    model = DesignVAE(cfg)
    VAEConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg

Sizes inside the network are derived from these fields, never hard-coded: the encoder halves the
(padded) image ``depth`` times, so any H x W works.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

KINDS = ("vae", "beta-vae", "cvae", "hvae", "vqvae", "ppca")
CONDITIONAL = ("cvae", "hvae", "vqvae")  # the kinds conditioned on the problem
ARCHS = ("unet", "conv")
PRIORS = ("auto", "dependent", "independent", "autoregressive")
NORMS = ("batch", "group", "none")
ACTIVATIONS = ("silu", "relu", "gelu", "leaky_relu")
LIKELIHOODS = ("bernoulli", "gaussian")
COMPLIANCE_DECODES = ("auto", "prior_mean", "prior_sample", "posterior")


MAX_PARAMETERS = 2**30  # ~16 GiB of weights, gradients and AdamW moments in float32
# loss weights in [0, limit]: each limit is orders of magnitude above any useful value (beta-VAEs
# use up to ~250, the physics term ~50-200); beyond it the term swamps the loss or overflows
WEIGHT_LIMITS = {"beta": 1e4, "free_bits": 1e3, "volume_weight": 1e6, "capacity_max": 1e6,
                 "capacity_gamma": 1e6, "compliance_weight": 1e6,
                 "compliance_tolerance": 10.0, "floating_weight": 1e6}  # fmt: skip
MAX_STEPS = 10**9
MAX_COMPONENTS = 64  # of the prior mixture  # schedules (warm-ups, ramps) in optimisation steps
MAX_CODEBOOK = 4096  # codes of a vqvae


class ConfigError(ValueError):
    """An invalid model configuration; the message names the bad value and what is allowed."""


@dataclass(frozen=True)
class VAEConfig:
    """Architecture and loss of a design VAE.

    arch: "unet" (condition encoder, U-Net skips of the condition features, z at the bottleneck
        and FiLM at every decoder scale) or "conv" (the first topovae backbone; see `DesignVAE`).
    prior: "dependent" (p(z | c) = N(mu(c), sigma(c)^2) from a prior network on the condition
        features; the default for a cvae on the unet backbone), "independent" (p(z) = N(0, I);
        the only choice for unconditional models and the conv backbone), "autoregressive" (a
        vqvae's: a distribution over its code slots, one after another, given the condition;
        the vqvae's only prior) or "auto" (resolved on construction).
    kind: "vae"; "beta-vae" (KL weight ``beta`` > 1, optionally the controlled-capacity target
        of Burgess et al. 2018: loss = rec + gamma |KL - C(t)|, C growing linearly to
        ``capacity_max`` nats over ``capacity_steps``); "cvae" (encoder and decoder conditioned on
        ``cond_channels`` image channels: volume fraction, loads, supports, ...); "hvae" (the
        ladder VAE, `LadderVAE`: a conditional VAE with two stochastic layers, the top one of
        ``top_dim`` dimensions, by default half of ``latent_dim``; the unet backbone only);
        "vqvae" (`VQVAE`: a conditional VQ-VAE on the unet backbone, ``latent_dim`` discrete
        slots each one of ``codebook_size`` codes of ``code_dim`` dimensions, with its
        autoregressive prior over the slots fitted after training); "ppca" (`PPCAModel`:
        probabilistic PCA with ``latent_dim`` dimensions, fitted in closed form, unconditional;
        only the sizes apply).
    width: channels of the first conv stage, doubled at each of the ``depth`` stages (capped at
        ``max_width``).
    likelihood: "bernoulli" (BCE with logits, for densities in [0, 1]) or "gaussian" (MSE of the
        sigmoid output, unit variance up to a constant).
    free_bits: minimum KL per latent dimension (nats) below which it is not penalised.
    kl_warmup_steps: the KL weight ramps linearly from 0 over these steps (0: no warm-up).
    volume_weight: weight of the auxiliary volume term (mean decoded density - target)^2.
    compliance_weight: weight of the physics term log(C(decoded, volume-projected) / C(SIMP))
        through the batched differentiable FE (0: off); it starts at step ``compliance_start``
        and ramps up linearly over ``compliance_ramp`` steps. Needs a training set that gives
        each sample's `Problem` (as `TopologyDataset` does).
    compliance_decode: which decode the physics term judges: "prior_mean" (the design at u = 0
        under the sample's condition, the model's first design for the problem: a cvae's
        default), "prior_sample" (a design at z ~ p(z | c): every design the model offers for
        the problem, a design space, not only its first), "posterior" (the reconstruction from
        z ~ q(z | x, c): the only choice for unconditional models, whose prior mean is one
        design for every problem) or "auto".
    compliance_samples: designs of each batch the term judges (the first ones of the shuffled,
        augmented batch; 0: all). Each costs one FE solve per step.
    compliance_tolerance: a design within this fraction of its SIMP design's compliance is good
        enough and not pushed further: the term per design is max(0, log(C / C_SIMP) -
        log(1 + tolerance)) (0: every design is pushed to be stiffer). With "prior_sample" it
        keeps near-optimal alternatives apart instead of pulling every sample to the stiffest
        layout (docs/architecture.md, "A latent that spans alternatives").
    floating_weight: weight, within the physics term, of the floating-material term of each
        judged design (`floating_terms`: its soft density on the elements that float in its
        binarisation, outside every component touching a load and a support, over the solid's
        size; 0: off). Needs ``compliance_weight`` > 0: it judges the same decodes on the same
        schedule, so that the decoder makes designs that need no load-path repair.
    condition_dropout: partial conditions (a unet cvae; 0: off). Training leaves out each
        condition group (the volume fraction, the loads, the supports) of each sample with this
        probability, as zeros (the full-material fields go with the loads and the supports),
        and the condition encoder also sees one indicator image per group, so that one model
        answers a full problem and a partial one ("any load on this support at VF 0.4";
        `drop_condition`).
    prior_components: a mixture of this many Gaussians over the whitened latent coordinates,
        fitted after training to where the model puts each condition's designs, from which
        prior samples are drawn (`PriorMixture`; a cvae or hvae with the dependent prior;
        0: off, samples from the Gaussian prior itself).
    codebook_size, code_dim: a vqvae's codebook, ``codebook_size`` vectors of ``code_dim``
        dimensions (0: 64 and 8).
    commitment: a vqvae's commitment weight beta in beta ||z_e - sg(e)||^2.
    codebook_decay: a vqvae's codebook update: the exponential moving averages of van den
        Oord et al. 2017 (their gamma, e.g. 0.99), or 0 for the codebook loss
        ||sg(z_e) - e||^2 and gradient steps.
    """

    kind: str = "vae"
    arch: str = "unet"
    prior: str = "auto"
    height: int = 64
    width: int = 64
    in_channels: int = 1
    cond_channels: int = 0
    latent_dim: int = 32
    top_dim: int = 0
    base_width: int = 32
    max_width: int = 256
    depth: int = 4
    norm: str = "batch"
    activation: str = "silu"
    likelihood: str = "bernoulli"
    beta: float = 1.0
    capacity_max: float = 0.0
    capacity_steps: int = 0
    capacity_gamma: float = 100.0
    free_bits: float = 0.0
    kl_warmup_steps: int = 0
    volume_weight: float = 0.0
    compliance_weight: float = 0.0
    compliance_start: int = 0
    compliance_ramp: int = 0
    compliance_decode: str = "auto"
    compliance_samples: int = 0
    compliance_tolerance: float = 0.0
    floating_weight: float = 0.0
    condition_dropout: float = 0.0
    prior_components: int = 0
    codebook_size: int = 0
    code_dim: int = 0
    commitment: float = 0.25
    codebook_decay: float = 0.99

    def __post_init__(self) -> None:
        def choice(name: str, allowed: tuple[str, ...]) -> None:
            if getattr(self, name) not in allowed:
                raise ConfigError(
                    f"unknown {name} {getattr(self, name)!r}; choose one of: {', '.join(allowed)}"
                )

        choice("kind", KINDS)
        choice("arch", ARCHS)
        choice("prior", PRIORS)
        if self.prior == "auto":  # frozen dataclass: resolve once, so to_dict holds the choice
            if self.kind == "vqvae":
                resolved = "autoregressive"
            else:
                dependent = self.conditional and self.arch == "unet"
                resolved = "dependent" if dependent else "independent"
            object.__setattr__(self, "prior", resolved)
        if (self.kind == "vqvae") != (self.prior == "autoregressive"):
            raise ConfigError(
                f"the autoregressive prior is a vqvae's and a vqvae has no other: kind "
                f"{self.kind!r} with prior {self.prior!r}"
            )
        if self.kind == "vqvae" and self.arch != "unet":
            raise ConfigError(f"a vqvae needs the unet backbone, not {self.arch!r}")
        if self.kind == "hvae" and (self.arch != "unet" or self.prior != "dependent"):
            raise ConfigError(
                f"an hvae needs the unet backbone and its dependent prior, not {self.arch!r} "
                f"with a {self.prior!r} prior"
            )
        if self.prior == "dependent" and (not self.conditional or self.arch != "unet"):
            raise ConfigError(
                f"a dependent prior needs a cvae on the unet backbone, not a {self.kind!r} on "
                f"{self.arch!r}; use prior 'independent'"
            )
        choice("compliance_decode", COMPLIANCE_DECODES)
        if self.compliance_decode == "auto":
            decode = "prior_mean" if self.conditional and self.kind != "vqvae" else "posterior"
            object.__setattr__(self, "compliance_decode", decode)
        if self.compliance_decode in ("prior_mean", "prior_sample") and not self.conditional:
            raise ConfigError(
                f"compliance_decode {self.compliance_decode!r} needs a cvae (a {self.kind!r} "
                "has one prior for every problem); use 'posterior'"
            )
        if self.compliance_decode in ("prior_mean", "prior_sample") and self.kind == "vqvae":
            raise ConfigError(
                f"compliance_decode {self.compliance_decode!r} needs a prior while training; a "
                "vqvae's is fitted after it: use 'posterior'"
            )
        choice("norm", NORMS)
        choice("activation", ACTIVATIONS)
        choice("likelihood", LIKELIHOODS)
        for name in ("height", "width", "in_channels", "latent_dim", "base_width", "depth"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"{name} must be a positive integer, got {v!r}")
        # the input is padded to a multiple of 2^depth: allow at most doubling the larger side
        # (depth compared first: 2**depth of a huge depth would not finish)
        if self.depth > 62 or 2**self.depth > 2 * max(self.height, self.width):
            allowed = (2 * max(self.height, self.width)).bit_length() - 1
            factor = f"2^{self.depth}" if self.depth > 62 else f"2^{self.depth} = {2**self.depth}"
            raise ConfigError(
                f"depth {self.depth} halves the grid {self.depth} times ({factor}), more than "
                f"the {self.width}x{self.height} grid allows; use depth <= {allowed}"
            )
        if self.max_width < self.base_width:
            raise ConfigError(
                f"base_width {self.base_width} is above max_width {self.max_width}; "
                f"use base_width <= max_width"
            )
        params = self.parameter_estimate()
        if params > MAX_PARAMETERS:
            raise ConfigError(
                f"this configuration makes a model of ~{params:.3g} parameters "
                f"(~{16 * params / 2**30:.3g} GiB to train with AdamW), over the limit of "
                f"{MAX_PARAMETERS:.3g}; use a smaller latent_dim, base_width or max_width"
            )
        if self.conditional and self.cond_channels < 1:
            article = "an" if self.kind == "hvae" else "a"
            raise ConfigError(
                f"{article} {self.kind} needs cond_channels >= 1 (the problem's condition images)"
            )
        if not self.conditional and self.cond_channels != 0:
            kinds = ", ".join(repr(k) for k in CONDITIONAL)
            raise ConfigError(f"cond_channels is for kinds {kinds}, not {self.kind!r}")
        t = self.top_dim
        if isinstance(t, bool) or not isinstance(t, int) or t < 0:
            raise ConfigError(f"top_dim must be an integer >= 0, got {t!r}")
        if t and self.kind != "hvae":
            raise ConfigError(f"top_dim is for kind 'hvae' (a ladder VAE), not {self.kind!r}")
        if self.kind == "hvae" and not 0 < self.top_layer_dim < self.latent_dim:
            raise ConfigError(
                f"an hvae splits latent_dim {self.latent_dim} into a top and a bottom layer: "
                f"use latent_dim >= 2 and top_dim in 1..{self.latent_dim - 1}, got {t}"
            )
        # upper limits far above any useful value: beyond them the loss is swamped or overflows
        for name, high in WEIGHT_LIMITS.items():
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | float) or not 0 <= v <= high:
                raise ConfigError(f"{name} must be a number in [0, {high:g}], got {v!r}")
        p = self.condition_dropout
        if isinstance(p, bool) or not isinstance(p, int | float) or not 0 <= p < 1:
            raise ConfigError(f"condition_dropout must be a probability in [0, 1), got {p!r}")
        if p > 0 and (not self.conditional or self.arch != "unet"):
            raise ConfigError(
                f"condition_dropout needs a cvae on the unet backbone, not a {self.kind!r} on "
                f"{self.arch!r}"
            )
        k = self.prior_components
        if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k <= MAX_COMPONENTS:
            raise ConfigError(
                f"prior_components must be an integer in 0..{MAX_COMPONENTS}, got {k!r}"
            )
        if k and self.prior != "dependent":
            raise ConfigError(
                f"prior_components needs a cvae or hvae with the dependent prior, not a "
                f"{self.kind!r} with a {self.prior!r} prior"
            )
        self._check_codebook()
        if self.floating_weight > 0 and self.compliance_weight <= 0:
            raise ConfigError(
                f"floating_weight {self.floating_weight:g} is part of the physics term: it needs "
                f"compliance_weight > 0"
            )
        if self.kind == "ppca" and self.compliance_weight > 0:
            raise ConfigError("a ppca is fitted in closed form: it takes no physics term")
        if self.kind == "beta-vae" and self.beta <= 1 and self.capacity_max <= 0:
            raise ConfigError(
                f"a beta-vae needs beta > 1 or a capacity schedule, got beta={self.beta}"
            )
        for name in ("capacity_steps", "kl_warmup_steps", "compliance_start", "compliance_ramp",
                     "compliance_samples"):  # fmt: skip
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= MAX_STEPS:
                raise ConfigError(f"{name} must be an integer in 0..{MAX_STEPS}, got {v!r}")

    def _check_codebook(self) -> None:
        for name, high in (("codebook_size", MAX_CODEBOOK), ("code_dim", 1024)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= high:
                raise ConfigError(f"{name} must be an integer in 0..{high} (0: default), got {v!r}")
        if self.codebook_size == 1:
            raise ConfigError("codebook_size must be at least 2 (one code holds no choice)")
        v = self.commitment
        if isinstance(v, bool) or not isinstance(v, int | float) or not 0 <= v <= 100:
            raise ConfigError(f"commitment must be a number in [0, 100], got {v!r}")
        v = self.codebook_decay
        if isinstance(v, bool) or not isinstance(v, int | float) or not 0 <= v < 1:
            raise ConfigError(
                f"codebook_decay must be a number in [0, 1) (0: the codebook loss), got {v!r}"
            )
        defaults = {"codebook_size": 0, "code_dim": 0, "commitment": 0.25, "codebook_decay": 0.99}
        changed = [k for k, v in defaults.items() if getattr(self, k) != v]
        if changed and self.kind != "vqvae":
            raise ConfigError(f"{changed[0]} is for kind 'vqvae', not {self.kind!r}")

    @property
    def codebook(self) -> tuple[int, int]:
        """A vqvae's (codes, code dimensions): ``codebook_size`` and ``code_dim`` or 64 and 8."""
        return self.codebook_size or 64, self.code_dim or 8

    def parameter_estimate(self) -> int:
        """An upper estimate of the parameter count, from the sizes alone (checked before any
        tensor is allocated): the latent maps and three conv pyramids."""
        f = 2**self.depth
        cells = -(-self.height // f) * -(-self.width // f)
        widths = [min(self.base_width * 2**k, self.max_width) for k in range(self.depth + 1)]
        flat = widths[-1] * cells
        d = self.latent_dim
        convs = sum(9 * 3 * (2 * w) * w for w in widths) * 3  # conv layers of 3 pyramids
        return 3 * d * flat + 4 * d * (flat + 2 * d) + 2 * d * sum(widths) + convs

    @property
    def conditional(self) -> bool:
        return self.kind in CONDITIONAL

    @property
    def top_layer_dim(self) -> int:
        """An hvae's top latent layer size (``top_dim``, or half of ``latent_dim``)."""
        return self.top_dim or self.latent_dim // 2

    @property
    def partial(self) -> bool:
        """Whether the model takes partial conditions (trained with condition dropout)."""
        return self.condition_dropout > 0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> VAEConfig:
        if not isinstance(d, dict):
            raise ConfigError(f"a model config must be a dict, got {type(d).__name__}")
        unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ConfigError(f"unknown model config fields: {', '.join(sorted(unknown))}")
        return cls(**d)


def check_model(value: Any, name: str = "model") -> Any:
    """``value`` if it is a design model (a `DesignVAE`, e.g. ``topovae.models.load(path)``)."""
    import torch

    # duck-typed on the config, so that torch.compile'd and subclassed models pass
    if not isinstance(value, torch.nn.Module) or not isinstance(
        getattr(value, "config", None), VAEConfig
    ):
        got = type(value).__name__
        raise TypeError(f"{name} must be a DesignVAE (e.g. topovae.models.load(path)), got {got}")
    return value
