"""Distinct good designs for one problem from a trained model, in seconds.

    from topovae.workflows import alternatives
    alt = alternatives(model, preset("mbb", 32, 32, 0.4), k=8, polish=10)
    alt.designs, alt.compliance          # (m, H, W) best first, m <= k; (m,)
    alt.summary()                        # JSON-able

Steps: decode ``samples`` latent vectors (u = 0, the prior mean, and prior samples u ~ N(0, T^2 I)
at ``temperature`` T;
projected onto the volume fraction, load paths connected), judge each by FE compliance, take
the stiffest distinct candidates (up to ``2 k``, the module-wide definition: 1 - IoU of the
binarised solids >= 0.15), polish each with ``polish`` SIMP iterations warm-started from it,
judge again and group the polished designs into distinct ones, stiffest first. The best of each
group is returned, ranked by compliance; ``within`` marks those within ``tol`` of the stiffest
(with a ``reference`` design, e.g. SIMP's, the CE figures are against it).

``deflate`` (the default): each candidate is polished under the deflation penalty of
`solvers.Deflation` against the candidates polished before it (Baeck et al. 2024, the penalty
`generate --alternatives` uses, with its default reach and height: a height of 3 gave the same
counts, a median 6.5 against 7.5 distinct within 10 %),
then ``polish // 2`` plain SIMP iterations settle it; and when the decoded samples hold fewer
than 2 k distinct candidates the polish starts again from them in turn until 2 k are
polished. So a model whose latent holds one design per problem (trained on one SIMP design
each, as the demo's) still hands out distinct good designs, each a few SIMP iterations from
one of its own. Measured on 12 held-out problems of the demo model
(`benchmarks/bench_alternatives_deflation.py`): distinct designs within 10 % a median 3 ->
7.5, problems with >= 3 of them 58 -> 83 %, the stiffest design's compliance +0.07 %
(median), 0.7 -> 1.1 s each; for a model trained on several designs per problem (the
alternatives file) 3 -> 8, 75 -> 100 %, +0.18 %.

The default temperature 1.5 reaches further than the prior's own spread: on 20 held-out
problems of the 32x32 alternatives file (k = 8, 64 samples, polish 10) it gave a median of 5
distinct designs within 10 % instead of 3 for a cvae trained with the physics term on prior
samples (whose samples are all good but close together), and 6.5 instead of 5 for one trained
without it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..models._config import check_model
from ..solvers import DISTINCT, Deflation, Problem, distinct, pairwise_distances, solve
from ..solvers._problem import MAX_ITERATIONS, check_problem
from ._diversity import solids
from ._judge import ComplianceOracle, score
from ._latent import LatentDecoder, WorkflowError, check_count, check_seed, check_temperature

TEMPERATURE = 1.5  # the prior samples' spread (see the module docstring)


@dataclass
class Alternatives:
    """What `alternatives` returns (best first)."""

    problem: Problem
    designs: np.ndarray  # (m, H, W) the distinct designs, polished
    compliance: np.ndarray  # (m,)
    ce: np.ndarray  # (m,) against ``reference`` (NaN without one)
    decoded: np.ndarray  # (m, H, W) each design as the model decoded it, before polishing
    decoded_compliance: np.ndarray  # (m,)
    latent: np.ndarray  # (m, D) whitened latent vector of each
    within: np.ndarray  # (m,) bool: within tol of the stiffest
    tol: float
    samples: int
    polish: int
    seconds: float
    pairwise: float = field(default=0.0)  # mean 1 - IoU between the returned designs
    temperature: float = field(default=TEMPERATURE)  # the prior samples' spread
    deflate: bool = field(default=False)  # polished under deflation (see the module docstring)

    def summary(self) -> dict[str, Any]:
        return {
            "problem": self.problem.name,
            "designs": [
                {
                    "rank": j,
                    "compliance": float(self.compliance[j]),
                    "ce": None if np.isnan(self.ce[j]) else float(self.ce[j]),
                    "decoded_compliance": float(self.decoded_compliance[j]),
                    "within_tol": bool(self.within[j]),
                    "latent": [round(float(v), 4) for v in self.latent[j]],
                }
                for j in range(len(self.compliance))
            ],
            "distinct": len(self.compliance),
            "distinct_within_tol": int(self.within.sum()),
            "tol": self.tol,
            "pairwise_1_minus_iou": self.pairwise,
            "samples": self.samples,
            "temperature": self.temperature,
            "polish_iterations": self.polish,
            "deflate": self.deflate,
            "seconds": self.seconds,
        }


def alternatives(
    model,
    problem: Problem,
    k: int = 8,
    *,
    samples: int = 64,
    polish: int = 10,
    tol: float = 0.10,
    seed: int = 0,
    temperature: float = TEMPERATURE,
    reference: np.ndarray | None = None,
    device=None,
    drop: tuple[str, ...] = (),
    deflate: bool = True,
) -> Alternatives:
    """See the module docstring. ``drop``: condition groups to leave out (a partial condition,
    `LatentDecoder`); ``deflate``: polish under deflation (without ``polish``, nothing to
    deflate)."""
    check_model(model)
    check_problem(problem)
    k = check_count(k, "-k", high=64)
    samples = check_count(samples, "--samples", low=k)
    polish = check_count(polish, "--polish (SIMP iterations)", low=0, high=MAX_ITERATIONS)
    seed = check_seed(seed)
    if isinstance(tol, bool) or not isinstance(tol, int | float) or not 0 <= tol <= 10:
        raise WorkflowError(f"--tol must be a number in [0, 10] (relative compliance), got {tol!r}")
    check_temperature(temperature)
    if not isinstance(deflate, bool):
        raise WorkflowError(f"deflate must be True or False, got {deflate!r}")
    deflate = deflate and polish > 0
    if reference is not None:
        reference = np.asarray(reference, dtype=np.float64)
        if reference.shape != problem.shape:
            raise WorkflowError(
                f"reference must have shape {problem.shape} (nely, nelx), got {reference.shape}"
            )
    t0 = time.perf_counter()
    dec = LatentDecoder(model, problem, device, drop=drop)
    oracle = ComplianceOracle(None if dec.device.type == "cpu" else dec.device)
    g = torch.Generator().manual_seed(seed)
    u = dec.prior_draws(temperature * torch.randn(samples, dec.latent_dim, generator=g), g)
    u[0] = 0.0
    decoded = dec.numpy(u, project=True)
    c = oracle(decoded, [problem] * len(decoded))
    order = np.argsort(c, kind="stable")
    keep = [int(order[i]) for i in distinct(solids(decoded[order], problem))][: 2 * k]
    polished = decoded[keep]
    if deflate:
        keep = (keep * (2 * k))[: 2 * k]  # fewer distinct candidates: start again from each
        polished = _deflated_polish(problem, decoded[keep], polish)
    elif polish:
        few = problem.with_settings(max_iter=polish)
        polished = np.stack([solve(few, x0=decoded[j]).density for j in keep])
    pc = oracle(polished, [problem] * len(polished))
    rank = np.argsort(pc, kind="stable")
    groups = [int(rank[i]) for i in distinct(solids(polished[rank], problem))][:k]
    ref = None if reference is None else np.broadcast_to(reference, (len(groups), *problem.shape))
    s = score(polished[groups], problem, ref, oracle=oracle)
    d = pairwise_distances(solids(polished[groups], problem))
    pairs = d[np.triu_indices(len(groups), 1)]
    chosen = [keep[j] for j in groups]
    return Alternatives(
        problem=problem, designs=polished[groups], compliance=pc[groups], ce=s["ce"],
        decoded=decoded[chosen], decoded_compliance=c[chosen], latent=u[chosen].numpy(),
        within=pc[groups] <= (1 + tol) * pc[groups].min(), tol=float(tol), samples=samples,
        polish=polish, seconds=time.perf_counter() - t0,
        pairwise=float(pairs.mean()) if pairs.size else 0.0, temperature=float(temperature),
        deflate=deflate,
    )  # fmt: skip


def _deflated_polish(problem: Problem, starts: np.ndarray, polish: int) -> np.ndarray:
    """Each start polished ``polish`` SIMP iterations under deflation against the designs
    polished before it, then ``polish // 2`` plain iterations: (n, H, W)."""
    deflated = problem.with_settings(max_iter=polish)
    settle = problem.with_settings(max_iter=max(1, polish // 2))
    done: list[np.ndarray] = []
    for x0 in starts:
        penalty = Deflation(np.stack(done)) if done else None
        x = solve(deflated, x0=x0, deflation=penalty).density
        done.append(solve(settle, x0=x).density)
    return np.stack(done)


def save_alternatives(alt: Alternatives, path, reference: np.ndarray | None = None):
    """A PNG: (the reference, then) each distinct design with its compliance and CE."""
    from ..plotting import save_design_grid
    from ._judge import ce_text

    items = []
    if reference is not None:
        items.append((reference, alt.problem, "reference"))
    for j, (x, cj) in enumerate(zip(alt.designs, alt.compliance, strict=True)):
        label = f"#{j + 1} C={cj:.4g}"
        if not np.isnan(alt.ce[j]):
            label += f" CE={ce_text(alt.ce[j])}"
        items.append((x, alt.problem, label))
    return save_design_grid(items, path, ncols=min(len(items), 5))


__all__ = ["DISTINCT", "Alternatives", "alternatives", "save_alternatives"]
