"""Evaluate a trained model on a dataset split against the SIMP designs stored there.

    from topovae.workflows import evaluate, write_report
    report = evaluate(model, "data.h5", split="test", k=8, polish=10, seed=0)
    write_report(report, "report/")      # report.json, report.md, report.html, PNG figures

For every problem of the split the model proposes ``k`` designs (prior samples, conditioned on
the problem for a CVAE), judged by `score` against the stored SIMP design. Three designs per
problem are summarised: ``first`` (the first sample alone), ``best`` (the best of k by binarised
compliance, which meets the volume fraction exactly) and ``polished`` (``best`` after ``polish``
SIMP iterations warm-started from it); ``simp_k`` is the yardstick for the polish: SIMP with
the same number of iterations from its usual uniform start. For each: compliance error CE
(mean, median, share under 1 % and 5 %; as decoded and binarised), volume fraction error,
floating material (mean share and rate of designs with any), load disrespect rate, pass rate
(CE < 100 %), greyness. Novelty is the mean absolute density difference of each best design to
its nearest training design (with the same figure for the SIMP designs as the yardstick).
Problems that today's validation refuses (files from before it) are skipped and counted.

Diversity (a design space, not one design): over the k designs of each problem, `diversity`'s
mean pairwise 1 - IoU, the number of distinct designs within 5 % and 10 % of the stiffest
reference design, and, against the problem's reference designs (its alternatives when the file
holds several per problem, else SIMP's one), coverage (Naeem et al.'s nearest-neighbour balls),
the stricter share reproduced (a design within 1 - IoU 0.15) and the generalized energy distance. A
file with alternatives is evaluated once per problem, against its stiffest design.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._checks import check_path, output_folder
from ..datasets import DatasetError, has_problems
from ..models._config import check_model
from ..models._nearest import NearestDesign
from ..models._vae import drop_condition
from ..solvers import ProblemError, solve
from ..solvers._problem import MAX_ITERATIONS
from ._diversity import diversity
from ._judge import SCORE_KEYS, ComplianceOracle, ce_text, score
from ._latent import (
    GUIDE_STEPS,
    LatentDecoder,
    Placement,
    WorkflowError,
    check_count,
    check_drop,
    check_seed,
    check_temperature,
)
from ._report import html_page, md_escape

VARIANTS = ("first", "best", "polished", "simp_k")
NEAREST = "nearest"  # the model argument that judges the nearest-training-design yardstick


def _load_split(model, data, split: str, split_seed: int):
    """The split, checked against the model (None: the nearest-design yardstick, which takes
    any grid and the base condition channels)."""
    from ..datasets import DatasetError, TopologyDataset
    from ..datasets._torch import BASE_CHANNELS

    cfg = model.config if model is not None else None
    fields = cfg is None or (cfg.conditional and cfg.cond_channels > len(BASE_CHANNELS))
    try:
        ds = TopologyDataset(data, split, split_seed=split_seed, in_memory=True, fields=fields)
    except (DatasetError, OSError, ValueError) as e:
        raise WorkflowError(str(e)) from None
    if cfg is None:
        if len(ds) == 0:
            raise WorkflowError(f"the {split!r} split of {str(data)!r} is empty")
        return ds
    dist = ds.header["distribution"]
    if (dist.nely, dist.nelx) != (cfg.height, cfg.width):
        raise WorkflowError(
            f"the model makes {cfg.width}x{cfg.height} designs; {str(data)!r} holds "
            f"{dist.nelx}x{dist.nely}"
        )
    if cfg.conditional and cfg.cond_channels != len(ds.condition_channels):
        raise WorkflowError(
            f"the model conditions on {cfg.cond_channels} channels; topovae makes "
            f"{len(BASE_CHANNELS)} (or {len(BASE_CHANNELS) + 2} with physical fields)"
        )
    if len(ds) == 0:
        raise WorkflowError(f"the {split!r} split of {str(data)!r} is empty")
    return ds


def _summary(s: dict[str, np.ndarray]) -> dict[str, float]:
    ce, ceb = s["ce"], s["ce_binary"]

    def f(x):
        return float(x) if np.isfinite(x) else None

    passing = ce[ce < 1.0]  # OAT's convention: statistics over the passing designs only
    return {
        "n": len(ce),
        "ce_mean": f(np.mean(ce)),
        "ce_median": f(np.median(ce)),
        "ce_under_1pct": f(np.mean(ce < 0.01)),
        "ce_under_5pct": f(np.mean(ce < 0.05)),
        "ce_binary_mean": f(np.mean(ceb)),
        "ce_binary_median": f(np.median(ceb)),
        "pass_rate": f(np.mean(ce < 1.0)),
        "ce_mean_passing": f(np.mean(passing)) if passing.size else None,
        "ce_median_passing": f(np.median(passing)) if passing.size else None,
        "vfe_mean": f(np.mean(s["vfe"])),
        "floating_mean": f(np.mean(s["floating"])),
        "floating_rate": f(np.mean(s["floating"] > 0)),
        "load_disrespect_rate": f(np.mean(s["bare_loads"] > 0)),
        "greyness_mean": f(np.mean(s["greyness"])),
    }


def _diversity_summary(spread: dict[str, list[float]]) -> dict[str, float]:
    """Medians (and means) over the problems of the per-problem diversity figures."""
    out = {}
    for key, values in spread.items():
        v = np.asarray(values, dtype=np.float64)
        out[f"{key}_median"] = float(np.median(v))
        out[f"{key}_mean"] = float(np.mean(v))
    return out


def _nearest_distance(x: np.ndarray, train: torch.Tensor) -> np.ndarray:
    """Mean absolute difference of each (H, W) design in ``x`` to its nearest training design."""
    q = torch.as_tensor(x.reshape(len(x), -1), dtype=torch.float32)
    out = []
    for chunk in q.split(64):
        out.append(torch.cdist(chunk, train, p=1).min(dim=1).values / train.shape[1])
    return torch.cat(out).numpy()


def evaluate(
    model,
    data,
    split: str = "test",
    *,
    k: int = 8,
    polish: int = 10,
    seed: int = 0,
    limit: int | None = None,
    split_seed: int = 0,
    device=None,
    progress: bool = False,
    mean_first: bool = True,
    project: bool = True,
    connect: bool = True,
    drop: tuple[str, ...] = (),
    temperature: float = 1.0,
    nll: int = 0,
    factors: bool = False,
    guide: int | None = None,
) -> dict[str, Any]:
    """See the module docstring. ``mean_first``: the first of the k latent vectors is the prior
    mean (the model's most likely design for the problem), the others prior samples.
    ``project``: decode as the search does, each design shifted onto the volume fraction (no FE
    involved; a design that misses the volume fraction has an incomparable compliance); without
    it the raw decoder output is judged, and the volume fraction error shows how far off it is.
    ``connect``: projected designs get their load paths connected along their grey members
    (`LatentDecoder`); False judges the decoder's projected design as it is. ``drop``: leave
    these condition groups out (a partial condition; a model trained with condition dropout):
    how good are its designs for the problem when it is told less. ``temperature`` T: the prior
    samples are u ~ N(0, T^2 I) (1: the model's own prior; `alternatives` samples at 1.5).
    ``nll`` = K > 0: also the
    marginal likelihood of the judged SIMP designs, the IWAE estimate with K samples
    (`topovae.models.log_likelihood`), beside the ELBO (the mean of the same K one-sample
    ELBOs), in nats per design and bits per element, under "likelihood". ``factors``: how
    the posterior means of the judged designs relate to the problems' known factors (normalised
    mutual information per factor and dimension, and the MIG: `workflows._factors`), under
    "factors", drawn as factors.png by `write_report`.
    ``guide`` = N > 0: the first design (the prior mean's, with ``mean_first``) is guided
    away from floating material at sampling time, at most N steps on its latent vector
    (`guide_away_from_floating`); a design that does not float is left as it is. None (the
    default): GUIDE_STEPS for a model with a continuous latent and ``mean_first``, else 0; 0
    judges the decoder's first design unguided.
    ``model`` = "nearest": the yardstick instead of a model (`NearestDesign` fitted on the
    train split): the k training designs with the nearest conditions (volume fraction and
    full-material fields), placed on the problem
    (volume fraction and passive regions, ``project``); ``nll``, ``factors`` and ``drop`` are
    a model's and are refused.
    Returns the report (JSON-ready) with per-problem rows under
    ``"problems"`` and arrays for figures under ``"_designs"`` (dropped when written)."""
    nearest = isinstance(model, str) and model == NEAREST
    if guide is not None:
        guide = check_count(guide, "--guide (steps)", low=0, high=10_000)
        if guide and not mean_first:
            raise WorkflowError(
                "--guide guides the first design, the prior mean's; with --random-first there "
                "is none (--guide 0)"
            )
    if nearest:
        flags = (("--nll", nll), ("--factors", factors), ("--drop", drop),
                 ("--temperature", temperature != 1.0), ("--guide", guide))  # fmt: skip
        for flag, value in flags:
            if value:
                raise WorkflowError(f"{flag} needs a trained model; 'nearest' is a yardstick")
        guide = 0
    else:
        check_model(model)
        if guide is None:
            guide = GUIDE_STEPS if model.continuous_latent and mean_first else 0
        elif guide and not model.continuous_latent:
            raise WorkflowError(
                f"--guide follows the gradient of a continuous latent; a {model.config.kind} has "
                "discrete codes (--guide 0)"
            )
    check_path(data, "data")
    k = check_count(k, "-k")
    polish = check_count(polish, "--polish (SIMP iterations)", low=0, high=MAX_ITERATIONS)
    seed = check_seed(seed)
    if limit is not None:
        check_count(limit, "--limit", high=None)
    if nll:
        check_count(nll, "--nll (importance samples)", high=100_000)
        if not nearest and not model.continuous_latent:
            raise WorkflowError(
                f"--nll estimates log p(x | c) through a Gaussian latent; a {model.config.kind} "
                "has discrete codes and no such estimate"
            )
    drop = () if nearest else check_drop(model, drop)
    temperature = check_temperature(temperature)
    t0 = time.perf_counter()
    try:
        problems = has_problems(data)
    except (DatasetError, OSError, ValueError):
        problems = True  # not a dataset file: `_load_split` says what is wrong with it
    if not problems:
        raise WorkflowError(
            f"{Path(data).name} holds designs without problems (imported): evaluate judges each "
            "design by FE against its problem"
            + (", and --factors reads the factors (volume fraction, loads, supports) from them"
               if factors else "")
            + ("" if not nearest else ", and the nearest training design needs their conditions")
            + "; give a file made by `topovae generate` or imported with its loads and supports"
        )  # fmt: skip
    ds = _load_split(None if nearest else model, data, split, split_seed)
    train = _load_split(None if nearest else model, data, "train", split_seed)
    yardstick = NearestDesign.fit(train) if nearest else None
    train_designs = torch.from_numpy(
        np.asarray(train._memory["density"], np.float32).reshape(len(train), -1)
    )
    firsts = ds.first_designs()  # one row per problem: its stiffest design
    rows = firsts if limit is None else firsts[:limit]
    g = torch.Generator().manual_seed(seed)
    keys = SCORE_KEYS
    scores = {v: {key: [] for key in keys} for v in VARIANTS}
    per_problem, designs, skipped = [], {v: [] for v in (*VARIANTS, "simp")}, []
    problems, spread = [], {}
    judged_x, judged_c = [], []  # the designs and conditions whose likelihood --nll estimates
    guided = 0  # first designs that guidance moved
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(rows), desc=f"evaluate {split}", unit="problem")
    try:
        for row in rows:
            if yardstick is None:
                z = temperature * torch.randn(k, model.config.latent_dim, generator=g)  # every row
                if mean_first:
                    z[0] = 0.0
            try:
                problem = ds.problem(row)
            except ProblemError as e:
                skipped.append({"index": int(ds[row]["index"]), "reason": str(e)})
                continue
            item = ds[row]
            group = ds.group(row)
            references = np.stack([ds[int(j)]["density"][0].numpy() for j in group])
            simp = item["density"][0].numpy().astype(np.float64)
            if yardstick is not None:
                oracle = ComplianceOracle(None)
                cand = yardstick.designs(item["condition"], k)
                if project:
                    cand = Placement(problem).densities(cand)
            else:
                dec = LatentDecoder(model, problem, device, connect=connect)
                oracle = ComplianceOracle(None if dec.device.type == "cpu" else dec.device)
                c = None
                if model.config.conditional:
                    c = drop_condition(item["condition"], drop) if drop else item["condition"]
                judged_x.append(item["density"])
                judged_c.append(c)
                u = model.prior_draws(z, None if c is None else c[None].to(dec.device), g)
                if mean_first:
                    u[0] = 0.0
                if guide and mean_first:
                    before = u[:1].clone()
                    u[:1] = dec.guided(u[:1], guide, c=c).to(u.device)
                    guided += int(not torch.equal(u[:1], before))
                cand = dec.numpy(u, project=project, c=c)
            s = score(cand, problem, simp, oracle=oracle)
            b = int(np.argmin(s["compliance_binary"]))
            chosen = {"first": 0, "best": b}
            for v, j in chosen.items():
                for key in keys:
                    scores[v][key].append(s[key][j])
                designs[v].append(cand[j])
            polished, short = cand[b], np.full(problem.shape, problem.volfrac)
            if polish:
                few = problem.with_settings(max_iter=polish)
                polished = solve(few, x0=cand[b]).density
                short = solve(few).density
            sp = score(np.stack([polished, short]), problem, simp, oracle=oracle)
            for key in keys:
                scores["polished"][key].append(sp[key][0])
                scores["simp_k"][key].append(sp[key][1])
            designs["polished"].append(polished)
            designs["simp_k"].append(short)
            designs["simp"].append(simp)
            problems.append(problem)
            c_ref = float(s["compliance"][0] / (1 + s["ce"][0]))
            div = diversity(cand, problem, s["compliance"], best_reference=c_ref,
                            references=references)  # fmt: skip
            for key, val in div.items():
                spread.setdefault(key, []).append(val)
            per_problem.append(
                {
                    "index": int(item["index"]),
                    "volfrac": problem.volfrac,
                    "simp_compliance": c_ref,
                    **{f"diversity_{key}": val for key, val in div.items()},
                    **{f"{v}_{key}": float(scores[v][key][-1]) for v in VARIANTS for key in keys},
                }
            )
            if bar is not None:
                bar.update()
                bar.set_postfix(
                    ce_best=f"{100 * np.median(scores['best']['ce']):.1f}%", refresh=False
                )
    finally:
        if bar is not None:
            bar.close()
    if not per_problem:
        raise WorkflowError(f"no problem of the {split!r} split could be evaluated")
    arrays = {v: {key: np.asarray(val) for key, val in scores[v].items()} for v in VARIANTS}
    best = np.stack(designs["best"])
    novelty = _nearest_distance(best, train_designs)
    novelty_simp = _nearest_distance(np.stack(designs["simp"]), train_designs)
    if nearest:
        d = ds.header["distribution"]
        about = {"kind": NEAREST, "latent_dim": 0, "size": [d.nely, d.nelx]}
    else:
        cfg = model.config
        about = {"kind": cfg.kind, "latent_dim": cfg.latent_dim, "size": [cfg.height, cfg.width],
                 "prior_components": cfg.prior_components}  # fmt: skip
    return {
        "model": about,
        "data": str(data),
        "split": split,
        "problems": len(per_problem),
        "skipped": skipped,
        "k": k,
        "polish_iterations": polish,
        "seed": seed,
        "mean_first": mean_first,
        "guide": guide,
        "guided": guided,
        "project": project,
        "connect": connect,
        "drop": list(drop),
        "temperature": temperature,
        "seconds": time.perf_counter() - t0,
        "metrics": {v: _summary(arrays[v]) for v in VARIANTS},
        "diversity": _diversity_summary(spread),
        "novelty": {
            "best_mean": float(novelty.mean()),
            "simp_mean": float(novelty_simp.mean()),
        },
        "likelihood": _likelihood(model, judged_x, judged_c, nll, seed) if nll else None,
        "factors": _factors(model, judged_x, judged_c, problems) if factors else None,
        "per_problem": per_problem,
        "_designs": {key: np.stack(val) for key, val in designs.items()},
        "_problems": problems,
    }


def _likelihood(model, xs: list, cs: list, k: int, seed: int) -> dict[str, float]:
    """The IWAE estimate of log p(x | c) with k samples and the ELBO (the mean of the same k
    one-sample ELBOs) of the designs ``xs`` (conditions ``cs``), 16 designs at a time."""
    from ..models import iwae, log_weights

    elements = model.config.height * model.config.width * model.config.in_channels
    exact = getattr(model, "exact_log_likelihood", None)
    if exact is not None:  # a ppca: log p(x) itself, no estimate
        nll = float(-torch.cat([exact(torch.stack(xs[s : s + 64]).float())
                                for s in range(0, len(xs), 64)]).double().mean())  # fmt: skip
        return {"k": 0, "designs": len(xs), "nll_nats": nll, "elbo_nats": None,
                "bits_per_element": nll / (elements * math.log(2)), "likelihood": "exact",
                "exact": True}  # fmt: skip
    g = torch.Generator().manual_seed(seed + 1)
    bound, elbo = [], []
    for s in range(0, len(xs), 16):
        x = torch.stack(xs[s : s + 16]).float()
        c = None if cs[s] is None else torch.stack(cs[s : s + 16]).float()
        w = log_weights(model, x, c, k=k, generator=g).cpu()
        bound.append(iwae(w))
        elbo.append(w.mean(0))
    bound_t, elbo_t = torch.cat(bound).double(), torch.cat(elbo).double()
    nll = float(-bound_t.mean())
    return {
        "k": k,
        "designs": len(xs),
        "nll_nats": nll,
        "elbo_nats": float(elbo_t.mean()),
        "bits_per_element": nll / (elements * math.log(2)),
        "likelihood": model.config.likelihood,
    }


@torch.no_grad()
def _factors(model, xs: list, cs: list, problems: list) -> dict[str, Any]:
    """`factor_information` of the posterior means of the designs ``xs`` (conditions ``cs``)."""
    from ._factors import design_factors, factor_information

    model = model.eval()
    p = next(model.parameters())
    mus = []
    for s in range(0, len(xs), 64):
        x = torch.stack(xs[s : s + 64]).to(p.device, p.dtype)
        c = None if cs[s] is None else torch.stack(cs[s : s + 64]).to(p.device, p.dtype)
        mus.append(model.encode(x, c)[0].float().cpu())
    return factor_information(torch.cat(mus).numpy(), design_factors(problems))


def write_report(report: dict[str, Any], out: str | Path) -> dict[str, Path]:
    """report.json, report.md, report.html and figures (cases.png: the best, median and worst
    problems by best-of-k CE, each with SIMP, the first sample, the best, the polished design and
    SIMP stopped after as many iterations; ce.png: the CE distributions) into the folder ``out``."""
    from ..plotting import save_ce_histogram, save_design_grid

    _check_report(report, "_designs", "_problems")
    out = output_folder(out, "out", WorkflowError, parents=True)
    out.mkdir(parents=True, exist_ok=True)
    public = {k: v for k, v in report.items() if not k.startswith("_")}
    paths = {"json": out / "report.json", "md": out / "report.md", "html": out / "report.html"}
    tmp = paths["json"].with_suffix(".json.tmp")
    tmp.write_text(json.dumps(public, indent=2))
    tmp.replace(paths["json"])

    rows = report["per_problem"]
    ce = np.array([r["best_ce"] for r in rows])
    order = np.argsort(ce)
    picks = [("best", order[0]), ("median", order[len(order) // 2]), ("worst", order[-1])]
    designs, problems = report["_designs"], report["_problems"]
    items = []
    for label, j in picks:
        r = rows[j]
        items.append((designs["simp"][j], problems[j], f"{label}: #{r['index']} SIMP"))
        for v in VARIANTS:
            items.append((designs[v][j], problems[j], f"{v} CE={ce_text(r[f'{v}_ce'])}"))
    paths["cases"] = save_design_grid(items, out / "cases.png", ncols=1 + len(VARIANTS))
    paths["ce"] = save_ce_histogram(
        {v: np.array([r[f"{v}_ce"] for r in rows]) for v in VARIANTS}, out / "ce.png"
    )
    figures = ["cases.png", "ce.png"]
    if report.get("factors"):
        from ..plotting import save_factor_matrix

        paths["factors"] = save_factor_matrix(report["factors"], out / "factors.png")
        figures.append("factors.png")
    md = markdown_report(public, figures=figures)
    paths["md"].write_text(md)
    paths["html"].write_text(html_page(md, "topovae evaluation"))
    return paths


def _pct(x) -> str:
    return "n/a" if x is None else f"{100 * x:.2f} %"


_REPORT_KEYS = ("metrics", "model", "data", "split", "problems", "k", "polish_iterations", "seed",
                "project", "per_problem")  # fmt: skip


def _check_report(report: Any, *extra: str) -> None:
    """A WorkflowError unless ``report`` is the dict `evaluate` returns (with ``extra`` keys)."""
    missing = [
        k for k in (*_REPORT_KEYS, *extra) if not isinstance(report, dict) or k not in report
    ]
    if missing:
        raise WorkflowError(
            f"report must be the dict evaluate returns; it lacks {', '.join(missing)}"
        )


def markdown_report(report: dict[str, Any], figures: list[str] = ()) -> str:
    _check_report(report)
    if not isinstance(figures, list | tuple) or not all(isinstance(f, str) for f in figures):
        raise WorkflowError("figures must be a list of file names")
    m = report["metrics"]
    mix = report["model"].get("prior_components", 0)
    lines = [
        f"# Evaluation of a {report['model']['kind']} on {md_escape(report['data'])} "
        f"({md_escape(report['split'])})",
        "",
        f"{report['problems']} problems, best of k = {report['k']} samples, "
        f"{report['polish_iterations']} polish iterations, seed {report['seed']}; designs "
        + ("shifted onto the volume fraction" if report["project"] else "as decoded")
        + (", load paths connected" if report["project"] and report.get("connect", False) else "")
        + ("; the first is the prior mean's" if report["mean_first"] else "")
        + (
            f", guided away from floating material (at most {report['guide']} steps; "
            f"{report['guided']} moved)"
            if report.get("guide") and report["mean_first"]
            else ""
        )
        + (f"; prior samples from a mixture of {mix}" if mix else "")
        + (f"; {len(report['skipped'])} ill-posed problems skipped" if report["skipped"] else "")
        + f"; {report['seconds']:.0f} s.",
        "",
        "| metric | first sample | best of k | polished | SIMP, same iterations |",
        "|---|---|---|---|---|",
    ]
    names = [
        ("ce_mean", "CE mean"), ("ce_median", "CE median"), ("ce_under_1pct", "CE < 1 %"),
        ("ce_under_5pct", "CE < 5 %"), ("ce_binary_mean", "CE binarised, mean"),
        ("ce_binary_median", "CE binarised, median"), ("pass_rate", "pass (CE < 100 %)"),
        ("ce_median_passing", "CE median, passing only"),
        ("ce_mean_passing", "CE mean, passing only"),
        ("vfe_mean", "volume fraction error"), ("floating_mean", "floating material"),
        ("floating_rate", "designs with floating material"),
        ("load_disrespect_rate", "load disrespect"), ("greyness_mean", "greyness Mnd"),
    ]  # fmt: skip
    for key, name in names:
        lines.append(f"| {name} | " + " | ".join(_pct(m[v][key]) for v in VARIANTS) + " |")
    nov = report["novelty"]
    lines += [
        "",
        f"Novelty (mean |difference| to the nearest training design): best designs "
        f"{nov['best_mean']:.4f}; the SIMP designs themselves {nov['simp_mean']:.4f}.",
        "",
    ]
    div = report.get("diversity")
    if div:
        lines += [
            f"Diversity over the k = {report['k']} designs of each problem"
            + (f" (prior samples at temperature {report['temperature']:g})"
               if report.get("temperature", 1.0) != 1.0 else "")
            + " (distinct: 1 - IoU of "
            "the binarised solids >= 0.15; medians over the problems): distinct designs within "
            f"5 % of the stiffest reference {div['distinct_5_median']:g}, within 10 % "
            f"{div['distinct_10_median']:g}; mean pairwise 1 - IoU {div['pairwise_median']:.3f}"
            + (f"; coverage of the {div['references_median']:g} reference design(s) "
               f"{_pct(div['coverage_median'])} (median; mean {_pct(div['coverage_mean'])}; "
               "a reference is covered by a design nearer than its nearest other reference), "
               f"reproduced {_pct(div['reproduced_median'])} (median; within 1 - IoU 0.15), "
               "generalized energy distance "
               f"{div['ged_median']:.3f}" if "coverage_median" in div else "")
            + ".",
            "",
        ]  # fmt: skip
    fac = report.get("factors")
    if fac:
        gaps = ", ".join(f"{n} {fac['gap'][n]:.2f} (dim {fac['best_dim'][n]})"
                         for n in fac["factors"])  # fmt: skip
        lines += [
            f"Disentanglement: MIG {fac['mig']:.3f} over the known factors; per factor the gap "
            f"and its most informative latent dimension: {gaps}.",
            "",
        ]
    lik = report.get("likelihood")
    if lik and lik.get("exact"):
        lines += [
            f"Likelihood of the {lik['designs']} SIMP designs: -log p(x) "
            f"{lik['nll_nats']:.1f} nats per design, exact ({lik['bits_per_element']:.4f} "
            "bits per element).",
            "",
        ]
    elif lik:
        lines += [
            f"Likelihood of the {lik['designs']} SIMP designs ({lik['likelihood']}): "
            f"-log p(x | c) {lik['nll_nats']:.1f} nats per design (the IWAE estimate, "
            f"K = {lik['k']}; {lik['bits_per_element']:.4f} bits per element), ELBO "
            f"{lik['elbo_nats']:.1f} nats.",
            "",
        ]
    lines += [f"![{f}]({f})" for f in figures]
    return "\n".join(lines) + "\n"
