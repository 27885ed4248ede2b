"""A trained cvae on problem kinds its training distribution never samples.

    python benchmarks/bench_unseen.py runs/demo/model/best.pt [--data runs/demo/data.h5]

The kinds (on the model's grid, SIMP settings of the model's training data, so that the
references are made as its labels were): the six presets (MBB beam, cantilever, L-bracket with
a passive void, bridge with a passive deck under a distributed load, Michell arch at volume
fraction 0.2, two load cases), each also at volume fraction 0.3 (a model conditioned on one
load case skips the two-load ones), and six problems of the "mixed"
distribution (1-3 loads anywhere, point or distributed, holes, volume fraction 0.25-0.6). For
each: the model's first design (the prior mean, decoded as the workflows return it: projected
onto the volume fraction, guided away from floating material as `evaluate` guides it (``--guide
0``: not), load paths connected) and the decoder's design alone, judged by
`score` against SIMP's design from its uniform start. Prints a row per kind and the medians, the
worst CE and the share of designs with floating material.
"""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np
import torch

from topovae.datasets import distribution, read_header
from topovae.datasets._sampling import sample_problem
from topovae.models import load
from topovae.solvers import PRESETS, ProblemError, preset, solve
from topovae.workflows import WorkflowError
from topovae.workflows._judge import score
from topovae.workflows._latent import GUIDE_STEPS, LatentDecoder


def kinds(size: int, settings) -> list:
    out = []
    for name in PRESETS:
        own = preset(name, size, size)
        out.append((f"{name} vf {own.volfrac:g}", own))
        if own.volfrac != 0.3:
            out.append((f"{name} vf 0.3", preset(name, size, size, 0.3)))
    mixed = distribution("mixed", size, size)
    out += [(f"mixed #{k}", sample_problem(mixed, 7, k)) for k in range(6)]
    keep = {f.name: getattr(settings, f.name) for f in dataclasses.fields(settings)}
    return [(label, p.replace(settings=dataclasses.replace(p.settings, **keep)))
            for label, p in out]  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("checkpoint")
    ap.add_argument("--data", default=None, help="the model's training data (its SIMP settings)")
    ap.add_argument("--guide", type=int, default=None,
                    help=f"guidance steps on the first design (default: as evaluate guides "
                    f"it, {GUIDE_STEPS} for a continuous latent; 0: off)")  # fmt: skip
    a = ap.parse_args()
    torch.manual_seed(0)
    model = load(a.checkpoint)
    if a.guide is None:
        a.guide = GUIDE_STEPS if model.continuous_latent else 0
    size = model.config.height
    settings = preset("mbb", size, size).settings
    if a.data:
        settings = read_header(a.data)["distribution"].settings
    rows = []
    print(
        f"{'kind':<22} {'SIMP C':>9} {'first CE':>9} {'bin CE':>9} {'alone CE':>9} {'floating':>8}"
    )
    for label, problem in kinds(size, settings):
        try:
            simp = solve(problem)
            u = torch.zeros(1, model.config.latent_dim)
            u = LatentDecoder(model, problem).guided(u, a.guide)
            firsts = [LatentDecoder(model, problem, connect=c).numpy(u, project=True)[0]
                      for c in (True, False)]  # fmt: skip
        except (ProblemError, WorkflowError) as e:
            print(f"{label:<22} skipped: {e}")
            continue
        s = score(np.stack(firsts), problem, simp.density)
        rows.append((s["ce"][0], s["ce_binary"][0], s["ce"][1], s["floating"][1] > 0))
        print(f"{label:<22} {simp.compliance:9.4g} {100 * s['ce'][0]:8.2f}% "
              f"{100 * s['ce_binary'][0]:8.2f}% {100 * s['ce'][1]:8.2f}% "
              f"{'yes' if s['floating'][1] > 0 else 'no':>8}")  # fmt: skip
    r = 100 * np.asarray(rows, dtype=float)
    print(f"\n{len(r)} kinds: first-design CE median {np.median(r[:, 0]):.2f} % (binarised "
          f"{np.median(r[:, 1]):.2f} %), worst {r[:, 0].max():.1f} %, above 100 %: "
          f"{int((r[:, 0] > 100).sum())}; the decoder alone: median {np.median(r[:, 2]):.2f} "
          f"%, worst {r[:, 2].max():.1f} %, floating in {r[:, 3].mean():.0f} %")  # fmt: skip


if __name__ == "__main__":
    main()
