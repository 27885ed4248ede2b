"""How a prior mixture's draws decide the design space: a model with a fitted prior mixture
(`train --prior-components K`) judged by `evaluate` (k samples per held-out problem, no polish)
over several sampling seeds, with its prior samples drawn in several ways:

    iid:S          each draw picks its component at random (the Gaussian prior itself a
                   component of weight S, the fitted ones sharing 1 - S by their weights)
    systematic:S   the same weights, the k draws spread over the components systematically
                   (evenly spaced points, one random offset) and shuffled: what
                   `PriorMixture.draws` does with S = PLAIN_SHARE
    uniform:S      as systematic:S with the fitted components weighted alike (a draw for each
                   mode, however rare: coverage counts every reference alike)
    sobol:S        as systematic:S, the standard normal draws from scrambled Sobol points
                   (randomised quasi-Monte Carlo) rather than independent ones
    diverse:M      the code's draws, M x k of them decoded and k kept far apart (farthest-point
                   selection on the decoded solids, 1 - IoU, from the design at u = 0)

``--refit symmetric|plain`` first fits the mixture again from scratch to the training designs'
posterior draws with or without the grid's eight symmetries. Prints, per variant, the coverage
of the reference alternatives (median and mean over problems) and the distinct designs within
10 % of the stiffest reference (median and mean), one figure per seed:

    python benchmarks/bench_prior_draws.py --model runs/x/best.pt --data alt.h5 \\
        --variants iid:0,systematic:0,systematic:0.5,iid:1 --seeds 0,1,2,3,4
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import torch

from topovae.datasets import TopologyDataset
from topovae.models import build_model, fit_prior_mixture, load
from topovae.models._mixture import PriorMixture
from topovae.workflows import evaluate


def variant_draws(kind: str, share: float):
    """A `PriorMixture.draws` that picks components as ``kind`` says, plain share ``share``."""

    def draws(self, eps, h, generator=None):
        logits, means, log_scales = (t[0].float().cpu() for t in self(h))
        n = eps.shape[0]
        fitted_weights = logits.softmax(0)
        if kind == "uniform":  # every fitted component alike, whatever its weight
            fitted_weights = torch.full_like(fitted_weights, 1 / len(fitted_weights))
        weights = torch.cat([torch.tensor([share]), (1 - share) * fitted_weights])
        if kind == "iid":
            pick = torch.multinomial(weights, n, replacement=True, generator=generator)
        else:
            points = (torch.arange(n) + torch.rand((), generator=generator)) / n
            pick = torch.searchsorted(weights.cumsum(0), points, right=True)
            pick = pick.clamp(max=self.components)
        if kind == "sobol":  # scrambled Sobol points, the first ones to the plain prior
            seed = int(torch.randint(2**31 - 1, (), generator=generator))
            sobol = torch.quasirandom.SobolEngine(eps.shape[1], scramble=True, seed=seed)
            eps = torch.special.ndtri(sobol.draw(n).clamp(1e-6, 1 - 1e-6))
        perm = torch.randperm(n, generator=generator)
        eps, pick = eps[perm], pick[perm]
        fitted = (pick - 1).clamp(min=0)
        out = means[fitted] + torch.exp(log_scales[fitted]) * eps.float()
        return torch.where((pick == 0)[:, None], eps.float(), out)

    return draws


def diverse_draws(model, draws, oversample: float):
    """A `DesignVAE.prior_draws` that draws ``oversample`` x n, decodes them and keeps n far
    apart: the design at u = 0 first, then each time the draw whose solid (decoded density
    above 0.5) is farthest (1 - IoU) from every one kept (farthest-point selection)."""

    @torch.no_grad()
    def pick(eps, c=None, generator=None):
        n = eps.shape[0]
        m, d = round(oversample * n), eps.shape[1]
        pool = torch.cat([torch.zeros(1, d), torch.randn(m, d, generator=generator)])
        u = draws(model, pool, c, generator)
        u[0] = 0.0
        logits = model.decode_whitened(u, c.expand(len(u), *c.shape[1:]))[:, 0]
        solid = (logits > 0).flatten(1).float()
        inter = solid @ solid.T
        area = solid.sum(1)
        dist = 1 - inter / (area[:, None] + area[None] - inter).clamp(min=1)
        kept = [0]
        near = dist[0].clone()
        for _ in range(n - 1):
            near[kept] = -1
            j = int(near.argmax())
            kept.append(j)
            near = torch.minimum(near, dist[j])
        return u[kept]

    return pick


def design_space(model, data: str, seeds, k: int, limit: int) -> str:
    """`evaluate`'s coverage and distinct designs within 10 % of the test split's first
    ``limit`` problems, k prior samples each (no polish), one figure per sampling seed."""
    rows = []
    for s in seeds:
        d = evaluate(model, data, "test", k=k, polish=0, seed=s, limit=limit,
                     device="cpu")["diversity"]  # fmt: skip
        rows.append([d["coverage_median"], d["coverage_mean"], d["distinct_10_median"],
                     d["distinct_10_mean"]])  # fmt: skip
    r = np.asarray(rows)
    pct = np.round(100 * r[:, :2]).astype(int)
    return (
        f"coverage median {pct[:, 0].tolist()} %, mean {pct[:, 1].tolist()} %; distinct "
        f"within 10 % median {r[:, 2].tolist()}, mean {np.round(r[:, 3], 2).tolist()}"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="a checkpoint with prior_components > 0")
    ap.add_argument("--data", required=True, help="the file it was trained on (alternatives)")
    ap.add_argument("--variants", default="iid:0,systematic:0,systematic:0.5,iid:1")
    ap.add_argument("--seeds", default="0,1,2,3,4")
    ap.add_argument("--refit", choices=("none", "plain", "symmetric"), default="none")
    ap.add_argument("-k", type=int, default=16)
    ap.add_argument("--limit", type=int, default=80)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    model = load(a.model)
    if not model.config.prior_components:
        raise SystemExit(f"{a.model} has no prior mixture (train --prior-components K)")
    if a.refit != "none":  # from scratch, as `Trainer` fits it after training
        fresh = build_model(model.config)
        mine = {k: v for k, v in model.state_dict().items() if not k.startswith("prior_mixture.")}
        start = {k: v for k, v in fresh.state_dict().items() if k.startswith("prior_mixture.")}
        fresh.load_state_dict({**mine, **start})
        model = fresh.eval()
        train = TopologyDataset(a.data, "train", in_memory=True, fields=True)
        val = TopologyDataset(a.data, "val", in_memory=True, fields=True)
        report = fit_prior_mixture(model, train, val, symmetries=a.refit == "symmetric")
        print(f"refit ({a.refit}): {report}")
    seeds = [int(s) for s in a.seeds.split(",")]
    plain_draws = PriorMixture.draws
    model_draws = type(model).prior_draws
    for spec in a.variants.split(","):
        kind, share = spec.split(":")
        if kind == "diverse":  # the product's draws, k of `share` x k picked far apart
            PriorMixture.draws = plain_draws
            model.prior_draws = diverse_draws(model, model_draws, float(share))
        else:
            PriorMixture.draws = variant_draws(kind, float(share))
            model.prior_draws = model_draws.__get__(model)
        print(f"{spec:>16}: {design_space(model, a.data, seeds, a.k, a.limit)}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
