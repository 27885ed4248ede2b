"""Search a CVAE's latent space for the stiffest design of a held-out problem, then polish it
with a few SIMP iterations; compare with SIMP.

Needs 03_train_vae_and_cvae.py. Takes about 30 s on 2 cores (seconds at the tiny scale).
"""

# %% settings
import os
from pathlib import Path

TINY = os.environ.get("TOPOVAE_EXAMPLE_SCALE") == "tiny"
OUT = Path(os.environ.get("TOPOVAE_EXAMPLE_OUT", "examples_out"))
data, checkpoint = OUT / "designs.h5", OUT / "run-cvae" / "best.pt"
assert checkpoint.exists(), "run 03_train_vae_and_cvae.py first"

# %% a held-out problem and its SIMP design
from topovae.datasets import TopologyDataset
from topovae.models import load

model = load(checkpoint)
test = TopologyDataset(data, "test")
problem, simp = test.problem(0), test[0]["density"][0].double().numpy()

# %% CMA-ES and gradient search, each with a budget of FE evaluations, then 10 SIMP iterations
from topovae.workflows import search

budget = 8 if TINY else 60
results = {m: search(model, problem, method=m, budget=budget, polish=10, reference=simp, seed=0)
           for m in ("cmaes", "gradient")}  # fmt: skip
for m, r in results.items():
    print(
        f"{m}: CE {100 * r.score['ce'][0]:+.2f} % after {r.evaluations} FE evaluations, "
        f"{100 * r.polished_score['ce'][0]:+.2f} % after polishing"
    )

# %% the best-so-far curves as compliance error against SIMP
from topovae.plotting import save_search_curves
from topovae.workflows import score

reference = float(score(simp[None], problem)["compliance"][0])
curves = {m: r.best_so_far for m, r in results.items()}
print("wrote", save_search_curves(curves, OUT / "search.png", reference=reference))
