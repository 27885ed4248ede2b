"""The `topovae` command line: thin, it parses options and calls the library.

    topovae solve --list
    topovae solve --problem mbb --nelx 60 --nely 20 --volfrac 0.5 --filter sensitivity \\
        --rmin 2.4 --out mbb.png --json mbb.json

Bad input ends with one line ``Error: ...`` and exit code 2.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
import numpy as np

from . import __version__
from .solvers import SIMPSettings

_D = SIMPSettings()  # the CLI's defaults are the library's
# designs one command draws or scores (-n, --steps, -k): each is scored by a FE solve, and a
# picture of more is unreadable
MAX_DESIGNS = 4096


class InputError(click.ClickException):
    """Bad user input: one line on stderr, exit code 2."""

    exit_code = 2


def _writable(folder: Path, what: str, path: str) -> None:
    """Refuse an output in a folder this process cannot create files in (tried, not guessed:
    permission bits say nothing for root or for /proc)."""
    import tempfile

    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        raise InputError(
            f"{what} {path!r}: cannot write in folder {str(folder)!r} ({e.strerror or e})"
        ) from None


def _image_suffixes() -> tuple[str, ...]:
    from matplotlib.backend_bases import FigureCanvasBase

    return tuple(f".{k}" for k in sorted(FigureCanvasBase.get_supported_filetypes()))


def _output_path(path: str | None, what: str, image: bool = False) -> Path | None:
    """A file to write, checked before any work: its folder exists and takes files, it is not a
    folder, and an image has a suffix matplotlib writes."""
    if path is None:
        return None
    p = Path(path)
    if not p.parent.exists():
        raise InputError(f"{what} {path!r}: folder {str(p.parent)!r} does not exist")
    if p.is_dir():
        raise InputError(f"{what} {path!r} is a folder; give a file name")
    if image and p.suffix.lower() not in (allowed := _image_suffixes()):
        raise InputError(
            f"{what} {path!r}: unknown image type {p.suffix or '(none)'!r}; use one of "
            + ", ".join(allowed)
        )
    _writable(p.parent, what, path)
    return p


def _output_folder(path: str, what: str = "--out", parents: bool = False) -> Path:
    """A folder to write into, checked before any work: not a file, and its nearest existing
    folder (its parent unless ``parents``) takes files."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise InputError(f"{what} {path!r} is a file; give a folder")
    base = p if p.exists() else p.parent
    if parents:
        while not base.exists():
            base = base.parent
    elif not base.exists():
        raise InputError(f"{what} {path!r}: folder {str(base)!r} does not exist")
    _writable(base, what, path)
    return p


def _check_device(device: str | None) -> None:
    """--device resolved before any work ("auto", "cpu", "cuda" with a GPU, "cuda:N")."""
    if device is None:
        return
    from .solvers import ProblemError
    from .solvers.batched import resolve_device

    try:
        resolve_device(device)
    except ProblemError as e:
        raise InputError(f"--device: {e}") from None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="topovae")
def main() -> None:
    """topovae: design-space generative topology optimization."""


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
    "--backend",
    default="direct",
    show_default=True,
    help="direct (sparse Cholesky/LU) | torch (batched multigrid-PCG in PyTorch).",
)
@click.option("--device", default="auto", show_default=True, help="torch backend: auto|cpu|cuda.")
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
    backend: str,
    device: str,
    threads: int,
    out_png: str | None,
    out_json: str | None,
    quiet: bool,
) -> None:
    """Solve a minimum-compliance SIMP problem and report compliance, volume and timings."""
    from .solvers import PRESETS, Problem, ProblemError, preset
    from .solvers import solve as run_simp

    if list_presets:
        width = max(map(len, PRESETS))
        for name, p in PRESETS.items():
            click.echo(f"{name:<{width}}  {p.description}")
        return
    png, js = _output_path(out_png, "--out", image=True), _output_path(out_json, "--json")
    if backend == "torch":
        _check_device(device)
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
    )
    try:
        if problem_file is not None:
            prob = Problem.load(problem_file)
            if volfrac is not None:
                prob = prob.replace(volfrac=volfrac)
            prob = prob.with_settings(**settings)
        else:
            prob = preset(problem, nelx, nely, volfrac, **settings)
        if backend == "direct":
            result = run_simp(prob, progress=not quiet, threads=threads or None)
        elif backend == "torch":
            from .solvers.batched import solve_batch

            [result] = solve_batch(
                [prob], device=device, progress=not quiet, threads=threads or None
            )
        else:
            raise InputError(f"unknown backend {backend!r}; choose one of: direct, torch")
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
        f"{1e3 * result.seconds_per_iteration:.2f} ms/iteration ({result.linear_solver})"
    )
    if js is not None:
        js.write_text(json.dumps(summary, indent=2) + "\n")
        click.echo(f"wrote {js}")
    if png is not None:
        from .plotting import save_solve_figure

        save_solve_figure(result, png)
        click.echo(f"wrote {png}")


def _parse_size(size: str) -> tuple[int, int]:
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
    from .datasets import FIELDS
    from .datasets import distribution as make_distribution
    from .datasets import generate as run_generate
    from .solvers import ProblemError

    if resume and overwrite:
        raise InputError("--resume and --overwrite exclude each other")
    if n <= 0:
        raise InputError(f"-n must be a positive integer, got {n}")
    if seed < 0:
        raise InputError(f"--seed must be >= 0, got {seed}")
    nelx, nely = _parse_size(size)
    _output_path(out, "--out")
    _check_device(device)
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


def _dataset_header(path: str) -> dict[str, Any]:
    from .datasets import read_header
    from .solvers import ProblemError

    try:
        return read_header(path)
    except ProblemError as e:
        raise InputError(str(e)) from None


@main.command()
@click.argument("path")
def info(path: str) -> None:
    """Counts, settings, statistics and convergence rate of a dataset file."""
    import h5py
    import numpy as np

    h = _dataset_header(path)
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

    from .plotting import save_design_grid
    from .solvers import Problem, ProblemError

    h = _dataset_header(path)
    png = _output_path(out, "--out", image=True)
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


@main.command()
@click.argument("data")
@click.option("--model", "kind", default="vae", show_default=True, help="vae | beta-vae | cvae.")
@click.option("--latent-dim", type=int, default=32, show_default=True)
@click.option(
    "--base-width",
    type=int,
    default=32,
    show_default=True,
    help="Channels of the first conv stage (doubled per stage).",
)
@click.option("--depth", type=int, default=4, show_default=True, help="Down-sampling stages.")
@click.option(
    "--arch",
    default="unet",
    show_default=True,
    help="unet (condition encoder, U-Net skips, FiLM(z)) | conv (the first backbone).",
)
@click.option(
    "--prior",
    default="auto",
    show_default=True,
    help="dependent: p(z|c) from a prior network (a unet cvae's default) | independent: N(0, I).",
)
@click.option(
    "--augment/--no-augment",
    default=True,
    show_default=True,
    help="Random flips and quarter turns of each design with its problem.",
)
@click.option("--beta", type=float, help="KL weight (default 1; 4 for beta-vae).")
@click.option(
    "--free-bits",
    type=float,
    default=0.0,
    show_default=True,
    help="Minimum KL per latent dimension (nats).",
)
@click.option(
    "--kl-warmup",
    type=int,
    default=0,
    show_default=True,
    help="Steps over which the KL weight ramps up from 0.",
)
@click.option(
    "--volume-weight",
    type=float,
    default=0.0,
    show_default=True,
    help="Weight of the decoded-volume vs volume-fraction term.",
)
@click.option("--epochs", type=int, default=50, show_default=True)
@click.option("--batch-size", type=int, default=256, show_default=True)
@click.option("--lr", type=float, default=1e-3, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", required=True, help="Run folder (checkpoints, logs, plots).")
@click.option("--device", default="auto", show_default=True, help="auto | cpu | cuda.")
@click.option("--resume", is_flag=True, help="Continue from OUT/last.pt.")
@click.option("--compile", "compile_", is_flag=True, help="torch.compile the model.")
@click.option(
    "--fields/--no-fields",
    default=True,
    show_default=True,
    help="A cvae also conditions on the full-material strain energy and stress (computed when "
    "the file does not store them); without them the demo's first designs are 4x further "
    "from SIMP (benchmarks/bench_quality.py --no-fields).",
)
@click.option("--in-memory/--from-disk", default=True, show_default=True)
@click.option("--quiet", "-q", is_flag=True)
def train(
    data: str, kind: str, latent_dim: int, base_width: int, depth: int, arch: str, prior: str,
    augment: bool, beta: float | None,
    free_bits: float, kl_warmup: int, volume_weight: float, epochs: int, batch_size: int,
    lr: float, seed: int, out: str, device: str, resume: bool, compile_: bool, fields: bool,
    in_memory: bool, quiet: bool,
) -> None:  # fmt: skip
    """Train a design VAE on a dataset file."""
    import h5py

    from .datasets import TopologyDataset
    from .models import ConfigError, TrainConfig, Trainer, TrainingError, VAEConfig

    _output_folder(out, parents=True)
    _check_device(device)
    header = _dataset_header(data)
    with h5py.File(data, "r") as f:
        has_conditions = "problem/loads" in f
    if kind == "cvae" and not has_conditions:
        raise InputError(f"{data} holds no problem conditions; a cvae needs them")
    d = header["distribution"]
    fields = fields and kind == "cvae"  # the fields are condition channels
    try:
        train_set = TopologyDataset(data, "train", in_memory=in_memory, fields=fields)
        val_set = TopologyDataset(data, "val", in_memory=in_memory, fields=fields)
        cc = len(train_set.condition_channels) if kind == "cvae" else 0
        beta = beta if beta is not None else (4.0 if kind == "beta-vae" else 1.0)
        mcfg = VAEConfig(
            kind=kind, height=d.nely, width=d.nelx, cond_channels=cc, latent_dim=latent_dim,
            base_width=base_width, depth=depth, arch=arch, prior=prior, beta=beta,
            free_bits=free_bits, kl_warmup_steps=kl_warmup, volume_weight=volume_weight,
        )  # fmt: skip
        tcfg = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, device=device,
                           compile=compile_, augment=augment)  # fmt: skip
        fingerprint = {"file": Path(data).name, "distribution": d.to_json(),
                       "seed": header["seed"], "n": header["n"], "fields": fields}  # fmt: skip
        trainer = Trainer(mcfg, tcfg, train_set, val_set, out, data_fingerprint=fingerprint)
        history = trainer.fit(resume=resume, progress=not quiet)
    except (ConfigError, ValueError) as e:
        raise InputError(str(e)) from None
    except TrainingError as e:
        click.echo(f"Error: {e}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo(f"interrupted: {out}/last.pt holds the last finished epoch; --resume", err=True)
        sys.exit(130)
    if not history:  # a torchrun rank other than 0: rank 0 evaluates, writes and reports
        return
    last = history[-1]
    click.echo(
        f"{out}: epoch {last['epoch']}, val loss {last['val_total']:.4g}, "
        f"IoU {last['val_iou']:.3f}, active units {last['val_active_units']}"
    )


# -- workflows: explore, search, evaluate, demo ----------------------------------------------------
def _load_model(checkpoint: str):
    from .models import ConfigError, load

    try:
        return load(checkpoint)
    except ConfigError as e:
        raise InputError(str(e)) from None


def _problem_options(f):
    """--problem/--volfrac/--problem-file/--data/--index: the problem a model works on."""
    f = click.option("--index", type=int, help="With --data: the sample's index in the file.")(f)
    f = click.option(
        "--data", help="A dataset file: use the problem (and SIMP design) of --index."
    )(f)
    f = click.option("--problem-file", type=click.Path(dir_okay=False),
                     help="A problem saved with Problem.save (.npz).")(f)  # fmt: skip
    f = click.option("--volfrac", type=float, help="Volume fraction of the --problem preset.")(f)
    f = click.option(
        "--problem", "-p", help="A preset problem on the model's grid (see solve --list)."
    )(f)
    return f


def _model_problem(model, problem, volfrac, problem_file, data, index):
    """(Problem or None, SIMP reference design or None) from the problem options."""
    from .solvers import Problem, ProblemError, preset
    from .workflows import WorkflowError, condition_of

    given = [x is not None for x in (problem, problem_file, data)]
    if sum(given) > 1:
        raise InputError("give one of --problem, --problem-file and --data")
    cfg = model.config
    prob, reference = None, None
    try:
        if problem is not None:
            prob = preset(problem, nelx=cfg.width, nely=cfg.height, volfrac=volfrac)
        elif problem_file is not None:
            prob = Problem.load(problem_file)
        elif data is not None:
            from .datasets import TopologyDataset

            if index is None:
                raise InputError("--data needs --index (a sample of the file)")
            _dataset_header(data)
            ds = TopologyDataset(data, split="all")
            k = ds.position(index)
            if k is None:
                raise InputError(f"--index {index} is not in {data} (it holds {len(ds)} samples)")
            prob, reference = ds.problem(k), ds[k]["density"][0].numpy().astype(np.float64)
    except (ProblemError, ValueError) as e:
        raise InputError(str(e)) from None
    if prob is not None:
        try:
            condition_of(model, prob)
        except WorkflowError as e:
            raise InputError(str(e)) from None
    elif cfg.conditional:
        raise InputError(
            "this model is a cvae: give the problem to condition it on with --problem, "
            "--problem-file or --data and --index"
        )
    return prob, reference


def _workflow_errors():
    from .workflows import JudgeError, WorkflowError

    return (WorkflowError, JudgeError)


@main.group()
def explore() -> None:
    """Look at a trained model's design manifold; every picture is scored by the judge."""


@explore.command("sample")
@click.argument("checkpoint")
@click.option("-n", "n", type=int, default=16, show_default=True)
@_problem_options
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", default="auto", show_default=True, help="auto | cpu | cuda.")
@click.option("--out", required=True, help="PNG file to write.")
def explore_sample(checkpoint, n, problem, volfrac, problem_file, data, index, seed, device, out):
    """Prior samples (conditioned on the problem for a cvae), each titled with its score; also
    `topovae sample`."""
    from .workflows import prior_samples, save_scored_grid

    png = _output_path(out, "--out", image=True)
    _check_device(device)
    if not 0 < n <= MAX_DESIGNS:
        raise InputError(f"-n must be an integer in 1..{MAX_DESIGNS}, got {n}")
    model = _load_model(checkpoint)
    prob, reference = _model_problem(model, problem, volfrac, problem_file, data, index)
    try:
        designs = prior_samples(model, n, prob, seed=seed, device=device)
        save_scored_grid(designs, prob, png, [f"sample {k}" for k in range(n)],
                         reference=reference)  # fmt: skip
    except _workflow_errors() as e:
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
    from .workflows import interpolate, save_scored_grid

    png = _output_path(out, "--out", image=True)
    _check_device(device)
    if not 2 <= steps <= MAX_DESIGNS:
        raise InputError(f"--steps must be an integer in 2..{MAX_DESIGNS}, got {steps}")
    model = _load_model(checkpoint)
    ends = []
    for i in (start, end):
        prob, design = _model_problem(model, None, None, None, data, i)
        ends.append((prob, design))
    (pa, da), (pb, db) = ends
    from .datasets._torch import problem_condition

    fields = model.config.cond_channels > 7
    conds = (problem_condition(pa, fields), problem_condition(pb, fields))
    try:
        path = interpolate(model, da, db, steps=steps, method=method, device=device,
                           conditions=conds if model.config.conditional else None)  # fmt: skip
    except _workflow_errors() as e:
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
@_problem_options
@click.option("--device", default="auto", show_default=True, help="auto | cpu | cuda.")
@click.option("--out", required=True, help="PNG file to write.")
def explore_traverse(checkpoint, dim, span, steps, problem, volfrac, problem_file, data, index,
                     device, out) -> None:  # fmt: skip
    """Designs with one latent dimension swept over a range, the others at the prior mean."""
    from .workflows import save_scored_grid, traverse

    png = _output_path(out, "--out", image=True)
    _check_device(device)
    if not 2 <= steps <= MAX_DESIGNS:
        raise InputError(f"--steps must be an integer in 2..{MAX_DESIGNS}, got {steps}")
    model = _load_model(checkpoint)
    prob, reference = _model_problem(model, problem, volfrac, problem_file, data, index)
    values = np.linspace(span[0], span[1], steps)
    try:
        designs = traverse(model, dim, values, prob, device=device)
        save_scored_grid(designs, prob, png, [f"z{dim}={v:+.2f}" for v in values],
                         reference=reference, ncols=steps)  # fmt: skip
    except _workflow_errors() as e:
        raise InputError(str(e)) from None
    click.echo(f"wrote {png}")


@main.command()
@click.argument("checkpoint")
@_problem_options
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
    from .plotting import save_design_grid, save_search_curves
    from .solvers import solve as simp_solve
    from .workflows import METHODS
    from .workflows import search as latent_search
    from .workflows._latent import check_seed

    methods = METHODS if "all" in methods else tuple(dict.fromkeys(methods))
    for m in methods:
        if m not in METHODS:
            raise InputError(f"unknown --method {m!r}; choose from: {', '.join(METHODS)}, all")
    if budget <= 0:
        raise InputError(f"--budget must be a positive number of FE evaluations, got {budget}")
    if polish < 0:
        raise InputError(f"--polish must be an integer >= 0, got {polish}")
    if starts < 1:
        raise InputError(f"--starts must be a positive integer, got {starts}")
    try:
        check_seed(seed)
    except _workflow_errors() as e:
        raise InputError(str(e)) from None
    folder = _output_folder(out)
    _check_device(device)
    model = _load_model(checkpoint)
    prob, reference = _model_problem(model, problem, volfrac, problem_file, data, index)
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
    except _workflow_errors() as e:
        raise InputError(str(e)) from None
    if reference is not None:
        from .workflows import score

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
    "--mean-first/--random-first",
    default=True,
    show_default=True,
    help="Whether the first of the k latent vectors is the prior mean.",
)
@click.option("--device", default="auto", show_default=True, help="auto | cpu | cuda.")
@click.option("--out", required=True, help="Report folder.")
@click.option("--quiet", "-q", is_flag=True)
def evaluate(checkpoint, data, split, k, polish, limit, seed, project, mean_first, device, out,
             quiet) -> None:  # fmt: skip
    """Judge a model's designs against the SIMP designs of a dataset split."""
    from .workflows import evaluate as run_evaluation
    from .workflows import write_report

    folder = _output_folder(out)
    _check_device(device)
    if not 0 < k <= MAX_DESIGNS:
        raise InputError(f"-k must be an integer in 1..{MAX_DESIGNS}, got {k}")
    _dataset_header(data)
    model = _load_model(checkpoint)
    try:
        report = run_evaluation(model, data, split, k=k, polish=polish, seed=seed, limit=limit,
                                device=device, progress=not quiet, project=project,
                                mean_first=mean_first)  # fmt: skip
    except _workflow_errors() as e:
        raise InputError(str(e)) from None
    paths = write_report(report, folder)
    m = report["metrics"]
    for v in m:
        click.echo(
            f"{v:>9}: CE mean {100 * m[v]['ce_mean']:.2f} %, "
            f"median {100 * m[v]['ce_median']:.2f} %, "
            f"floating {100 * m[v]['floating_rate']:.1f} %, VFE {100 * m[v]['vfe_mean']:.2f} %"
        )
    click.echo(f"wrote {paths['json']}, {paths['md'].name}, {paths['html'].name}")


@main.command()
@click.option("--out", default="runs/demo", show_default=True, help="Output folder.")
@click.option("--quick", is_flag=True, help="A tiny run of every step (about a minute).")
@click.option("--device", default="auto", show_default=True, help="auto | cpu | cuda.")
@click.option("--quiet", "-q", is_flag=True)
def demo(out: str, quick: bool, device: str, quiet: bool) -> None:
    """The main job end to end: data, a CVAE, its evaluation, a latent search, a report."""
    from .workflows import run_demo

    folder = _output_folder(out, parents=True)  # made with its parents (default runs/demo)
    _check_device(device)
    run_demo(folder, quick=quick, device=device, progress=not quiet, log=click.echo)


if __name__ == "__main__":  # pragma: no cover
    main()
