"""Generate a dataset of SIMP designs with their problems, then look inside the file.

Shows `distribution`, `generate` (parallel, resumable), `read_header`, `TopologyDataset` and a
picture of the first designs. Takes about 1 minute on 2 cores (200 designs at 32x32); seconds
with TOPOVAE_EXAMPLE_SCALE=tiny. The next examples train on this file.
"""

# %% settings
import os
from pathlib import Path

TINY = os.environ.get("TOPOVAE_EXAMPLE_SCALE") == "tiny"
OUT = Path(os.environ.get("TOPOVAE_EXAMPLE_OUT", "examples_out"))
OUT.mkdir(exist_ok=True)
SIZE, N = (12, 40) if TINY else (32, 200)

# %% sample problems from a named distribution and solve them (kept if interrupted: rerun
# with mode="resume" to continue)
from topovae.datasets import distribution, generate, read_header

data = OUT / "designs.h5"
dist = distribution("topodiff-like", SIZE, SIZE)
if not data.exists():
    summary = generate(data, dist, n=N, seed=0, workers=2, progress=not TINY)
    print(f"{summary['solved']} designs in {summary['seconds']:.0f} s")

# %% the file's settings and a training view of it
from topovae.datasets import TopologyDataset

header = read_header(data)
print(header["n"], "samples of", header["distribution"].name, "seed", header["seed"])
train = TopologyDataset(data, "train", fields=True)
item = train[0]
print("design", tuple(item["density"].shape), "condition channels", train.condition_channels)

# %% a picture of the first designs with their supports and loads
from topovae.plotting import save_design_grid

items = [(train[k]["density"][0].numpy(), train.problem(k), f"#{int(train[k]['index'])}")
         for k in range(min(8, len(train)))]  # fmt: skip
print("wrote", save_design_grid(items, OUT / "designs.png", ncols=4))
