"""`topovae search`, `alternatives`, `evaluate`, `demo`: the judged workflows."""

from __future__ import annotations

import json

import click

from ._common import (
    MAX_DESIGNS,
    InputError,
    check_device,
    dataset_header,
    load_model,
    main,
    model_problem,
    output_folder,
    output_path,
    problem_options,
    workflow_errors,
)


@main.command()
@click.argument("checkpoint")
@problem_options
@click.option("--method", "methods", multiple=True, default=("cmaes",), show_default=True,
              help="random | cmaes | gradient | all; repeat to compare.")  # fmt: skip
@click.option("--budget", type=int, default=200, show_default=True, help="FE evaluations.")
@click.option("--polish", type=int, default=10, show_default=True, help="SIMP iterations after.")
@click.option("--starts", type=int, default=8, show_default=True, help="Gradient: parallel starts.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--simp/--no-simp", default=True, show_default=True,
              help="Solve the problem with SIMP too, for the compliance error CE.")  # fmt: skip
@click.option("--device", default="auto", show_default=True, help="auto | cpu | cuda.")
@click.option("--out", required=True, help="Folder for search.json and the figures.")
@click.option("--quiet", "-q", is_flag=True)
def search(checkpoint, problem, volfrac, problem_file, data, index, methods, budget, polish,
           starts, seed, simp, device, out, quiet) -> None:  # fmt: skip
    """Search the latent space for the stiffest design of one problem."""
    from ..plotting import save_design_grid, save_search_curves
    from ..solvers import solve as simp_solve
    from ..solvers._problem import MAX_ITERATIONS
    from ..workflows import METHODS
    from ..workflows import search as latent_search
    from ..workflows._latent import check_count, check_seed
    from ..workflows._search import check_budget

    every = "all" in methods
    methods = METHODS if every else tuple(dict.fromkeys(methods))
    for m in methods:
        if m not in METHODS:
            raise InputError(f"unknown --method {m!r}; choose from: {', '.join(METHODS)}, all")
    try:  # the library's own checks, before the output folder is made
        check_budget(budget)
        check_count(polish, "--polish (SIMP iterations)", low=0, high=MAX_ITERATIONS)
        check_count(starts, "--starts")
        check_seed(seed)
    except workflow_errors() as e:
        raise InputError(str(e)) from None
    folder = output_folder(out)
    check_device(device)
    model = load_model(checkpoint)
    if not model.continuous_latent:  # discrete codes: no gradient to follow
        if "gradient" in methods and not every:
            raise InputError(
                f"--method gradient follows the decoder's gradient; a {model.config.kind}'s "
                "codes are discrete: use cmaes or random"
            )
        methods = tuple(m for m in methods if m != "gradient")
    prob, reference = model_problem(model, problem, volfrac, problem_file, data, index)
    if prob is None:
        raise InputError("give the problem to search for: --problem, --problem-file or --data")
    folder.mkdir(exist_ok=True)
    ref_c = None
    if reference is None and simp:
        r = simp_solve(prob)
        reference = r.density
    results = {}
    try:
        for m in methods:
            results[m] = latent_search(
                model, prob, method=m, budget=budget, seed=seed, polish=polish,
                reference=reference, starts=starts, device=device, progress=not quiet,
            )  # fmt: skip
    except workflow_errors() as e:
        raise InputError(str(e)) from None
    if reference is not None:
        from ..workflows import score

        ref_c = float(score(reference[None], prob)["compliance"][0])
    summary = {"problem": prob.name, "reference_compliance": ref_c,
               "methods": {m: r.summary() for m, r in results.items()}}  # fmt: skip
    (folder / "search.json").write_text(json.dumps(summary, indent=2))
    save_search_curves({m: r.best_so_far for m, r in results.items()}, folder / "curves.png",
                       reference=ref_c)  # fmt: skip
    items = [] if reference is None else [(reference, prob, f"SIMP C={ref_c:.4g}")]
    for m, r in results.items():
        items.append((r.density, prob, f"{m}: C={r.compliance:.4g}"))
        if r.polished is not None:
            items.append((r.polished.density, prob, f"{m} + {polish} SIMP it"))
    save_design_grid(items, folder / "designs.png", ncols=len(items))
    for m, r in results.items():
        line = f"{m}: best C = {r.compliance:.5g} after {r.evaluations} FE evaluations"
        if ref_c:
            line += f", CE = {100 * r.score['ce'][0]:+.2f} %"
            if r.polished_score is not None:
                line += f", polished CE = {100 * r.polished_score['ce'][0]:+.2f} %"
        click.echo(line)
    click.echo(f"wrote {folder}/search.json, curves.png, designs.png")


@main.command()
@click.argument("checkpoint")
@problem_options
@click.option("-k", "k", type=int, default=8, show_default=True,
              help="At most this many distinct designs.")  # fmt: skip
@click.option(
    "--samples",
    type=int,
    default=64,
    show_default=True,
    help="Latent vectors decoded and judged (the prior mean and prior samples).",
)
@click.option(
    "--polish",
    type=int,
    default=10,
    show_default=True,
    help="SIMP iterations from each promising design.",
)
@click.option(
    "--tol",
    type=float,
    default=0.10,
    show_default=True,
    help="Mark the designs within this relative compliance of the stiffest.",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--temperature",
    type=float,
    default=1.5,
    show_default=True,
    help="Spread of the prior samples, u ~ N(0, T^2 I): above 1 reaches further.",
)
@click.option("--simp/--no-simp", default=True, show_default=True,
              help="Solve the problem with SIMP too, for the compliance error CE.")  # fmt: skip
@click.option("--deflate/--no-deflate", default=True, show_default=True,
              help="Polish each candidate under a deflation penalty against those polished "
              "before it (distinct designs even from a model whose latent holds one).")  # fmt: skip
@click.option("--device", default="auto", show_default=True, help="auto | cpu | cuda.")
@click.option("--drop", default=None, help="Condition groups to leave out, e.g. loads,supports "
              "(a model trained with --condition-dropout).")  # fmt: skip
@click.option("--out", required=True, help="The picture (PNG) of the distinct designs.")
@click.option("--json", "json_out", help="Also write the designs' figures as JSON here.")
def alternatives(checkpoint, problem, volfrac, problem_file, data, index, k, samples, polish,
                 tol, seed, temperature, simp, deflate, device, drop, out,
                 json_out) -> None:  # fmt: skip
    """Distinct good designs of one problem: sample, judge, polish, group, rank."""
    from ..solvers import solve as simp_solve
    from ..solvers._problem import MAX_ITERATIONS
    from ..workflows import alternatives as find
    from ..workflows import save_alternatives
    from ..workflows._latent import check_count, check_drop, check_seed, check_temperature

    try:  # the library's own checks, before any work
        check_temperature(temperature)
        check_count(k, "-k", high=64)
        check_count(samples, "--samples", low=max(k, 1))
        check_count(polish, "--polish (SIMP iterations)", low=0, high=MAX_ITERATIONS)
        check_seed(seed)
    except workflow_errors() as e:
        raise InputError(str(e)) from None
    if not 0 <= tol <= 10:
        raise InputError(f"--tol must be a number in [0, 10] (relative compliance), got {tol}")
    output_path(out, "--out", image=True)
    output_path(json_out, "--json")
    check_device(device)
    model = load_model(checkpoint)
    try:
        drop = check_drop(model, drop or ())
    except workflow_errors() as e:
        raise InputError(f"--drop: {e}") from None
    prob, reference = model_problem(model, problem, volfrac, problem_file, data, index)
    if prob is None:
        raise InputError("give the problem: --problem, --problem-file or --data with --index")
    if reference is None and simp:
        reference = simp_solve(prob).density
    try:
        alt = find(model, prob, k, samples=samples, polish=polish, tol=tol, seed=seed,
                   temperature=temperature, reference=reference, device=device,
                   drop=drop, deflate=deflate)  # fmt: skip
    except workflow_errors() as e:
        raise InputError(str(e)) from None
    save_alternatives(alt, out, reference)
    summary = alt.summary()
    if json_out:
        with open(json_out, "w") as f:
            json.dump(summary, f, indent=2)
    for d in summary["designs"]:
        ce = "" if d["ce"] is None else f", CE {100 * d['ce']:+.2f} %"
        mark = "" if d["within_tol"] else f" (beyond {100 * tol:g} % of the stiffest)"
        click.echo(f"#{d['rank'] + 1}: C = {d['compliance']:.5g}{ce}{mark}")
    click.echo(
        f"{summary['distinct']} distinct designs ({summary['distinct_within_tol']} within "
        f"{100 * tol:g} %), mean pairwise 1 - IoU {summary['pairwise_1_minus_iou']:.3f}, "
        f"{summary['seconds']:.1f} s; wrote {out}" + (f" and {json_out}" if json_out else "")
    )


@main.command()
@click.argument("checkpoint")
@click.argument("data")
@click.option("--split", default="test", show_default=True, help="train | val | test | all.")
@click.option("-k", "k", type=int, default=8, show_default=True, help="Samples per problem.")
@click.option("--polish", type=int, default=10, show_default=True, help="SIMP iterations.")
@click.option("--limit", type=int, help="Evaluate only the first N problems of the split.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--project/--no-project",
    default=True,
    show_default=True,
    help="Shift each decoded design onto the volume fraction before judging it.",
)
@click.option(
    "--connect/--no-connect",
    default=True,
    show_default=True,
    help="Connect each projected design's load path along its grey members (no FE).",
)
@click.option(
    "--mean-first/--random-first",
    default=True,
    show_default=True,
    help="Whether the first of the k latent vectors is the prior mean.",
)
@click.option("--drop", default=None, help="Condition groups to leave out, e.g. loads (a model "
              "trained with --condition-dropout).")  # fmt: skip
@click.option("--temperature", type=float, default=1.0, show_default=True,
              help="Spread of the k - 1 prior samples, u ~ N(0, T^2 I) (1: the model's "
              "prior).")  # fmt: skip
@click.option("--nll", type=int, default=0, show_default=True,
              help="Also estimate -log p(x | c) of the SIMP designs with this many importance "
              "samples (the IWAE bound; 100 is usual), beside the ELBO.")  # fmt: skip
@click.option("--factors", is_flag=True,
              help="Also relate each latent dimension to the problems' known factors (volume "
              "fraction, load place and direction, supports, passive regions): mutual "
              "information and MIG, factors.png.")  # fmt: skip
@click.option("--guide", type=int, default=None,
              help="Guide the first design away from floating material at sampling time: at "
              "most this many steps on its latent vector (0: off).  [default: 100 for a "
              "continuous latent, 0 for discrete codes or --random-first]")  # fmt: skip
@click.option("--device", default="auto", show_default=True, help="auto | cpu | cuda.")
@click.option("--out", required=True, help="Report folder.")
@click.option("--quiet", "-q", is_flag=True)
def evaluate(checkpoint, data, split, k, polish, limit, seed, project, connect, mean_first, drop,
             temperature, nll, factors, guide, device, out, quiet) -> None:  # fmt: skip
    """Judge a model's designs against the SIMP designs of a dataset split.

    CHECKPOINT "nearest" judges the yardstick instead: the k training designs whose conditions
    are nearest to each problem's (`topovae.models.NearestDesign`)."""
    from ..workflows import evaluate as run_evaluation
    from ..workflows import write_report

    folder = output_folder(out)
    check_device(device)
    if not 0 < k <= MAX_DESIGNS:
        raise InputError(f"-k must be an integer in 1..{MAX_DESIGNS}, got {k}")
    if not 0 <= nll <= 100_000:
        raise InputError(f"--nll must be an integer in 0..100,000 (0: off), got {nll}")
    dataset_header(data, verify=True)
    model = "nearest" if checkpoint == "nearest" else load_model(checkpoint)
    try:
        report = run_evaluation(model, data, split, k=k, polish=polish, seed=seed, limit=limit,
                                device=device, progress=not quiet, project=project,
                                connect=connect, mean_first=mean_first,
                                drop=drop or (), temperature=temperature, nll=nll,
                                factors=factors, guide=guide)  # fmt: skip
    except workflow_errors() as e:
        raise InputError(str(e)) from None
    paths = write_report(report, folder)
    m = report["metrics"]
    for v in m:
        click.echo(
            f"{v:>9}: CE mean {100 * m[v]['ce_mean']:.2f} %, "
            f"median {100 * m[v]['ce_median']:.2f} %, "
            f"floating {100 * m[v]['floating_rate']:.1f} %, VFE {100 * m[v]['vfe_mean']:.2f} %"
        )
    d = report["diversity"]
    click.echo(
        f"diversity over k = {k}: distinct within 5 % {d['distinct_5_median']:g}, within 10 % "
        f"{d['distinct_10_median']:g} (medians), pairwise 1 - IoU {d['pairwise_median']:.3f}, "
        f"coverage {100 * d['coverage_median']:.1f} % (reproduced "
        f"{100 * d['reproduced_median']:.1f} %), GED {d['ged_median']:.3f}"
    )
    fac = report["factors"]
    if fac:
        best = ", ".join(f"{n}: dim {fac['best_dim'][n]} ({fac['gap'][n]:.2f})"
                         for n in fac["factors"])  # fmt: skip
        click.echo(f"factors: MIG {fac['mig']:.3f}; {best}")
    lik = report["likelihood"]
    if lik and lik.get("exact"):
        click.echo(
            f"likelihood: -log p(x) {lik['nll_nats']:.1f} nats per design (exact), "
            f"{lik['bits_per_element']:.4f} bits per element"
        )
    elif lik:
        click.echo(
            f"likelihood: -log p(x | c) {lik['nll_nats']:.1f} nats per design (IWAE, K = "
            f"{lik['k']}), {lik['bits_per_element']:.4f} bits per element; ELBO "
            f"{lik['elbo_nats']:.1f} nats"
        )
    click.echo(f"wrote {paths['json']}, {paths['md'].name}, {paths['html'].name}")


@main.command()
@click.option("--out", default="runs/demo", show_default=True, help="Output folder.")
@click.option("--quick", is_flag=True, help="A tiny run of every step (about a minute).")
@click.option("--device", default="auto", show_default=True, help="auto | cpu | cuda.")
@click.option("--quiet", "-q", is_flag=True)
def demo(out: str, quick: bool, device: str, quiet: bool) -> None:
    """The main job end to end: data, a CVAE, its evaluation, a latent search, a report."""
    from ..workflows import run_demo

    folder = output_folder(out, parents=True)  # made with its parents (default runs/demo)
    check_device(device)
    run_demo(folder, quick=quick, device=device, progress=not quiet, log=click.echo)
