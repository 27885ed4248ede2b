"""One call that does what `topovae train` does: a design model trained on a dataset file.

    trainer = train("data.h5", "runs/cvae", kind="cvae", latent_dim=16, beta=0.5,
                    train_config=TrainConfig(epochs=100, batch_size=64, lr=2e-3))
    model = trainer.eval_model          # or topovae.models.load("runs/cvae/best.pt")

The file decides what the model must fit: the grid size, and for a cvae the condition channels
(with ``fields``, the full-material strain energy and stress too). The data fingerprint kept in
the checkpoints (file name, the distribution as the file stores it, seed, size, fields) lets
``resume=True`` refuse other data.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .._checks import check_path
from ._latent import WorkflowError


def train(
    data: str | os.PathLike, out: str | os.PathLike, kind: str = "vae", *,
    train_config=None, fields: bool = True, in_memory: bool = True, init=None,
    resume: bool = False, progress: bool = True, **model_options: Any,
):  # fmt: skip
    """Train a ``kind`` model (vae | beta-vae | cvae | hvae | vqvae, or fit a ppca in closed form)
    on ``data``'s train split (validated on its val split) into the run folder ``out``; returns
    the `Trainer` (its ``history``, ``eval_model``; for a ppca a `FittedRun` with the same
    two). ``model_options`` are `VAEConfig` fields (latent_dim, base_width, beta, ...; beta
    defaults to 4 for a beta-vae, else 1); ``train_config`` a `TrainConfig` (default settings
    when None); ``init``: a checkpoint to start from (fine-tuning); ``resume``: go on from
    ``out``/last.pt. Bad settings raise `ConfigError`, bad files `ProblemError`."""
    import h5py

    from ..datasets import TopologyDataset, read_header
    from ..datasets._store import verify_dataset
    from ..models import ConfigError, TrainConfig, Trainer, VAEConfig, model_class, read_checkpoint
    from ..models._config import CONDITIONAL
    from ..models._train import save_fit

    data = check_path(data, "data")
    if train_config is None:
        train_config = TrainConfig()
    if not isinstance(train_config, TrainConfig):
        raise TypeError(f"train_config must be a TrainConfig, got {type(train_config).__name__}")
    for name in ("height", "width", "cond_channels", "kind"):
        if name in model_options:
            raise ConfigError(f"{name} comes from the dataset and kind, not from the options")
    if init is not None:
        if resume:
            raise ConfigError("init starts a run from a checkpoint; resume continues one")
        read_checkpoint(init)  # a damaged or foreign file is refused before any work
    header = read_header(data)
    verify_dataset(data)  # damage even in an array training never reads is named up front
    with h5py.File(data, "r") as f:
        has_conditions = "problem/loads" in f
        # the distribution as the file stores it: a re-serialised one would change whenever a
        # setting is added to topovae and make older runs refuse to resume
        stored_distribution = str(f.attrs["distribution"])
    conditional = kind in CONDITIONAL
    if conditional and not has_conditions:
        raise WorkflowError(f"{data} holds no problem conditions; a {kind} needs them")
    d = header["distribution"]
    fields = bool(fields) and conditional  # the fields are condition channels
    train_set = TopologyDataset(data, "train", in_memory=in_memory, fields=fields)
    val_set = TopologyDataset(data, "val", in_memory=in_memory, fields=fields)
    model_options.setdefault("beta", 4.0 if kind == "beta-vae" else 1.0)
    mcfg = VAEConfig(
        kind=kind, height=d.nely, width=d.nelx,
        cond_channels=len(train_set.condition_channels) if conditional else 0,
        **model_options,
    )  # fmt: skip
    fingerprint = {"file": Path(data).name, "distribution": stored_distribution,
                   "seed": header["seed"], "n": header["n"], "fields": fields}  # fmt: skip
    if getattr(model_class(kind), "closed_form", False):  # fitted, not trained: seconds
        if init is not None:
            raise ConfigError(f"a {kind} is fitted in closed form; it starts from no checkpoint")
        return save_fit(mcfg, train_config, train_set, val_set, out, fingerprint)
    trainer = Trainer(mcfg, train_config, train_set, val_set, out, data_fingerprint=fingerprint)
    if init is not None:
        trainer.initialise_from(init)
    trainer.fit(resume=resume, progress=progress)
    return trainer
