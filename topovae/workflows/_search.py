"""Search a trained model's latent space for the stiffest design of one problem.

    from topovae.workflows import search
    r = search(model, preset("mbb", 64, 64, 0.4), method="cmaes", budget=200, seed=0, polish=10)
    r.density, r.compliance, r.best_so_far      # best design, its compliance, curve per FE solve

The objective of a latent vector z is the FE compliance of its decoded design, projected onto
the problem's volume fraction (see `LatentDecoder`), so every candidate meets the constraint.
The search space is the box |u_i| <= ``bound`` in the whitened coordinates u of `LatentDecoder`
(z = mu(c) + sigma(c) u; ``bound`` = 3: 99.7 % of the problem's prior per axis, whichever prior
the model has).
Methods, each spending at most ``budget`` FE solves:

- ``random``: prior samples (the baseline);
- ``cmaes``: CMA-ES (the `cma` package) from the prior mean (u = 0) with step size 1;
- ``gradient``: Adam on ``starts`` prior samples at once, through the decoder and the adjoint
  compliance gradient; one step costs ``starts`` solves.

``polish`` > 0 then runs that many SIMP iterations warm-started from the best design (counted as
that many more solves). Every random choice comes from ``seed``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..models._config import check_model
from ..solvers import Problem, SolveResult, solve
from ..solvers._problem import MAX_ITERATIONS, check_problem
from ._judge import ComplianceOracle, score
from ._latent import LatentDecoder, WorkflowError, check_count, check_seed

METHODS = ("random", "cmaes", "gradient")


@dataclass
class SearchResult:
    method: str
    problem: Problem
    density: np.ndarray  # best design found (volume-projected), (H, W)
    z: np.ndarray  # its latent vector
    compliance: float
    history: np.ndarray  # compliance of every evaluation, in order
    seconds: float
    score: dict[str, np.ndarray] = field(default_factory=dict)  # the judge on the best design
    polished: SolveResult | None = None
    polished_score: dict[str, np.ndarray] | None = None

    @property
    def evaluations(self) -> int:
        return len(self.history)

    @property
    def best_so_far(self) -> np.ndarray:
        return np.minimum.accumulate(self.history)

    def summary(self) -> dict[str, Any]:
        """JSON-ready figures (compliances; CE where a reference was given)."""

        def first(s):
            return {k: float(v[0]) for k, v in s.items()} if s else None

        return {
            "method": self.method,
            "problem": self.problem.name,
            "evaluations": self.evaluations,
            "compliance": self.compliance,
            "seconds": self.seconds,
            "best_so_far": self.best_so_far.tolist(),
            "score": first(self.score),
            "polish_iterations": None if self.polished is None else self.polished.iterations,
            "polished_score": first(self.polished_score),
        }


MAX_BUDGET = 1_000_000  # FE evaluations of one search (hours on a 64x64 grid)


def check_budget(budget: Any) -> int:
    return check_count(budget, "--budget (FE evaluations)", high=MAX_BUDGET)


def search(
    model,
    problem: Problem,
    *,
    method: str = "cmaes",
    budget: int = 200,
    seed: int = 0,
    polish: int = 0,
    reference: np.ndarray | None = None,
    starts: int = 8,
    lr: float = 0.1,
    bound: float = 3.0,
    device=None,
    progress: bool = False,
) -> SearchResult:
    """See the module docstring. ``reference``: a (H, W) design (SIMP's) for the CE figures."""
    check_model(model)
    check_problem(problem)
    if method not in METHODS:
        raise WorkflowError(
            f"unknown search method {method!r}; choose one of: {', '.join(METHODS)}"
        )
    if method == "gradient" and not model.continuous_latent:
        raise WorkflowError(
            f"gradient search follows the decoder's gradient; a {model.config.kind}'s codes are "
            "discrete: use method 'cmaes' or 'random'"
        )
    budget = check_budget(budget)
    seed = check_seed(seed)
    check_count(polish, "--polish (SIMP iterations)", low=0, high=MAX_ITERATIONS)
    check_count(starts, "--starts")
    for name, v in (("lr", lr), ("bound", bound)):
        if isinstance(v, bool) or not isinstance(v, int | float) or not 0 < v < math.inf:
            raise WorkflowError(f"{name} must be a finite number > 0, got {v!r}")
    dec = LatentDecoder(model, problem, device)
    oracle = ComplianceOracle(None if dec.device.type == "cpu" else dec.device)
    t0 = time.perf_counter()
    history: list[float] = []
    best: dict[str, Any] = {"c": np.inf}
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=budget, desc=f"search {method}", unit="eval")

    def evaluate(z: np.ndarray) -> np.ndarray:
        rho = dec.numpy(torch.from_numpy(np.asarray(z, np.float32)), project=True)
        c = oracle(rho, [problem] * len(rho))
        record(z, rho, c)
        return c

    def record(z, rho, c) -> None:
        history.extend(c.tolist())
        k = int(np.argmin(c))
        if c[k] < best["c"]:
            best.update(c=float(c[k]), z=np.asarray(z[k], np.float64), rho=rho[k])
        if bar is not None:
            bar.update(len(c))
            bar.set_postfix(best=f"{best['c']:.5g}", refresh=False)

    rng = np.random.default_rng(seed)
    d = dec.latent_dim
    try:
        if method == "random":
            while len(history) < budget:
                n = min(64, budget - len(history))
                evaluate(np.clip(rng.standard_normal((n, d)), -bound, bound))
        elif method == "cmaes":
            _cmaes(evaluate, d, budget, rng, bound, history)
        else:
            _gradient(dec, oracle, problem, record, d, budget, rng, bound, starts, lr, history)
    finally:
        if bar is not None:
            bar.close()
    result = SearchResult(
        method, problem, best["rho"], best["z"], best["c"], np.asarray(history),
        time.perf_counter() - t0,
    )  # fmt: skip
    ref = None if reference is None else np.asarray(reference)[None]
    result.score = score(result.density[None], problem, ref, oracle=oracle)
    if polish:
        result.polished = solve(problem.with_settings(max_iter=polish), x0=result.density)
        result.polished_score = score(result.polished.density[None], problem, ref, oracle=oracle)
    return result


def _cmaes(evaluate, d: int, budget: int, rng: np.random.Generator, bound: float, history):
    import cma

    opts = {
        "seed": int(rng.integers(1, 2**31 - 1)),  # cma reads seed 0 as "from the clock"
        "bounds": [-bound, bound],
        "verbose": -9,
        "CMA_diagonal": False,
    }
    es = cma.CMAEvolutionStrategy(np.zeros(d), 1.0, opts)
    while len(history) < budget and not es.stop():
        xs = es.ask()
        take = min(len(xs), budget - len(history))
        f = evaluate(np.asarray(xs[:take]))
        if take < len(xs):  # the budget ends inside this generation
            break
        es.tell(xs, f.tolist())


def _gradient(dec, oracle, problem, record, d, budget, rng, bound, starts, lr, history):
    n = min(starts, budget)
    z = torch.tensor(
        np.clip(rng.standard_normal((n, d)), -bound, bound), dtype=torch.float32,
        device=dec.device, requires_grad=True,
    )  # fmt: skip
    opt = torch.optim.Adam([z], lr=lr)
    while len(history) + n <= budget:
        rho = dec.designs(z, project=True)
        # judged as returned (load paths connected); the adjoint gradient there passes through
        # the unconnected decode, which is exact wherever the connection changes nothing
        rho_np = dec.numpy(z.detach(), project=True)
        c, dc = oracle.gradient(rho_np, [problem] * n)
        record(z.detach().cpu().numpy(), rho_np, c)
        opt.zero_grad()
        # d(sum c)/dz = (dc/drho) . (drho/dz); scaled per start so each start moves at its pace
        weight = torch.as_tensor(dc / c[:, None, None], dtype=rho.dtype, device=rho.device)
        (rho * weight).sum().backward()
        opt.step()
        with torch.no_grad():
            z.clamp_(-bound, bound)
    if len(history) < budget:  # spend the rest on the current iterates
        rest = budget - len(history)
        rho = dec.numpy(z.detach()[:rest], project=True)
        record(z.detach().cpu().numpy()[:rest], rho, oracle(rho, [problem] * rest))
