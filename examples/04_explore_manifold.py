"""Explore a trained CVAE's design manifold: prior samples, an interpolation, a latent map and a
volume-fraction sweep, every design scored by finite-element compliance.

Needs 03_train_vae_and_cvae.py. Takes about 30 s on 2 cores (seconds at the tiny scale).
"""

# %% settings
import os
from pathlib import Path

TINY = os.environ.get("TOPOVAE_EXAMPLE_SCALE") == "tiny"
OUT = Path(os.environ.get("TOPOVAE_EXAMPLE_OUT", "examples_out"))
data, checkpoint = OUT / "designs.h5", OUT / "run-cvae" / "best.pt"
assert checkpoint.exists(), "run 03_train_vae_and_cvae.py first"

# %% the model and one held-out problem with its SIMP design
from topovae.datasets import TopologyDataset
from topovae.models import load

model = load(checkpoint)
test = TopologyDataset(data, "test")
problem, simp = test.problem(0), test[0]["density"][0].double().numpy()

# %% prior samples for that problem, each titled with its score against SIMP
from topovae.workflows import prior_samples, save_scored_grid

designs = prior_samples(model, 8, problem, seed=0)
save_scored_grid(designs, problem, OUT / "samples.png", [f"sample {k}" for k in range(8)],
                 reference=simp)  # fmt: skip

# %% the latent map of the held-out designs, and the decoded grid over it
from topovae.workflows import latent_map, save_latent_map

m = latent_map(model, data, "test", projection="kl", colour="volfrac", grid=3 if TINY else 7)
print("wrote", *save_latent_map(m, OUT / "map.png"))

# %% the same latent vector under volume fractions 0.3 .. 0.6
from topovae.workflows import condition_sweep

designs, problems, labels = condition_sweep(model, problem, [0.3, 0.4, 0.5, 0.6])
print("wrote", save_scored_grid(designs, problems, OUT / "sweep.png", labels, ncols=4)[0])
