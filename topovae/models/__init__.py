"""Design VAEs: convolutional VAE, beta-VAE and conditional VAE, and their losses.

from topovae.models import VAEConfig, DesignVAE, loss_terms
model = DesignVAE(VAEConfig(kind="beta-vae", beta=4.0, height=64, width=64))
logits, mu, logvar = model(x)
terms = loss_terms(model.config, logits, x, mu, logvar, step)   # terms["total"].backward()
"""

from ._config import ACTIVATIONS, KINDS, LIKELIHOODS, NORMS, ConfigError, VAEConfig
from ._losses import active_units, gaussian_kl, kl_weight, loss_terms
from ._train import TrainConfig, Trainer, TrainingError, load, read_checkpoint
from ._vae import DesignVAE

__all__ = [
    "ACTIVATIONS",
    "KINDS",
    "LIKELIHOODS",
    "NORMS",
    "ConfigError",
    "DesignVAE",
    "TrainConfig",
    "Trainer",
    "TrainingError",
    "VAEConfig",
    "active_units",
    "gaussian_kl",
    "kl_weight",
    "load",
    "loss_terms",
    "read_checkpoint",
]
