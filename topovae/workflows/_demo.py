"""The main job end to end: data, a CVAE, its evaluation, a latent search, one report.

    topovae demo --out runs/demo            # ~32x32, a few minutes on 2 CPU cores
    topovae demo --out runs/demo --quick    # the same steps, tiny, about a minute (CI)

Steps, each writing into ``out``: generate a dataset of TopoDiff-like problems (one boundary
load, random supports and volume fraction; data.h5, data.png), train a CVAE conditioned on the
problem and its full-material fields (a U-Net CVAE with a learned prior p(z | c), trained with
flips and quarter turns of every design; model/), evaluate it on the held-out split
(evaluation/), search its latent space with random sampling, CMA-ES and gradient descent for a
problem that is not in the data (an MBB beam), polish the best design with a few SIMP
iterations and compare with SIMP (search/), hand out distinct good designs for that problem and
a held-out one (`alternatives`; alternatives/), draw prior samples and an interpolation
(explore/), and write report.json, report.md, report.html.
Every step is seeded; a finished dataset or model is reused when the demo runs again.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._checks import output_folder
from ..solvers import ProblemError
from ..solvers.batched import resolve_device
from ._latent import WorkflowError


@dataclass(frozen=True)
class DemoPlan:
    size: int  # square grid
    n: int  # designs in the dataset
    epochs: int
    batch: int
    base_width: int
    latent_dim: int
    k: int  # samples per evaluated problem
    ctol: float  # the labels' compliance stopping rule (SIMPSettings.ctol)
    physics_epochs: int  # the last epochs add the physics term on prior samples
    eval_limit: int
    budget: int  # FE evaluations per search method
    polish: int


# "full" trains 70 epochs on labels stopped by ctol 3e-4 (at 32x32 twice as fast to make, a median
# 0.04 % and at most 1.5 % above the converged compliance), the last 20 with the physics term on
# prior samples: training 353 s on 2 cores, first-design median CE 3.86 % (binarised 4.16 %),
# pass 96.25 %, polished 0.24 % against SIMP's 1.10 % (2026-12-07). Trials on the same data:
# 100 epochs without the term, 437 s and 4.00 % (the plan before); 70 with 10 of physics, 318 s,
# 3.50 %, pass 95.0 %; 60 with 10, 281 s but 5.06 %; 60 with 30, 338 s, 2.98 % (binarised
# 4.89 %); 80 epochs without the term, 371 s but 5.46 %. Fresh runs of this plan vary (the thread
# tuner's choice changes the float sums): first-design CE 3.86-5.78 % over six runs, one of them
# past the report's 5 % target (2026-12-07). With the first design guided (evaluate's default),
# three training seeds (benchmarks/bench_demo_plan.py): 70 with 20, first CE 3.02-3.66 % raw,
# 3.06-3.27 % binarised, pass 96.25-100 %; shorter plans miss a target on some seed: 60 with
# 20, 5.22 % raw on seed 1; 55 with 20, 5.43 % binarised on seed 2; 55 with 15, 6.84 %; 50
# with 15, 8.41 %. Fewer operations per step, more data with fewer steps or averaged weights
# did not help either (2026-12-08, same benchmark): U-Net width 12 instead of 16 (steps ~20 %
# faster), 4.04 / 3.34 % on seed 0 but 6.15 / 5.52 % on seed 1; 1,600 problems instead of 800
# (`generate` 101 s instead of ~50) with 25 epochs, 8 of physics (500 steps instead of 700),
# 6.15 / 4.86 %, with 30 and 10 (600 steps) 8.41 / 6.69 %; EMA of the weights (0.98) with 55
# and 20, 5.65 / 5.47 % on seed 0. So 70 with 20 stays. Since validation has its own noise
# and runs only where it can pick best.pt, the same benchmark gives for 70 with 20 on seeds
# 0-2: first CE 3.58 / 3.79, 3.21 / 3.10, 2.81 / 3.15 %, pass 97.5, 95.0, 98.75 %, polished
# 0.26-0.34 % against SIMP-10's 1.10 % (2026-12-08).
PLANS = {
    "quick": DemoPlan(size=24, n=40, epochs=2, batch=32, base_width=8, latent_dim=8, k=2,
                      ctol=3e-4, physics_epochs=1, eval_limit=4, budget=16, polish=3),
    "full": DemoPlan(size=32, n=800, epochs=70, batch=64, base_width=16, latent_dim=16, k=8,
                     ctol=3e-4, physics_epochs=20, eval_limit=80, budget=120, polish=10),
}  # fmt: skip


def training_configs(plan: DemoPlan, cond_channels: int, train_size: int, device: str = "auto"):
    """The demo's (VAEConfig, TrainConfig) for its data (``cond_channels`` condition channels,
    ``train_size`` training designs): the U-Net CVAE with the dependent prior p(z | c), trained
    with symmetry augmentation (benchmarks/bench_quality.py measured the choices), and over its
    last ``plan.physics_epochs`` epochs the physics term on prior samples (16 of each batch):
    every design the model offers judged by FE, not only the reconstructions. torch's threads
    follow the machine's load (TrainConfig.threads = 0)."""
    from ..models import TrainConfig, VAEConfig

    steps = -(-train_size // plan.batch)  # per epoch
    physics = {}
    if plan.physics_epochs:
        start = max(plan.epochs - plan.physics_epochs, 0) * steps
        physics = dict(compliance_weight=200.0, compliance_decode="prior_sample",
                       compliance_samples=16, compliance_start=start)  # fmt: skip
    mcfg = VAEConfig(
        kind="cvae", height=plan.size, width=plan.size, latent_dim=plan.latent_dim,
        cond_channels=cond_channels, base_width=plan.base_width, depth=3, kl_warmup_steps=200,
        beta=0.5, **physics,
    )  # fmt: skip
    tcfg = TrainConfig(epochs=plan.epochs, batch_size=plan.batch, seed=0, device=device, lr=2e-3)
    return mcfg, tcfg


def run_demo(
    out: str | Path, *, quick: bool = False, device: str = "auto", progress: bool = True,
    log=print,
) -> dict[str, Any]:  # fmt: skip
    """Run the demo into ``out`` (see the module docstring); returns the report."""

    from ..datasets import FIELDS, TopologyDataset, distribution, generate, read_header
    from ..models import Trainer, load, read_checkpoint
    from ..plotting import save_design_grid, save_search_curves, save_solve_figure
    from ..solvers import preset, solve
    from ..solvers.batched import torch_threads
    from ._alternatives import alternatives, save_alternatives
    from ._evaluate import evaluate, markdown_report, write_report
    from ._explore import interpolate, prior_samples, save_scored_grid
    from ._judge import ce_text, score
    from ._search import METHODS, search

    plan = PLANS["quick" if quick else "full"]
    out = output_folder(out, "out", WorkflowError, parents=True)
    try:  # before the data is generated: a bad device used to fail only at training
        resolve_device(device)
    except ProblemError as e:
        raise WorkflowError(f"device: {e}") from None
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    timings: dict[str, float] = {}

    def step(name: str, t: float) -> None:
        timings[name] = round(time.perf_counter() - t, 2)
        log(f"[{time.perf_counter() - t0:6.1f} s] {name} done")

    # 1. data
    t = time.perf_counter()
    data = out / "data.h5"
    dist = distribution("topodiff-like", plan.size, plan.size)
    dist = dataclasses.replace(dist, settings=dataclasses.replace(dist.settings, ctol=plan.ctol))
    mode = "overwrite"
    if data.exists():
        h = read_header(data)
        found = (h["n_requested"], h["alternatives"], h["distribution"], h["fields"])
        same = found == (plan.n, 0, dist, FIELDS)
        mode = "resume" if same else "overwrite"
    # condition on the full-material strain energy and stress too: without them the U-Net
    # CVAE's first designs had median CE 17.1 % on this data, with them 4.2 %
    # (benchmarks/bench_quality.py --no-fields, 100 epochs). The file stores them (one more FE
    # solve per problem, on the generation's workers) instead of training computing them on one
    # core in its first epoch.
    generate(data, dist, plan.n, seed=0, mode=mode, fields=FIELDS, progress=progress)
    train_set = TopologyDataset(data, "train", in_memory=True, fields=True)
    val_set = TopologyDataset(data, "val", in_memory=True, fields=True)
    everything = TopologyDataset(data, "all")
    shown = [everything.rows[k] for k in range(min(12, len(everything)))]
    save_design_grid(
        [(everything[k]["density"][0].numpy(), everything.problem(k), f"#{int(r)}")
         for k, r in enumerate(shown)],
        out / "data.png", ncols=6,
    )  # fmt: skip
    step("dataset", t)

    # 2. model
    t = time.perf_counter()
    run = out / "model"
    mcfg, tcfg = training_configs(plan, len(train_set.condition_channels), len(train_set), device)
    last = run / "last.pt"
    resume = last.exists() and mode == "resume"
    if resume and read_checkpoint(last)["model_config"] != mcfg.to_dict():
        resume = False
    if last.exists() and not resume:  # a run of another plan or of other data: start again
        shutil.rmtree(run)
    trainer = Trainer(mcfg, tcfg, train_set, val_set, run, data_fingerprint={"demo": plan.n})
    # torch starts on every core (`make` caps BLAS at one thread for the SIMP solves, which
    # also left torch on one: 0.33 s per step instead of 0.18 on two cores); the trainer drops
    # to one thread while other processes make that faster
    with torch_threads(os.cpu_count()):
        trainer.fit(resume=resume, progress=progress)
    model = load(run / "best.pt")
    step("training", t)

    # 3. evaluation on the held-out split
    t = time.perf_counter()
    report = evaluate(
        model, data, "test", k=plan.k, polish=plan.polish, seed=0, limit=plan.eval_limit,
        device=device, progress=progress,
    )  # fmt: skip
    write_report(report, out / "evaluation")
    step("evaluation", t)

    # 4. latent search on an unseen problem, with polish, against SIMP
    t = time.perf_counter()
    problem = preset("mbb", plan.size, plan.size, 0.4).with_settings(filter="density", rmin=2.0)
    simp = solve(problem)
    (out / "search").mkdir(exist_ok=True)
    save_solve_figure(simp, out / "search" / "simp.png")
    searches = {}
    for m in METHODS:
        searches[m] = search(
            model, problem, method=m, budget=plan.budget, seed=0, polish=plan.polish,
            reference=simp.density, device=device, progress=progress,
        )  # fmt: skip
    short = solve(problem.with_settings(max_iter=plan.polish))
    short_ce = float(score(short.density[None], problem, simp.density[None])["ce"][0])
    save_search_curves(
        {m: r.best_so_far for m, r in searches.items()}, out / "search" / "curves.png",
        reference=simp.compliance,
    )  # fmt: skip
    items = [(simp.density, problem, f"SIMP C={simp.compliance:.4g}")]
    for m, r in searches.items():
        items.append((r.density, problem, f"{m}: CE={ce_text(r.score['ce'][0])}"))
        polished = f"{m}+{plan.polish} it: CE={ce_text(r.polished_score['ce'][0])}"
        items.append((r.polished.density, problem, polished))
    save_design_grid(items, out / "search" / "designs.png", ncols=len(items))
    step("search", t)

    # 5. alternatives: distinct good designs for the unseen MBB beam and a held-out problem
    t = time.perf_counter()
    (out / "alternatives").mkdir(exist_ok=True)
    test = TopologyDataset(data, "test", in_memory=True, fields=True)
    held = int(test.first_designs()[0])
    cases = {
        "mbb": (problem, simp.density),
        f"held-out #{int(test[held]['index'])}": (
            test.problem(held),
            test[held]["density"][0].numpy().astype(np.float64),
        ),
    }
    alts = {}
    for name, (p, ref) in cases.items():
        found = alternatives(model, p, plan.k, samples=8 * plan.k, polish=plan.polish,
                             reference=ref, seed=0, device=device)  # fmt: skip
        png = out / "alternatives" / f"{name.split()[0].replace('-', '_')}.png"
        save_alternatives(found, png, reference=ref)
        alts[name] = {**found.summary(), "picture": str(png.relative_to(out))}
    step("alternatives", t)

    # 6. explore: prior samples for the unseen problem, an interpolation between two test designs
    t = time.perf_counter()
    (out / "explore").mkdir(exist_ok=True)
    samples = prior_samples(model, 8, problem, seed=0, device=device)
    save_scored_grid(samples, problem, out / "explore" / "samples.png",
                     [f"sample {k}" for k in range(8)], reference=simp.density)  # fmt: skip
    first = test.first_designs()
    a, b = test[int(first[0])], test[int(first[1])]
    path = interpolate(
        model, a["density"][0].numpy(), b["density"][0].numpy(), steps=6, method="slerp",
        conditions=(a["condition"].numpy(), b["condition"].numpy()), device=device,
    )  # fmt: skip
    save_scored_grid(path, None, out / "explore" / "interpolation.png",
                     [f"t={x:.1f}" for x in np.linspace(0, 1, 6)], ncols=6)  # fmt: skip
    step("explore", t)

    # 7. the one-page report
    summary = {
        "plan": plan.__dict__,
        "seconds": round(time.perf_counter() - t0, 1),
        "timings": timings,
        "evaluation": {k: v for k, v in report.items() if not k.startswith("_")},
        "metrics": report["metrics"],
        "search": {
            "problem": problem.name,
            "simp_compliance": simp.compliance,
            "simp_iterations": simp.iterations,
            "methods": {m: r.summary() for m, r in searches.items()},
            "simp_same_iterations_ce": short_ce,
        },
        "alternatives": alts,
    }
    tmp = out / "report.json.tmp"
    tmp.write_text(json.dumps(summary, indent=2))
    tmp.replace(out / "report.json")
    _page(summary, out, markdown_report(summary["evaluation"]))
    log(f"wrote {out / 'report.md'} ({summary['seconds']:.0f} s)")
    return summary


def _page(summary: dict[str, Any], out: Path, evaluation_md: str) -> None:
    from ._report import html_page, md_escape

    s = summary["search"]
    lines = [
        "# topovae demo",
        "",
        f"A CVAE trained on {summary['plan']['n']} generated {summary['plan']['size']}x"
        f"{summary['plan']['size']} designs (80 % of them; the rest are held out). The demo "
        f"took {summary['seconds']:.0f} s: "
        + ", ".join(f"{k} {v:.0f} s" for k, v in summary["timings"].items())
        + " (steps whose results were already on disk are reused).",
        "",
        "![dataset](data.png)",
        "",
        evaluation_md.replace("# Evaluation", "## Evaluation"),
        "![cases](evaluation/cases.png)",
        "",
        f"## Latent search on an unseen problem ({md_escape(s['problem'])}, SIMP C = "
        f"{s['simp_compliance']:.5g})",
        "",
        "| method | FE evaluations | best CE | CE after polish |",
        "|---|---|---|---|",
    ]
    for m, r in s["methods"].items():
        ce = r["score"]["ce"]
        pce = r["polished_score"]["ce"] if r["polished_score"] else float("nan")
        lines.append(f"| {m} | {r['evaluations']} | {100 * ce:+.2f} % | {100 * pce:+.2f} % |")
    lines.append(
        f"| SIMP from a uniform start | {summary['plan']['polish']} iterations | "
        f"{100 * s['simp_same_iterations_ce']:+.2f} % | |"
    )
    lines += [
        "",
        "![search designs](search/designs.png)",
        "",
        "![search curves](search/curves.png)",
        "",
        "## A design space: distinct good designs for one problem",
        "",
        f"`topovae alternatives`: {summary['plan']['k'] * 8} latent vectors decoded and judged, "
        f"the stiffest distinct ones polished with {summary['plan']['polish']} SIMP iterations "
        "and grouped (distinct: 1 - IoU of the binarised solids >= 0.15), ranked by "
        "compliance. The demo's data holds SIMP's one design per problem, so its latent mostly "
        "varies detail; a model trained on several near-optimal designs per problem (`generate "
        "--alternatives`, benchmarks/bench_quality.py) spans more of them.",
        "",
        "| problem | distinct designs | within 10 % of the stiffest | CE of each (against SIMP) "
        "| seconds |",
        "|---|---|---|---|---|",
    ]
    for name, alt in summary.get("alternatives", {}).items():
        ces = ", ".join(f"{100 * d['ce']:+.1f} %" for d in alt["designs"] if d["ce"] is not None)
        lines.append(
            f"| {md_escape(name)} | {alt['distinct']} | {alt['distinct_within_tol']} | {ces} | "
            f"{alt['seconds']:.1f} |"
        )
    lines.append("")
    for name, alt in summary.get("alternatives", {}).items():
        lines += [f"![alternatives for {md_escape(name)}]({alt['picture']})", ""]
    lines += [
        "![prior samples](explore/samples.png)",
        "",
        "![interpolation](explore/interpolation.png)",
    ]
    md = "\n".join(lines) + "\n"
    (out / "report.md").write_text(md)
    (out / "report.html").write_text(html_page(md, "topovae demo"))
