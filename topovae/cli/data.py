"""`topovae generate`, `info`, `show`: dataset files."""

from __future__ import annotations

import sys
from pathlib import Path

import click
import numpy as np

from ._common import (
    InputError,
    check_device,
    dataset_header,
    main,
    output_path,
)


def parse_size(size: str) -> tuple[int, int]:
    """ "64x32" -> (nelx, nely) = (64, 32)."""
    try:
        w, h = (int(v) for v in size.lower().split("x"))
    except ValueError:
        raise InputError(f"--size must look like 64x64 (WIDTHxHEIGHT), got {size!r}") from None
    if w < 4 or h < 4:
        raise InputError(f"--size {size!r} is impossible: each side must be >= 4 elements")
    if w * h > 2048 * 2048:
        raise InputError(f"--size {size!r} is too large: at most 2048x2048 elements")
    return w, h


@main.command()
@click.option(
    "--distribution",
    "-d",
    default="mixed",
    show_default=True,
    help="Problem distribution: mbb-like | cantilever-like | topodiff-like | mixed.",
)
@click.option("--size", default="64x64", show_default=True, help="Grid WIDTHxHEIGHT in elements.")
@click.option("-n", "n", type=int, required=True, help="Number of samples.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the sample stream.")
@click.option("--out", "out", required=True, help="The HDF5 file to write.")
@click.option("--workers", type=int, help="Local worker processes (default: all cores).")
@click.option("--scheduler", help="Dask scheduler address (needs topovae[dask]).")
@click.option("--device", help="Solve in batches with the torch SIMP on cpu|cuda|auto.")
@click.option("--batch", type=int, default=64, show_default=True, help="Batch size with --device.")
@click.option("--fields", is_flag=True, help="Also store strain energy and von Mises fields.")
@click.option("--resume", is_flag=True, help="Continue an interrupted file with the same settings.")
@click.option("--overwrite", is_flag=True, help="Replace an existing file.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def generate(
    distribution: str, size: str, n: int, seed: int, out: str, workers: int | None,
    scheduler: str | None, device: str | None, batch: int, fields: bool, resume: bool,
    overwrite: bool, quiet: bool,
) -> None:  # fmt: skip
    """Sample problems, solve them in parallel and store them in an HDF5 dataset."""
    from ..datasets import FIELDS
    from ..datasets import distribution as make_distribution
    from ..datasets import generate as run_generate
    from ..solvers import ProblemError

    if resume and overwrite:
        raise InputError("--resume and --overwrite exclude each other")
    if n <= 0:
        raise InputError(f"-n must be a positive integer, got {n}")
    if seed < 0:
        raise InputError(f"--seed must be >= 0, got {seed}")
    nelx, nely = parse_size(size)
    output_path(out, "--out")
    check_device(device)
    mode = "resume" if resume else "overwrite" if overwrite else "new"
    try:
        dist = make_distribution(distribution, nelx, nely)
        summary = run_generate(
            out, dist, n, seed, workers=workers, scheduler=scheduler, device=device, batch=batch,
            fields=FIELDS if fields else (), mode=mode, progress=not quiet,
        )  # fmt: skip
    except ProblemError as e:
        raise InputError(str(e)) from None
    except KeyboardInterrupt:
        click.echo(f"interrupted: finished samples are kept in {out}; --resume continues", err=True)
        sys.exit(130)
    click.echo(
        f"{out}: {summary['samples']} samples ({summary['solved']} solved now, "
        f"{summary['solved'] / max(summary['seconds'], 1e-9):.2f} designs/s)"
    )


@main.command()
@click.argument("path")
def info(path: str) -> None:
    """Counts, settings, statistics and convergence rate of a dataset file."""
    import h5py

    h = dataset_header(path)
    d = h["distribution"]
    lines = [
        f"{path}: topovae dataset v{h['version']}, {h['n']} of {h['n_requested']} samples "
        f"({d.nelx}x{d.nely}), seed {h['seed']}",
        f"distribution {d.name}: volfrac {d.volfrac}, supports {', '.join(d.supports)}, "
        f"loads {d.loads} {'/'.join(d.load_kinds)} ({d.load_place}), holes {d.holes}",
        f"SIMP: {d.settings.filter} filter r={d.settings.rmin:g}, p={d.settings.penal:g}, "
        f"{d.settings.update_rule.upper()}, tol {d.settings.tol:g}, max {d.settings.max_iter} it",
        f"fields: {', '.join(h['fields']) or 'none'}",
    ]
    if h["pending_shards"]:
        lines.append(
            f"{h['pending_shards']} shard file(s) of finished samples await merging: "
            "run generate again with --resume"
        )
    if h["n"]:
        with h5py.File(path, "r") as f:
            c = f["result/compliance"][:]
            its = f["result/iterations"][:]
            conv = f["result/converged"][:]
            sec = f["result/seconds"][:]
            vf = f["problem/volfrac"][:]
        size = Path(path).stat().st_size
        lines += [
            f"compliance: mean {c.mean():.4g}, median {np.median(c):.4g}, "
            f"min {c.min():.4g}, max {c.max():.4g}",
            f"volume fraction: mean {vf.mean():.3f}, min {vf.min():.3f}, max {vf.max():.3f}",
            f"iterations: mean {its.mean():.1f}, max {its.max()}; converged {conv.mean():.1%}",
            f"solve time: {sec.mean():.3f} s per design; {size / h['n'] / 1024:.1f} KiB per design",
        ]
    click.echo("\n".join(lines))


@main.command()
@click.argument("path")
@click.option("-n", "n", type=int, default=16, show_default=True, help="Designs to draw.")
@click.option("--out", "out", required=True, help="PNG file to write.")
def show(path: str, n: int, out: str) -> None:
    """Draw the first n designs of a dataset with their loads and supports."""
    import h5py

    from ..plotting import save_design_grid
    from ..solvers import Problem, ProblemError

    h = dataset_header(path)
    png = output_path(out, "--out", image=True)
    if n <= 0:
        raise InputError(f"-n must be a positive integer, got {n}")
    n = min(n, h["n"])
    if n == 0:
        raise InputError(f"{path} holds no samples yet")
    d = h["distribution"]
    items = []
    with h5py.File(path, "r") as f:
        for k in range(n):
            vf = float(f["problem/volfrac"][k])
            title = f"#{int(f['index'][k])} vf={vf:.2f} c={f['result/compliance'][k]:.4g}"
            try:
                problem = Problem(
                    d.nelx, d.nely, vf, f["problem/fixed_x"][k], f["problem/fixed_y"][k],
                    f["problem/loads"][k], passive_solid=f["problem/passive_solid"][k],
                    passive_void=f["problem/passive_void"][k],
                )  # fmt: skip
            except ProblemError:  # a sample from before a validation rule existed
                problem, title = None, title + " (ill-posed)"
            items.append((f["density"][k], problem, title))
    save_design_grid(items, png)
    click.echo(f"wrote {png}")
