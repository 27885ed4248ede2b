"""`topovae solve`: one SIMP problem, its figures and picture."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from ._common import (
    _D,
    InputError,
    check_device,
    main,
    output_path,
)


@main.command()
@click.option("--list", "list_presets", is_flag=True, help="List the preset problems and exit.")
@click.option("--problem", "-p", default="mbb", show_default=True, help="Preset problem name.")
@click.option(
    "--problem-file",
    type=click.Path(dir_okay=False),
    help="A problem saved with Problem.save (.npz); overrides --problem and the grid.",
)
@click.option("--nelx", type=int, help="Elements in x (default: the preset's).")
@click.option("--nely", type=int, help="Elements in y (default: the preset's).")
@click.option("--volfrac", type=float, help="Volume fraction in (0, 1) (default: the preset's).")
@click.option("--penal", type=float, default=_D.penal, show_default=True, help="SIMP penalty.")
@click.option(
    "--rmin", type=float, default=_D.rmin, show_default=True, help="Filter radius (elements)."
)
@click.option(
    "--filter",
    "filter_",
    default=_D.filter,
    show_default=True,
    help="sensitivity | density | heaviside (density + projection).",
)
@click.option(
    "--beta-max",
    type=float,
    default=_D.beta_max,
    show_default=True,
    help="Final projection sharpness (heaviside filter).",
)
@click.option(
    "--optimizer",
    default=_D.optimizer,
    show_default=True,
    help="auto | oc | mma (auto: MMA with heaviside, else OC).",
)
@click.option("--move", type=float, default=_D.move, show_default=True, help="Move limit.")
@click.option("--max-iter", type=int, default=_D.max_iter, show_default=True, help="Iteration cap.")
@click.option(
    "--tol",
    type=float,
    default=_D.tol,
    show_default=True,
    help="Stop when the largest design change is <= tol.",
)
@click.option(
    "--linear-solver", default=_D.linear_solver, show_default=True, help="auto | cholmod | superlu."
)
@click.option(
    "--reuse-tol",
    type=float,
    default=None,
    help="Solve each new stiffness matrix by two CG iterations on the last factor to this "
    "relative residual, refactorising only when that fails (0: factorise every iteration). "
    "Default: 1e-6 from 10,000 free DOFs on (about 70x70), else 0; 1e-6 keeps the compliance "
    "to ~1e-7 and is ~2x faster at 300x100 over a whole run.",
)
@click.option(
    "--backend",
    default="auto",
    show_default=True,
    help="auto | direct (sparse Cholesky/LU) | torch (batched multigrid-PCG in PyTorch); "
    "auto: by grid size (direct wherever it was measured faster: with CHOLMOD, every grid).",
)
@click.option(
    "--device", default="auto", show_default=True, help="torch backend (or auto's): auto|cpu|cuda."
)
@click.option(
    "--threads",
    type=int,
    default=1,
    show_default=True,
    help="BLAS (direct) or torch (torch backend) threads during the solve; 0: leave the default.",
)
@click.option("--out", "out_png", help="Write the design and history as a PNG.")
@click.option("--json", "out_json", help="Write the figures of the solve as JSON.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def solve(
    list_presets: bool,
    problem: str,
    problem_file: str | None,
    nelx: int | None,
    nely: int | None,
    volfrac: float | None,
    penal: float,
    rmin: float,
    filter_: str,
    beta_max: float,
    optimizer: str,
    move: float,
    max_iter: int,
    tol: float,
    linear_solver: str,
    reuse_tol: float | None,
    backend: str,
    device: str,
    threads: int,
    out_png: str | None,
    out_json: str | None,
    quiet: bool,
) -> None:
    """Solve a minimum-compliance SIMP problem and report compliance, volume and timings."""
    from ..solvers import PRESETS, Problem, ProblemError, preset
    from ..solvers import solve as run_simp

    if list_presets:
        width = max(map(len, PRESETS))
        for name, p in PRESETS.items():
            click.echo(f"{name:<{width}}  {p.description}")
        return
    from ..solvers import BACKENDS

    if backend not in BACKENDS:
        raise InputError(f"unknown backend {backend!r}; choose one of: {', '.join(BACKENDS)}")
    png, js = output_path(out_png, "--out", image=True), output_path(out_json, "--json")
    if backend == "torch" or device != "auto":  # "auto" is always valid: no torch import
        check_device(device)
    if threads < 0:
        raise InputError(f"--threads must be >= 0, got {threads}")
    settings = dict(
        penal=penal,
        rmin=rmin,
        filter=filter_,
        beta_max=beta_max,
        optimizer=optimizer,
        move=move,
        max_iter=max_iter,
        tol=tol,
        linear_solver=linear_solver,
        reuse_tol=reuse_tol,
    )
    try:
        if problem_file is not None:
            prob = Problem.load(problem_file)
            if volfrac is not None:
                prob = prob.replace(volfrac=volfrac)
            prob = prob.with_settings(**settings)
        else:
            prob = preset(problem, nelx, nely, volfrac, **settings)
        result = run_simp(
            prob, backend=backend, device=device, progress=not quiet, threads=threads or None
        )
    except ProblemError as e:
        raise InputError(str(e)) from None
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    summary: dict[str, Any] = result.summary()
    click.echo(
        f"{prob.name} {prob.nelx}x{prob.nely}: compliance {result.compliance:.6g}, "
        f"volume {result.volume:.4f}, {result.iterations} iterations "
        f"({'converged' if result.converged else 'NOT converged'}), "
        f"{1e3 * result.seconds_per_iteration:.2f} ms/iteration ({result.linear_solver}"
        + (
            f", factor reuse to {result.reuse_tol:g}: {result.factorizations} factorisations"
            if result.reuse_tol
            else ""
        )
        + ")"
    )
    if js is not None:
        js.write_text(json.dumps(summary, indent=2) + "\n")
        click.echo(f"wrote {js}")
    if png is not None:
        from ..plotting import save_solve_figure

        save_solve_figure(result, png)
        click.echo(f"wrote {png}")
