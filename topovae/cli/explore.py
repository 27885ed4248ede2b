"""`topovae explore sample | interpolate | traverse` (and `topovae sample`)."""

from __future__ import annotations

import click
import numpy as np

from ._common import (
    MAX_DESIGNS,
    InputError,
    check_device,
    dataset_header,
    load_model,
    main,
    model_problem,
    output_path,
    problem_options,
    workflow_errors,
)


@main.group()
def explore() -> None:
    """Look at a trained model's design manifold; every picture is scored by the judge."""


@explore.command("sample")
@click.argument("checkpoint")
@click.option("-n", "n", type=int, default=16, show_default=True)
@problem_options
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", default="auto", show_default=True, help="auto | cpu | cuda.")
@click.option("--out", required=True, help="PNG file to write.")
def explore_sample(checkpoint, n, problem, volfrac, problem_file, data, index, seed, device, out):
    """Prior samples (conditioned on the problem for a cvae), each titled with its score; also
    `topovae sample`."""
    from ..workflows import prior_samples, save_scored_grid

    png = output_path(out, "--out", image=True)
    check_device(device)
    if not 0 < n <= MAX_DESIGNS:
        raise InputError(f"-n must be an integer in 1..{MAX_DESIGNS}, got {n}")
    model = load_model(checkpoint)
    prob, reference = model_problem(model, problem, volfrac, problem_file, data, index)
    try:
        designs = prior_samples(model, n, prob, seed=seed, device=device)
        save_scored_grid(designs, prob, png, [f"sample {k}" for k in range(n)],
                         reference=reference)  # fmt: skip
    except workflow_errors() as e:
        raise InputError(str(e)) from None
    click.echo(f"wrote {png}")


main.add_command(explore_sample, name="sample")  # the same command at the top level


@explore.command("interpolate")
@click.argument("checkpoint")
@click.option("--data", required=True, help="The dataset file the two designs come from.")
@click.option("--from", "start", type=int, required=True, help="Index of the first design.")
@click.option("--to", "end", type=int, required=True, help="Index of the second design.")
@click.option("--steps", type=int, default=8, show_default=True)
@click.option("--method", default="slerp", show_default=True, help="linear | slerp.")
@click.option("--device", default="auto", show_default=True, help="auto | cpu | cuda.")
@click.option("--out", required=True, help="PNG file to write.")
def explore_interpolate(checkpoint, data, start, end, steps, method, device, out) -> None:
    """Designs along the latent path between two dataset designs (a cvae interpolates their
    conditions too)."""
    from ..workflows import interpolate, save_scored_grid

    png = output_path(out, "--out", image=True)
    check_device(device)
    if not 2 <= steps <= MAX_DESIGNS:
        raise InputError(f"--steps must be an integer in 2..{MAX_DESIGNS}, got {steps}")
    model = load_model(checkpoint)
    ends = []
    for i in (start, end):
        prob, design = model_problem(model, None, None, None, data, i)
        ends.append((prob, design))
    (pa, da), (pb, db) = ends
    from ..datasets._torch import problem_condition

    fields = model.config.cond_channels > 7
    conds = (problem_condition(pa, fields), problem_condition(pb, fields))
    try:
        path = interpolate(model, da, db, steps=steps, method=method, device=device,
                           conditions=conds if model.config.conditional else None)  # fmt: skip
    except workflow_errors() as e:
        raise InputError(str(e)) from None
    t = np.linspace(0, 1, steps)
    labels = [f"#{start}" if x == 0 else f"#{end}" if x == 1 else f"t={x:.2f}" for x in t]
    save_scored_grid(path, None, png, labels, ncols=steps)
    click.echo(f"wrote {png}")


@explore.command("traverse")
@click.argument("checkpoint")
@click.option("--dim", type=int, default=0, show_default=True, help="Latent dimension to move.")
@click.option("--range", "span", type=(float, float), default=(-3.0, 3.0), show_default=True)
@click.option("--steps", type=int, default=9, show_default=True)
@problem_options
@click.option("--device", default="auto", show_default=True, help="auto | cpu | cuda.")
@click.option("--out", required=True, help="PNG file to write.")
def explore_traverse(checkpoint, dim, span, steps, problem, volfrac, problem_file, data, index,
                     device, out) -> None:  # fmt: skip
    """Designs with one latent dimension swept over a range, the others at the prior mean."""
    from ..workflows import save_scored_grid, traverse

    png = output_path(out, "--out", image=True)
    check_device(device)
    if not 2 <= steps <= MAX_DESIGNS:
        raise InputError(f"--steps must be an integer in 2..{MAX_DESIGNS}, got {steps}")
    if not np.isfinite(span).all():
        raise InputError(f"--range {span[0]} {span[1]}: give two finite numbers")
    model = load_model(checkpoint)
    prob, reference = model_problem(model, problem, volfrac, problem_file, data, index)
    values = np.linspace(span[0], span[1], steps)
    try:
        designs = traverse(model, dim, values, prob, device=device)
        save_scored_grid(designs, prob, png, [f"z{dim}={v:+.2f}" for v in values],
                         reference=reference, ncols=steps)  # fmt: skip
    except workflow_errors() as e:
        raise InputError(str(e)) from None
    click.echo(f"wrote {png}")


@explore.command("map")
@click.argument("checkpoint")
@click.option("--data", required=True, help="The dataset file whose designs are encoded.")
@click.option("--split", default="test", show_default=True, help="train | val | test | all.")
@click.option("--projection", default="kl", show_default=True,
              help="kl: the two latent dimensions with the most KL | pca: the encodings' "
              "two principal directions.")  # fmt: skip
@click.option("--colour", "--color", "colour", default="volfrac", show_default=True,
              help="volfrac | compliance | iterations | kl.")  # fmt: skip
@click.option("--grid", type=int, default=7, show_default=True, help="Tiles per side.")
@click.option("--span", type=float, default=3.0, show_default=True, help="Half-width of the grid.")
@click.option("--index", type=int, default=0, show_default=True,
              help="The split's sample whose problem the grid is decoded under.")  # fmt: skip
@click.option("--outliers", type=int, default=8, show_default=True,
              help="Designs farthest from the prior, drawn to OUT_outliers.")  # fmt: skip
@click.option("--device", default="auto", show_default=True, help="auto | cpu | cuda.")
@click.option("--out", required=True, help="PNG file to write.")
def explore_map(checkpoint, data, split, projection, colour, grid, span, index, outliers, device,
                out) -> None:  # fmt: skip
    """A dataset split in a 2-D latent plane, coloured by a quantity, beside the decoded
    manifold grid over that plane (each tile judged), and the outliers."""
    from ..workflows import latent_map, save_latent_map

    png = output_path(out, "--out", image=True)
    check_device(device)
    if not 0 <= outliers <= MAX_DESIGNS:
        raise InputError(f"--outliers must be an integer in 0..{MAX_DESIGNS}, got {outliers}")
    dataset_header(data, verify=True)
    model = load_model(checkpoint)
    try:
        m = latent_map(model, data, split, projection=projection, colour=colour, grid=grid,
                       span=span, outliers=outliers, index=index, device=device)  # fmt: skip
        paths = save_latent_map(m, png)
    except (*workflow_errors(), ValueError) as e:
        raise InputError(str(e)) from None
    click.echo("wrote " + ", ".join(str(p) for p in paths if p is not None))


@explore.command("sweep")
@click.argument("checkpoint")
@click.option("--problem", "-p", help="A preset problem on the model's grid (see solve --list).")
@click.option("--problem-file", type=click.Path(dir_okay=False),
              help="A problem saved with Problem.save (.npz).")  # fmt: skip
@click.option("--data", help="A dataset file: use the problem of --index.")
@click.option("--index", type=int, help="With --data: the sample's index in the file.")
@click.option("--volfrac", default="0.3:0.6:7", show_default=True,
              help="Volume fractions START:STOP:N (or one value).")  # fmt: skip
@click.option("--angle", help="Load directions in degrees START:STOP:N (0 = +x, -90 = down).")
@click.option("--simp/--no-simp", default=True, show_default=True,
              help="Solve each condition with SIMP too, for each tile's CE.")  # fmt: skip
@click.option("--device", default="auto", show_default=True, help="auto | cpu | cuda.")
@click.option("--out", required=True, help="PNG file to write.")
def explore_sweep(checkpoint, problem, problem_file, data, index, volfrac, angle, simp, device,
                  out) -> None:  # fmt: skip
    """The prior-mean design of a cvae under a range of conditions (volume fractions as rows,
    load directions as columns), each tile judged."""
    from ..solvers import solve
    from ..workflows import condition_sweep, save_scored_grid
    from ..workflows._explore import parse_range

    png = output_path(out, "--out", image=True)
    check_device(device)
    try:
        vfs = parse_range(volfrac, "--volfrac", within=(0, 1))
        angles = None if angle is None else parse_range(angle, "--angle")
    except workflow_errors() as e:
        raise InputError(str(e)) from None
    model = load_model(checkpoint)
    prob, _ = model_problem(model, problem, None, problem_file, data, index)
    try:
        designs, problems, labels = condition_sweep(model, prob, vfs, angles, device=device)
        reference = np.stack([solve(p).density for p in problems]) if simp else None
        save_scored_grid(designs, problems, png, labels, reference=reference,
                         ncols=1 if angles is None else len(angles))  # fmt: skip
    except (*workflow_errors(), ValueError) as e:
        raise InputError(str(e)) from None
    click.echo(f"wrote {png}")


@explore.command("page")
@click.argument("checkpoint")
@problem_options
@click.option("--dims", default="auto", show_default=True,
              help="The plane's two latent dimensions, A,B; auto: the two the design responds "
              "to most.")  # fmt: skip
@click.option("--grid", type=int, default=9, show_default=True, help="Designs per side.")
@click.option("--span", type=float, default=3.0, show_default=True, help="Half-width of the plane.")
@click.option("--sweep", "sweep", default="0.3:0.6:7", show_default=True,
              help="Volume fractions of the sweep (cvae), START:STOP:N.")  # fmt: skip
@click.option("--device", default="auto", show_default=True, help="auto | cpu | cuda.")
@click.option("--out", required=True, help="The HTML file to write.")
def explore_page(checkpoint, problem, volfrac, problem_file, data, index, dims, grid, span, sweep,
                 device, out) -> None:  # fmt: skip
    """One self-contained HTML page to explore the latent plane by dragging (designs and scores
    precomputed on a grid), with the volume-fraction sweep."""
    from ..workflows._explore import parse_range, responsive_dims
    from ..workflows._page import explorer_data, write_explorer_page

    path = output_path(out, "--out")
    if path.suffix.lower() not in (".html", ".htm"):
        raise InputError(f"--out {out!r}: the page is HTML; give a name ending in .html")
    check_device(device)
    try:
        vfs = parse_range(sweep, "--sweep", within=(0, 1))
    except workflow_errors() as e:
        raise InputError(str(e)) from None
    model = load_model(checkpoint)
    d = model.config.latent_dim
    if dims == "auto":
        plane = None
    else:
        try:
            plane = tuple(int(v) for v in dims.split(","))
        except ValueError:
            plane = ()
        if len(plane) != 2 or plane[0] == plane[1] or not all(0 <= v < d for v in plane):
            raise InputError(f"--dims {dims!r}: give two different dimensions in 0..{d - 1}, "
                             "as A,B, or auto")  # fmt: skip
    prob, reference = model_problem(model, problem, volfrac, problem_file, data, index)
    try:
        plane = plane or responsive_dims(model, prob, 2, device=device)
        page = explorer_data(model, prob, dims=plane, grid=grid, span=span, volfracs=vfs,
                             device=device, reference=reference)  # fmt: skip
        title = f"{model.config.kind} on {prob.name if prob is not None else 'no problem'}"
        write_explorer_page(page, path, title=title)
    except workflow_errors() as e:
        raise InputError(str(e)) from None
    spread = "" if page["distinct"] is None else f", {page['distinct']} distinct"
    click.echo(f"wrote {path} (plane u{plane[0]} x u{plane[1]}, {grid}x{grid} designs{spread})")
