"""Solve every preset problem with SIMP and draw all the designs in one picture.

Shows the solver API: presets, SIMP settings, `solve`, its result, the plotting helpers.
Takes about 20 s on one core (a second with TOPOVAE_EXAMPLE_SCALE=tiny, as CI runs it).
Run as a script, or open it as a notebook (the # %% cells: VS Code, jupytext).
"""

# %% settings: the output folder, and a tiny scale for CI
import os
from pathlib import Path

TINY = os.environ.get("TOPOVAE_EXAMPLE_SCALE") == "tiny"
OUT = Path(os.environ.get("TOPOVAE_EXAMPLE_OUT", "examples_out"))
OUT.mkdir(exist_ok=True)

# %% solve each preset (the presets' own grids; 20x10 at the tiny scale)
from topovae.plotting import save_results_grid
from topovae.solvers import PRESETS, preset, solve

grid = {"nelx": 20, "nely": 10} if TINY else {}
results = []
for name in PRESETS:
    result = solve(preset(name, **grid, rmin=2.0, max_iter=20 if TINY else 500))
    print(f"{name:<10} C = {result.compliance:10.4f}  {result.iterations:4d} iterations")
    results.append(result)

# %% one picture of all the designs, each with its supports and loads
print("wrote", save_results_grid(results, OUT / "presets.png"))
