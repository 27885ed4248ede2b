"""Train a VAE and a conditional VAE on the dataset of 02_generate_dataset.py.

Shows `VAEConfig`, `TrainConfig` and `Trainer` (checkpoints, exact resume, loss curves and
sample pictures in the run folder), and loading a model back. Takes about 4 minutes on 2 CPU
cores (seconds on a GPU; seconds with TOPOVAE_EXAMPLE_SCALE=tiny).
"""

# %% settings
import os
from pathlib import Path

TINY = os.environ.get("TOPOVAE_EXAMPLE_SCALE") == "tiny"
OUT = Path(os.environ.get("TOPOVAE_EXAMPLE_OUT", "examples_out"))
data = OUT / "designs.h5"
assert data.exists(), "run 02_generate_dataset.py first"

# %% the training and validation splits (the physical fields as extra conditions)
from topovae.datasets import TopologyDataset

train = TopologyDataset(data, "train", in_memory=True, fields=True)
val = TopologyDataset(data, "val", in_memory=True, fields=True)
size = train.header["distribution"].nely

# %% a VAE (designs only) and a CVAE (designs given their problem), same backbone
from topovae.models import TrainConfig, Trainer, VAEConfig, load

small = dict(latent_dim=4, base_width=4, depth=2) if TINY else dict(base_width=16, depth=3)
settings = TrainConfig(epochs=2 if TINY else 60, batch_size=32, lr=2e-3, device="auto")
for kind in ("vae", "cvae"):
    run = OUT / f"run-{kind}"
    config = VAEConfig(kind=kind, height=size, width=size, latent_dim=small.get("latent_dim", 16),
                       cond_channels=len(train.condition_channels) if kind == "cvae" else 0,
                       base_width=small["base_width"], depth=small["depth"], beta=0.5,
                       kl_warmup_steps=100)  # fmt: skip
    history = Trainer(config, settings, train, val, run).fit(resume=(run / "last.pt").exists(),
                                                            progress=not TINY)  # fmt: skip
    last = history[-1] if history else {}
    print(kind, "val loss", round(last.get("val_total", float("nan")), 2), "->", run)

# %% load the trained CVAE back, as every workflow does
model = load(OUT / "run-cvae" / "best.pt")
print(model.config.kind, model.config.latent_dim, "latent dimensions")
