"""Solve every preset problem and save one picture of all the designs.

Shows the Python API: presets, SIMP settings, `solve`, and the plotting helpers.

    python examples/solve_presets.py --out presets.png [--optimizer mma]
"""

import argparse

from topovae.plotting import save_results_grid
from topovae.solvers import PRESETS, preset, solve


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="presets.png")
    ap.add_argument("--optimizer", default="oc", choices=["oc", "mma"])
    args = ap.parse_args()
    results = []
    for name in PRESETS:
        result = solve(preset(name, rmin=2.0, optimizer=args.optimizer), progress=True)
        print(f"{name:<10} c = {result.compliance:10.4f}  {result.iterations:4d} it")
        results.append(result)
    print("wrote", save_results_grid(results, args.out))


if __name__ == "__main__":
    main()
