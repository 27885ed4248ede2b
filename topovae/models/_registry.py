"""The model families by kind: `train`, `load` and the workflows build every model from here.

    model = build_model(VAEConfig(kind="hvae", height=32, width=32, cond_channels=9))

A new family is one module under `topovae/models/` and one line in `FAMILIES`; its class takes
a `VAEConfig` and offers `DesignVAE`'s interface (encode, decode, prior, whiten,
to_latent_coordinates, latent_distributions, posterior_sample, forward).
"""

from __future__ import annotations

from ._config import ConfigError, VAEConfig
from ._ladder import LadderVAE
from ._ppca import PPCAModel
from ._vae import DesignVAE
from ._vq import VQVAE

FAMILIES: dict[str, type[DesignVAE]] = {
    "vae": DesignVAE,
    "beta-vae": DesignVAE,
    "cvae": DesignVAE,
    "hvae": LadderVAE,
    "vqvae": VQVAE,
    "ppca": PPCAModel,
}


def model_class(kind: str) -> type[DesignVAE]:
    """The class that builds models of ``kind``."""
    if kind not in FAMILIES:
        raise ConfigError(f"unknown kind {kind!r}; choose one of: {', '.join(FAMILIES)}")
    return FAMILIES[kind]


def build_model(config: VAEConfig) -> DesignVAE:
    """A fresh (untrained) model of ``config``'s kind."""
    if not isinstance(config, VAEConfig):
        raise TypeError(f"config must be a VAEConfig, got {type(config).__name__}")
    return model_class(config.kind)(config)
