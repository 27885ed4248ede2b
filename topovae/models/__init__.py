"""Design models: convolutional VAE, beta-VAE, conditional VAE, the ladder VAE, the VQ-VAE and
probabilistic PCA, and their losses.

from topovae.models import VAEConfig, DesignVAE, loss_terms
model = DesignVAE(VAEConfig(kind="beta-vae", beta=4.0, height=64, width=64))
out = model(x)                  # VAEOutput(logits, mu, logvar, prior_mu, prior_logvar)
terms = loss_terms(model.config, out.logits, x, out.mu, out.logvar, step)
terms["total"].backward()
"""

from ._config import ACTIVATIONS, KINDS, LIKELIHOODS, NORMS, ConfigError, VAEConfig, check_model
from ._ladder import LadderVAE
from ._likelihood import iwae, log_likelihood, log_weights
from ._losses import (
    active_units,
    compliance_weight,
    floating_terms,
    gaussian_kl,
    kl_weight,
    loss_terms,
    physics_hinge,
    physics_terms,
    project_volume,
)
from ._mixture import PLAIN_SHARE, PriorMixture, fit_prior_mixture
from ._nearest import NearestDesign
from ._ppca import PPCA, PPCAModel, fit_ppca
from ._registry import FAMILIES, build_model, model_class
from ._threads import ThreadTuner
from ._train import TrainConfig, Trainer, TrainingError, load, read_checkpoint
from ._vae import CONDITION_GROUPS, DesignVAE, VAEOutput, drop_condition, normalise_condition
from ._vq import VQVAE, CodePrior, VectorQuantiser, fit_code_prior

__all__ = [
    "ACTIVATIONS",
    "CONDITION_GROUPS",
    "FAMILIES",
    "KINDS",
    "LIKELIHOODS",
    "NORMS",
    "PLAIN_SHARE",
    "PPCA",
    "VQVAE",
    "CodePrior",
    "ConfigError",
    "DesignVAE",
    "LadderVAE",
    "NearestDesign",
    "PPCAModel",
    "PriorMixture",
    "ThreadTuner",
    "TrainConfig",
    "Trainer",
    "TrainingError",
    "VAEConfig",
    "VAEOutput",
    "VectorQuantiser",
    "active_units",
    "build_model",
    "check_model",
    "compliance_weight",
    "drop_condition",
    "fit_code_prior",
    "fit_ppca",
    "fit_prior_mixture",
    "floating_terms",
    "gaussian_kl",
    "iwae",
    "kl_weight",
    "load",
    "log_likelihood",
    "log_weights",
    "loss_terms",
    "model_class",
    "normalise_condition",
    "physics_hinge",
    "physics_terms",
    "project_volume",
    "read_checkpoint",
]
