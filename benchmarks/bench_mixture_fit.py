"""How the prior mixture's fit decides its density on new problems: the training designs'
whitened posterior draws of a model (under the grid's eight symmetries, as `fit_prior_mixture`
takes them) fitted by mixtures of several shapes, each printed with the val split's mean
log-density per design (higher is better; the Gaussian prior's for scale) and the training
draws' (the gap is overfitting). ``--evaluate`` also draws the best of them in the model's
place and prints coverage and distinct designs over five sampling seeds, as
`bench_prior_draws.py` does:

    python benchmarks/bench_mixture_fit.py --model runs/x/best.pt --data alt.h5 --evaluate
    python benchmarks/bench_mixture_fit.py ... --variants "as fitted" --half --evaluate

``--half`` fits to the designs of every other training problem only (does the fit want more
problems?).

Variants: as `fit_prior_mixture` fits it (6 components, hidden 64, weight decay 1e-3); one
mixture for every problem (the features zeroed: is the condition worth it?); hidden 16 and
256; weight decay 1e-2; 12 components; lr 3e-4 over 3,000 steps.
"""

from __future__ import annotations

import argparse
import math
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch
from bench_prior_draws import design_space  # this folder's: a script's is on sys.path

from topovae.datasets import TopologyDataset
from topovae.models import load
from topovae.models._fit import fit_early_stopped
from topovae.models._mixture import PriorMixture, _whitened_draws

VARIANTS = {
    "as fitted": {},
    "one mixture for every problem": {"condition": False},
    "hidden 16": {"hidden": 16},
    "hidden 256": {"hidden": 256},
    "weight decay 1e-2": {"weight_decay": 1e-2},
    "12 components": {"components": 12},
    "lr 3e-4, 3000 steps": {"lr": 3e-4, "steps": 3000},
}


class HalfOf:
    """The designs of ``problems`` (their indices) in ``dataset``, as a dataset."""

    def __init__(self, dataset, problems: set[int]) -> None:
        self.dataset, self.condition_channels = dataset, dataset.condition_channels
        self.rows = [i for i in range(len(dataset)) if int(dataset[i]["index"]) in problems]

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int):
        return self.dataset[self.rows[i]]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="a checkpoint with prior_components > 0")
    ap.add_argument("--data", required=True, help="the file it was trained on (alternatives)")
    ap.add_argument("--draws", type=int, default=8, help="posterior draws per design")
    ap.add_argument("--evaluate", action="store_true", help="judge the best variant's draws")
    ap.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated names")
    ap.add_argument("--half", action="store_true", help="every other training problem only")
    ap.add_argument("--seeds", default="0,1,2,3,4")
    ap.add_argument("-k", type=int, default=16)
    ap.add_argument("--limit", type=int, default=80)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    model = load(a.model)
    if not model.config.prior_components:
        raise SystemExit(f"{a.model} has no prior mixture (train --prior-components K)")
    train = TopologyDataset(a.data, "train", in_memory=True, fields=True)
    val = TopologyDataset(a.data, "val", in_memory=True, fields=True)
    names = a.variants.split(",")
    for name in names:
        if name not in VARIANTS:
            raise SystemExit(f"unknown variant {name!r}; choose from: {', '.join(VARIANTS)}")
    if a.half:
        problems = sorted({int(train[i]["index"]) for i in range(len(train))})[::2]
        train = HalfOf(train, set(problems))
    g = torch.Generator().manual_seed(0)
    h, u = _whitened_draws(model, train, a.draws, g, symmetries=True)
    hv, uv = _whitened_draws(model, val, a.draws, g, symmetries=False)
    h, u = h.repeat(a.draws, 1), u.reshape(-1, u.shape[-1])
    hv, uv = hv.repeat(a.draws, 1), uv.reshape(-1, uv.shape[-1])
    plain = float((-0.5 * uv.pow(2).sum(1) - 0.5 * uv.shape[1] * math.log(2 * math.pi)).mean())
    print(f"{len(u)} training draws; the Gaussian prior's val log-density {plain:.3f}")
    best = None
    for name in names:
        v = VARIANTS[name]
        torch.manual_seed(0)
        m = PriorMixture(h.shape[1], u.shape[1], v.get("components", 6), v.get("hidden", 64))
        ht, hvt = (h, hv) if v.get("condition", True) else (h * 0, hv * 0)
        loss, step = fit_early_stopped(
            m, lambda pick, m=m, ht=ht: -m.log_prob(u[pick], ht[pick]).mean(),
            lambda m=m, hvt=hvt: -m.log_prob(uv, hvt).mean(), len(u),
            torch.Generator().manual_seed(0), steps=v.get("steps", 1000), lr=v.get("lr", 1e-3),
            weight_decay=v.get("weight_decay", 1e-3), batch_size=256, every=50,
        )  # fmt: skip
        with torch.no_grad():
            fitted = float(m.log_prob(u, ht).mean())
        print(f"{name:>30}: val {-loss:.3f}, train {fitted:.3f} (step {step})", flush=True)
        if v.get("condition", True) and (best is None or -loss > best[0]):
            best = (-loss, name, m)
    if a.evaluate:
        if best is None:
            raise SystemExit("--evaluate needs a variant with the condition among --variants")
        model.prior_mixture = best[2]
        seeds = [int(s) for s in a.seeds.split(",")]
        print(f"{best[1]}: {design_space(model, a.data, seeds, a.k, a.limit)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
