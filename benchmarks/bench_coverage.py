"""How much of a file's reference alternatives SIMP itself finds again: the scale for coverage.

    python benchmarks/bench_coverage.py --data alt.h5 --limit 20 -k 16 --attempts 30

For the first ``--limit`` held-out problems of a file made with ``generate --alternatives``, the
alternatives search runs again with the file's own search settings but another seed (and ``-k``
designs from ``--attempts`` restarts), and the coverage of the stored references is measured as
`evaluate` measures a model's: `workflows._diversity.coverage` (Naeem et al.'s: the share of
references with a design nearer than their nearest other reference) and the stricter share
reproduced (a design within 1 - IoU 0.15). A model's figures are judged against these, not
against 100 %.

    python benchmarks/bench_coverage.py --data alt.h5 --model run/best.pt --limit 80 -k 16

With ``--model``, where a conditional model loses coverage on the same held-out problems, the
references of each problem (the file's alternatives) against two sets of ``-k`` decodes,
binarised as `evaluate` judges them, and against their own reconstructions:

- prior       u ~ N(0, I) (u = 0 first), the designs `evaluate` and the workflows sample;
- posterior   the oracle: u ~ q(u | x_i, c), the posteriors of the problem's own references
              taken in turn (the aggregated posterior): what a prior that matched it would give;
- reconstruction each reference's posterior mean, decoded: is it inside its own ball?

Per reference it also estimates the prior's mass in its coverage ball (the share of
``--prior-samples`` prior decodes inside it); a reference with mass m is covered by k
independent samples with probability 1 - (1 - m)^k. The table groups the references by their
compliance against the problem's stiffest.

Measured 2026-12-07 (``--seed 0``, 125 s), the alternatives model of docs/architecture.md
(8-epoch fine-tune, physics weight 50, tolerance 0.1), 80 held-out problems, 356 references,
k = 16, 256 prior samples: prior coverage 80 % median, 73 % mean; the posterior oracle covers
100 %; 99.7 % of the reconstructions land in their own ball; the prior puts less than 1/16 of
its mass on 37 % of the references and none of 256 samples on 13 % (median mass: the stiffest
0.52, up to 3 % less stiff 0.16, 3-6 % 0.07, more 0.05). The decoder can make every
alternative; the Gaussian prior p(z | c) spreads its mass unevenly over them.
"""

from __future__ import annotations

import argparse
import json
import time

import h5py
import numpy as np
import torch

from topovae.datasets import TopologyDataset
from topovae.models import load
from topovae.solvers import DISTINCT, compliance, find_alternatives, pairwise_distances
from topovae.solvers._alternatives import AlternativeSearch
from topovae.workflows._diversity import coverage, coverage_radii, solids
from topovae.workflows._evaluate import _load_split
from topovae.workflows._latent import LatentDecoder


def _in_balls(dec, references, ball, u) -> np.ndarray:
    """(n, m) whether the decode of each whitened u (m, D) is inside each reference's ball."""
    designs = solids(dec.numpy(u, project=True), dec.problem)
    return pairwise_distances(references, designs) < ball[:, None]


def diagnose(a) -> None:
    """The ``--model`` table (module docstring)."""
    model = load(a.model).eval()
    test = _load_split(model, a.data, "test", 0)
    g = torch.Generator().manual_seed(a.seed)
    dim = model.config.latent_dim
    prior_cov, oracle_cov, rows = [], [], []
    t0 = time.perf_counter()
    for row in test.first_designs()[: a.limit]:
        problem = test.problem(row)
        items = [test[int(j)] for j in test.group(row)]
        x = torch.stack([it["density"] for it in items])
        refs = x[:, 0].double().numpy()
        ratio = np.array([compliance(r, problem) for r in refs])
        ratio /= ratio.min()
        dec = LatentDecoder(model, problem)
        r = solids(refs, problem)
        ball = coverage_radii(r)
        u = torch.randn(a.k, dim, generator=g)
        u[0] = 0
        prior_cov.append(_in_balls(dec, r, ball, u).any(1).mean())
        mass = _in_balls(dec, r, ball, torch.randn(a.prior_samples, dim, generator=g)).mean(1)
        with torch.no_grad():
            c = dec.condition.expand(len(x), -1, -1, -1)
            feats = model.condition_features(c)
            eps = torch.randn((a.k // len(x) + 1, len(x), dim), generator=g)
            z = model.posterior_sample(x, c, feats, eps)[0]
            u_post = model.whiten(z.reshape(-1, dim), c.repeat(len(eps), 1, 1, 1),
                                  [f.repeat(len(eps), 1, 1, 1) for f in feats])[: a.k]  # fmt: skip
            u_mean = model.whiten(model.encode(x, c, feats)[0], c, feats)
        oracle_cov.append(_in_balls(dec, r, ball, u_post).any(1).mean())
        own = np.diag(_in_balls(dec, r, ball, u_mean))
        rows += list(zip(ratio, mass, own, strict=True))
    t = np.array(rows, dtype=np.float64)
    print(f"{len(prior_cov)} problems, {len(t)} references, k = {a.k}, "
          f"{time.perf_counter() - t0:.0f} s")  # fmt: skip
    print(f"coverage of k prior samples        median {100 * np.median(prior_cov):.1f} %, "
          f"mean {100 * np.mean(prior_cov):.1f} %")  # fmt: skip
    print(
        f"coverage of k posterior draws      median {100 * np.median(oracle_cov):.1f} %, "
        f"mean {100 * np.mean(oracle_cov):.1f} % (the oracle: the references' own posteriors)"
    )
    print(f"reconstructions in their own ball  {100 * t[:, 2].mean():.1f} %")
    print(
        f"references with prior mass < 1/k   {100 * np.mean(t[:, 1] < 1 / a.k):.1f} % "
        f"(none of {a.prior_samples} samples: {100 * np.mean(t[:, 1] == 0):.1f} %)"
    )
    print("| compliance / stiffest | references | prior mass, median | none | reconstructed |")
    print("|---|---|---|---|---|")
    for lo, hi in ((1.0, 1.0001), (1.0001, 1.03), (1.03, 1.06), (1.06, np.inf)):
        s = t[(t[:, 0] >= lo) & (t[:, 0] < hi)]
        if len(s):
            print(
                f"| [{lo:g}, {hi:g}) | {len(s)} | {np.median(s[:, 1]):.3f} | "
                f"{100 * np.mean(s[:, 1] == 0):.0f} % | {100 * s[:, 2].mean():.0f} % |"
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--limit", type=int, default=20)
    ap.add_argument("-k", type=int, default=16)
    ap.add_argument("--attempts", type=int, default=30)
    ap.add_argument("--seed", type=int, default=1234, help="the rerun's (--model: the samples')")
    ap.add_argument("--model", help="a conditional model's checkpoint: where it loses coverage")
    ap.add_argument("--prior-samples", type=int, default=256, help="--model: for each mass")
    a = ap.parse_args()
    if a.model:
        torch.set_num_threads(1)
        return diagnose(a)
    with h5py.File(a.data, "r") as f:
        stored = json.loads(f.attrs["alternative_search"])
    fields = AlternativeSearch.__dataclass_fields__
    search = AlternativeSearch(**{**{k: v for k, v in stored.items() if k in fields},
                                  "attempts": a.attempts})  # fmt: skip
    test = TopologyDataset(a.data, "test", in_memory=True)
    covered, reproduced, found_n, ref_n = [], [], [], []
    t0 = time.perf_counter()
    for row in test.first_designs()[: a.limit]:
        problem = test.problem(row)
        refs = np.stack([test[int(j)]["density"][0].numpy() for j in test.group(row)])
        found = find_alternatives(problem, a.k, seed=a.seed, search=search)
        designs = np.stack([r.density for r in found])
        s, r = solids(designs, problem), solids(refs, problem)
        covered.append(coverage(s, r))
        reproduced.append(coverage(s, r, DISTINCT))
        found_n.append(len(found))
        ref_n.append(len(refs))
    print(f"{len(covered)} problems, {time.perf_counter() - t0:.0f} s: SIMP's search again (seed "
          f"{a.seed}, {a.attempts} restarts) found a median {np.median(found_n):g} designs and "
          f"covers a median {100 * np.median(covered):.0f} % (mean {100 * np.mean(covered):.0f} "
          f"%) of the stored references (a median {np.median(ref_n):g} per problem) and "
          f"reproduces a median {100 * np.median(reproduced):.0f} % (mean "
          f"{100 * np.mean(reproduced):.0f} %) within 1 - IoU {DISTINCT}")  # fmt: skip


if __name__ == "__main__":
    main()
