"""`topovae generate`, `info`, `show`, `import images|arrays`, `clean`: dataset files."""

from __future__ import annotations

import contextlib
import dataclasses
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


def _resumed_settings(dist, out: str, ctol: float):
    """``dist`` under the SIMP settings ``out`` was made with: a resume continues a file as it
    was made (a default changed since, e.g. ``reuse_tol``, must not refuse it); a --ctol that
    differs from the file's is refused."""
    from ..datasets import DatasetError, read_header

    try:
        stored = read_header(out)["distribution"].settings
    except (DatasetError, OSError, KeyError) as e:
        raise InputError(str(e)) from None
    if ctol and ctol != stored.ctol:
        raise InputError(
            f"--ctol {ctol:g} differs from the {stored.ctol:g} that {out!r} was made with; "
            "--resume continues a file under its own SIMP settings"
        )
    return dataclasses.replace(dist, settings=stored)


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
@click.option("--ctol", type=float, default=0.0, show_default=True,
              help="Also stop a design when its compliance moved by at most CTOL (relative) "
              "over 5 iterations; 3e-4 labels 64x64 designs ~4x faster within a median 0.1 % "
              "of the converged compliance (bench_labels.py). Kept in the file.")  # fmt: skip
@click.option("--alternatives", "-k", "alternatives", type=int, default=0, show_default=True,
              help="Up to K distinct near-optimal designs per problem (restarts with deflation; "
              "0: SIMP's one design). Rows of a problem share its index.")  # fmt: skip
@click.option("--attempts", type=int, help="Restarts per problem with --alternatives "
              "(default 2(K-1)).")  # fmt: skip
@click.option(
    "--alt-tol",
    type=float,
    default=0.05,
    show_default=True,
    help="Keep alternatives within this relative compliance of the best found.",
)
@click.option("--resume", is_flag=True, help="Continue an interrupted file with the same settings.")
@click.option("--overwrite", is_flag=True, help="Replace an existing file.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def generate(
    distribution: str, size: str, n: int, seed: int, out: str, workers: int | None,
    scheduler: str | None, device: str | None, batch: int, fields: bool, ctol: float,
    alternatives: int, attempts: int | None, alt_tol: float, resume: bool, overwrite: bool,
    quiet: bool,
) -> None:  # fmt: skip
    """Sample problems, solve them in parallel and store them in an HDF5 dataset."""
    from ..datasets import FIELDS
    from ..datasets import distribution as make_distribution
    from ..datasets import generate as run_generate
    from ..solvers import AlternativeSearch, ProblemError

    if resume and overwrite:
        raise InputError("--resume and --overwrite exclude each other")
    if n <= 0:
        raise InputError(f"-n must be a positive integer, got {n}")
    if seed < 0:
        raise InputError(f"--seed must be >= 0, got {seed}")
    nelx, nely = parse_size(size)
    output_path(out, "--out")
    check_device(device)
    if not alternatives and (attempts is not None or alt_tol != 0.05):
        raise InputError("--attempts and --alt-tol need --alternatives K (K >= 1)")
    mode = "resume" if resume else "overwrite" if overwrite else "new"
    try:
        dist = make_distribution(distribution, nelx, nely)
        if ctol:
            dist = dataclasses.replace(dist, settings=dataclasses.replace(dist.settings, ctol=ctol))
        if resume and Path(out).exists():
            dist = _resumed_settings(dist, out, ctol)
        search = None
        if alternatives:
            search = AlternativeSearch(attempts=attempts, tol=alt_tol)
        summary = run_generate(
            out, dist, n, seed, workers=workers, scheduler=scheduler, device=device, batch=batch,
            fields=FIELDS if fields else (), alternatives=alternatives, search=search, mode=mode,
            progress=not quiet,
        )  # fmt: skip
    except ProblemError as e:
        raise InputError(str(e)) from None
    except KeyboardInterrupt:
        click.echo(f"interrupted: finished samples are kept in {out}; --resume continues", err=True)
        sys.exit(130)
    rate = summary["solved"] / max(summary["seconds"], 1e-9)
    if alternatives:
        click.echo(
            f"{out}: {summary['samples']} designs ({summary['solved']} problems solved now, "
            f"{summary['designs']} designs, {rate:.2f} problems/s)"
        )
    else:
        click.echo(
            f"{out}: {summary['samples']} samples ({summary['solved']} solved now, "
            f"{rate:.2f} designs/s)"
        )


def _describe_import(imported: dict) -> str:
    """One line of an imported file's origin."""
    kind, source = imported.get("kind", "?"), imported.get("source", "?")
    line = f"imported {imported.get('count', '?')} designs from {kind} {source!r}"
    if imported.get("date"):
        line += f" on {imported['date']}"
    how = imported.get("volfrac", "?")
    if imported.get("pattern"):
        how = f"from the file names by pattern {imported['pattern']!r}"
    details = [f"volume fractions: {how}"]
    if imported.get("invert"):
        details.append("inverted")
    if imported.get("skipped_ill_posed"):
        details.append(f"{imported['skipped_ill_posed']} ill-posed left out")
    return f"{line} ({', '.join(details)})"


@main.command()
@click.argument("path")
def info(path: str) -> None:
    """Counts, settings, statistics, convergence rate and ill-posed samples of a dataset file."""
    import h5py

    from ..datasets import clean_info, has_problems, ill_posed_samples, import_info
    from ..datasets._store import read_rows, verify_dataset
    from ..solvers import ProblemError

    h = dataset_header(path)
    d = h["distribution"]
    try:
        imported, cleaned = import_info(path), clean_info(path)
    except ProblemError as e:
        raise InputError(str(e)) from None
    problems = has_problems(path)
    g = None
    if h["alternatives"] and h["n"]:
        from ..datasets import alternatives_summary

        with _corruption_as_input_error():
            g = alternatives_summary(path)
    count = f"{h['n']} of {h['n_requested']} samples"
    if g is not None:
        count = f"{g['problems']} of {h['n_requested']} problems, {g['designs']} designs"
    lines = [
        f"{path}: topovae dataset v{h['version']}, {count} ({d.nelx}x{d.nely}), seed {h['seed']}",
    ]
    if imported is not None:
        lines.append(_describe_import(imported))
    else:
        lines.append(
            f"distribution {d.name}: volfrac {d.volfrac}, supports {', '.join(d.supports)}, "
            f"loads {d.loads} {'/'.join(d.load_kinds)} ({d.load_place}), holes {d.holes}"
        )
    if problems:
        lines.append(
            f"SIMP: {d.settings.filter} filter r={d.settings.rmin:g}, p={d.settings.penal:g}, "
            f"{d.settings.update_rule.upper()}, tol {d.settings.tol:g}, "
            + (f"ctol {d.settings.ctol:g}, " if d.settings.ctol else "")
            + f"max {d.settings.max_iter} it"
        )
    lines.append(f"fields: {', '.join(h['fields']) or 'none'}")
    if g is not None:
        search = h["alternative_search"] or {}
        lines.append(
            f"alternatives: up to {h['alternatives']} distinct designs per problem (1 - IoU >= "
            f"{search.get('min_distance', 0.15):g}, within {100 * search.get('tol', 0):g} % of "
            f"the stiffest); per problem a median {g['designs_median']:g} "
            f"({g['distinct_5_median']:g} within 5 %), "
            f"pairwise 1 - IoU {g['pairwise_median']:.3f}, {g['seconds_per_problem']:.2f} s"
        )
        lines.append(
            "problems with 1, 2, ... designs: " + ", ".join(str(c) for c in g["per_problem"][1:])
        )
    if cleaned is not None:
        lines.append(
            f"cleaned from {cleaned.get('source', '?')!r} on {cleaned.get('date', '?')}: "
            f"{cleaned.get('dropped', '?')} ill-posed samples dropped"
        )
    if not problems:
        lines.append(
            "problems: none (designs only): a vae or beta-vae can train on it, a cvae cannot"
        )
    if h["pending_shards"]:
        lines.append(
            f"{h['pending_shards']} shard file(s) of finished samples await merging: "
            "run generate again with --resume"
        )
    if h["n"]:
        with h5py.File(path, "r") as f, _corruption_as_input_error():
            vf = read_rows(f, "problem/volfrac")
            solved = "result/compliance" in f
            if solved:
                keys = ("compliance", "iterations", "converged", "seconds")
                c, its, conv, sec = (read_rows(f, f"result/{k}") for k in keys)
        size = Path(path).stat().st_size
        if solved:
            lines.append(
                f"compliance: mean {c.mean():.4g}, median {np.median(c):.4g}, "
                f"min {c.min():.4g}, max {c.max():.4g}"
            )
        lines.append(
            f"volume fraction: mean {vf.mean():.3f}, min {vf.min():.3f}, max {vf.max():.3f}"
        )
        if solved:
            lines += [
                f"iterations: mean {its.mean():.1f}, max {its.max()}; converged {conv.mean():.1%}",
                f"solve time: {sec.mean():.3f} s per design; "
                f"{size / h['n'] / 1024:.1f} KiB per design",
            ]
        else:
            lines.append(f"no SIMP results (imported); {size / h['n'] / 1024:.1f} KiB per design")
        with _corruption_as_input_error():
            arrays = verify_dataset(path)
        lines.append(f"integrity: all {arrays} arrays read back, every chunk's checksum verified")
        if problems:
            with _corruption_as_input_error():
                bad = ill_posed_samples(path)
            line = f"ill-posed samples: {len(bad)} of {h['n']}"
            if bad:
                shown = ", ".join(str(i) for _, i, _ in bad[:5]) + (", ..." if len(bad) > 5 else "")
                line += (
                    f" (index {shown}; today's problem validation refuses them, e.g. "
                    f"{bad[0][2]}); `topovae clean` writes a copy without them"
                )
            lines.append(line)
    click.echo("\n".join(lines))


@main.command()
@click.argument("path")
@click.option("-n", "n", type=int, default=16, show_default=True, help="Designs to draw.")
@click.option("--out", "out", required=True, help="PNG file to write.")
def show(path: str, n: int, out: str) -> None:
    """Draw the first n designs of a dataset with their loads and supports (a file with
    alternatives: one problem per row, its designs stiffest first)."""
    import h5py

    from ..datasets._store import read_rows
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
    with h5py.File(path, "r") as f, _corruption_as_input_error():
        problems, solved = "problem/loads" in f, "result/compliance" in f
        names = f["imported/name"] if "imported/name" in f else None
        index = read_rows(f, "index", slice(0, n))
        alternative = read_rows(f, "alternative", slice(0, n)) if "alternative" in f else None
        for k in range(n):
            vf = float(read_rows(f, "problem/volfrac", k))
            title = f"#{int(index[k])} vf={vf:.2f}"
            if h["alternatives"]:
                title = f"#{int(index[k])}.{int(alternative[k])} vf={vf:.2f}"
                if k and index[k] != index[k - 1]:  # a new problem starts a new row
                    items += [None] * (-len(items) % h["alternatives"])
            if names is not None:
                name = names[k]
                title = f"{name.decode() if isinstance(name, bytes) else name} vf={vf:.2f}"
            if solved:
                title += f" c={read_rows(f, 'result/compliance', k):.4g}"
            problem = None
            if problems:
                try:
                    problem = Problem(
                        d.nelx, d.nely, vf, *(read_rows(f, f"problem/{key}", k)
                                              for key in ("fixed_x", "fixed_y", "loads")),
                        passive_solid=read_rows(f, "problem/passive_solid", k),
                        passive_void=read_rows(f, "problem/passive_void", k),
                    )  # fmt: skip
                except ProblemError:  # a sample from before a validation rule existed
                    title += " (ill-posed)"
            items.append((read_rows(f, "density", k), problem, title))
    save_design_grid(items, png, ncols=h["alternatives"] or None)
    click.echo(f"wrote {png}")


@contextlib.contextmanager
def _corruption_as_input_error():
    """A chunk that fails its checksum (`read_rows`) as the one-line error of the CLI."""
    from ..datasets import DatasetError

    try:
        yield
    except DatasetError as e:
        raise InputError(str(e)) from None


@main.group("import")
def import_group() -> None:
    """Designs from elsewhere into a dataset file: a folder of images or NumPy arrays."""


@import_group.command("images")
@click.argument("folder")
@click.option("--size", required=True, help="Grid WIDTHxHEIGHT in elements, e.g. 64x32.")
@click.option("--out", "out", required=True, help="The HDF5 file to write.")
@click.option(
    "--pattern",
    help="Regular expression with one group finding the volume fraction in each file name "
    "(without its suffix), e.g. 'vf([0-9.]+)'. Default: each design's mean density.",
)
@click.option("--invert", is_flag=True, help="Light = material (default: dark = material).")
@click.option("--stretch", is_flag=True, help="Accept images of another shape than the grid.")
@click.option("--overwrite", is_flag=True, help="Replace an existing file.")
def import_images_command(
    folder: str, size: str, out: str, pattern: str | None, invert: bool, stretch: bool,
    overwrite: bool,
) -> None:  # fmt: skip
    """PNG / JPEG pictures of designs (sorted by name) as a dataset file for a vae / beta-vae."""
    from ..datasets import import_images
    from ..solvers import ProblemError

    nelx, nely = parse_size(size)
    output_path(out, "--out")
    try:
        summary = import_images(
            folder, out, (nelx, nely), pattern=pattern, invert=invert, stretch=stretch,
            overwrite=overwrite,
        )  # fmt: skip
    except ProblemError as e:
        raise InputError(str(e)) from None
    click.echo(
        f"{out}: {summary['samples']} designs ({nelx}x{nely}) imported from {folder}, "
        f"volume fractions from the {summary['labels']}; no problems: a vae or beta-vae, "
        "not a cvae"
    )


@import_group.command("arrays")
@click.argument("file")
@click.option("--out", "out", required=True, help="The HDF5 file to write.")
@click.option(
    "--skip-ill-posed", is_flag=True, help="Leave out samples whose problem is ill-posed."
)
@click.option("--overwrite", is_flag=True, help="Replace an existing file.")
def import_arrays_command(file: str, out: str, skip_ill_posed: bool, overwrite: bool) -> None:
    """NumPy arrays (.npz: designs, volfrac, loads, fixed_x, fixed_y, passive_solid,
    passive_void; or a .npy of designs) as a dataset file. See topovae.datasets._import."""
    from ..datasets import import_arrays
    from ..solvers import ProblemError

    output_path(out, "--out")
    try:
        summary = import_arrays(file, out, skip_ill_posed=skip_ill_posed, overwrite=overwrite)
    except ProblemError as e:
        raise InputError(str(e)) from None
    nelx, nely = summary["size"]
    use = "any model, a cvae too" if summary["problems"] else "no problems: a vae or beta-vae"
    dropped = f", {summary['dropped']} ill-posed left out" if summary["dropped"] else ""
    click.echo(
        f"{out}: {summary['samples']} designs ({nelx}x{nely}) imported from {file}{dropped}; {use}"
    )


@main.command()
@click.argument("path")
@click.option("--out", "out", required=True, help="The HDF5 file to write.")
@click.option("--overwrite", is_flag=True, help="Replace an existing file.")
def clean(path: str, out: str, overwrite: bool) -> None:
    """Copy a dataset file without its ill-posed samples (problems today's validation refuses)."""
    from ..datasets import clean_dataset
    from ..solvers import ProblemError

    dataset_header(path)
    output_path(out, "--out")
    try:
        summary = clean_dataset(path, out, overwrite=overwrite)
    except ProblemError as e:
        raise InputError(str(e)) from None
    dropped = summary["dropped_indices"]
    which = ""
    if dropped:
        more = ", ..." if len(dropped) > 10 else ""
        which = f" (index {', '.join(map(str, dropped[:10]))}{more})"
    click.echo(
        f"{out}: kept {summary['kept']} samples, dropped {summary['dropped']} ill-posed{which}"
    )
