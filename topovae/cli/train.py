"""`topovae train`: a design VAE on a dataset file."""

from __future__ import annotations

import sys

import click

from ._common import (
    InputError,
    check_device,
    main,
    output_folder,
)


@main.command()
@click.argument("data")
@click.option("--model", "kind", default="vae", show_default=True,
              help="vae | beta-vae | cvae | hvae (the ladder VAE: a cvae with two stochastic "
              "layers) | vqvae (conditional, --latent-dim discrete code slots, its "
              "autoregressive prior fitted after training) | ppca (probabilistic PCA, "
              "unconditional, fitted in closed form in seconds).")  # fmt: skip
@click.option("--latent-dim", type=int, default=32, show_default=True)
@click.option(
    "--top-dim",
    type=int,
    default=0,
    show_default=True,
    help="hvae: latent dimensions of the top layer (0: half of --latent-dim).",
)
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
@click.option(
    "--compliance-weight",
    type=float,
    default=0.0,
    show_default=True,
    help="Weight of the physics term: log of the FE compliance of the volume-projected decode "
    "over the SIMP design's (0: off; each judged design costs one FE solve per step).",
)
@click.option("--compliance-start", type=int, default=0, show_default=True,
              help="Step at which the physics term starts.")  # fmt: skip
@click.option("--compliance-ramp", type=int, default=0, show_default=True,
              help="Steps over which its weight ramps up linearly.")  # fmt: skip
@click.option(
    "--compliance-decode",
    default="auto",
    show_default=True,
    help="prior_mean: the term judges the model's first design for each problem (a cvae's "
    "default) | prior_sample: a prior sample, any design it offers (a design space) | "
    "posterior: the reconstruction.",
)
@click.option("--compliance-samples", type=int, default=0, show_default=True,
              help="Designs of each batch the physics term judges (0: all).")  # fmt: skip
@click.option("--compliance-tolerance", type=float, default=0.0, show_default=True,
              help="Designs within this fraction of their SIMP design's compliance are not "
              "pushed further (0.1: within 10 %), so a prior_sample term keeps near-optimal "
              "alternatives apart.")  # fmt: skip
@click.option("--floating-weight", type=float, default=0.0, show_default=True,
              help="Weight, within the physics term, of the judged designs' floating material "
              "(their density outside every load-carrying component of their binarisation), so "
              "the decoder needs no load-path repair (needs --compliance-weight > 0).")  # fmt: skip
@click.option("--condition-dropout", type=float, default=0.0, show_default=True,
              help="Partial conditions (cvae): leave out each condition group (volume fraction, "
              "loads, supports) with this probability in training, so the model also answers "
              "a partial problem (workflows' --drop).")  # fmt: skip
@click.option("--prior-components", type=int, default=0, show_default=True,
              help="cvae/hvae: fit a mixture of this many Gaussians over the latent after "
              "training and draw prior samples from it, so that k samples cover more of a "
              "problem's alternatives (0: the Gaussian prior).")  # fmt: skip
@click.option("--codebook-size", type=int, default=0, show_default=True,
              help="vqvae: codes in the codebook (0: 64).")  # fmt: skip
@click.option("--code-dim", type=int, default=0, show_default=True,
              help="vqvae: dimensions of each code (0: 8).")  # fmt: skip
@click.option("--commitment", type=float, default=0.25, show_default=True,
              help="vqvae: weight of the commitment term.")  # fmt: skip
@click.option("--codebook-decay", type=float, default=0.99, show_default=True,
              help="vqvae: decay of the codebook's moving averages (0: the codebook loss "
              "and gradient steps instead).")  # fmt: skip
@click.option(
    "--init",
    "init",
    help="Start from this checkpoint's weights (same architecture; the loss settings may "
    "differ): a fine-tune, e.g. with the physics term. A fresh optimizer and schedule.",
)
@click.option("--epochs", type=int, default=50, show_default=True)
@click.option("--batch-size", type=int, default=256, show_default=True)
@click.option("--lr", type=float, default=1e-3, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", required=True, help="Run folder (checkpoints, logs, plots).")
@click.option("--device", default="auto", show_default=True, help="auto | cpu | cuda.")
@click.option("--resume", is_flag=True, help="Continue from OUT/last.pt.")
@click.option("--compile", "compile_", is_flag=True, help="torch.compile the model.")
@click.option("--ema", type=float, default=0.0, show_default=True,
              help="Decay of a weight average saved as the model (0: off).")  # fmt: skip
@click.option("--threads", type=int, default=0, show_default=True,
              help="torch CPU threads; 0: torch's count, or 1 while that is faster because "
              "other processes keep the cores busy (re-measured as it trains). Fix it for "
              "bit-for-bit repeatable runs.")  # fmt: skip
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
    data: str, kind: str, latent_dim: int, top_dim: int, base_width: int, depth: int, arch: str,
    prior: str, augment: bool, beta: float | None,
    free_bits: float, kl_warmup: int, volume_weight: float, compliance_weight: float,
    compliance_start: int, compliance_ramp: int, compliance_decode: str,
    compliance_samples: int, compliance_tolerance: float, floating_weight: float,
    condition_dropout: float, prior_components: int, codebook_size: int, code_dim: int,
    commitment: float, codebook_decay: float, init: str | None, epochs: int,
    batch_size: int,
    lr: float, seed: int, out: str, device: str, resume: bool, compile_: bool, ema: float,
    threads: int, fields: bool,
    in_memory: bool, quiet: bool,
) -> None:  # fmt: skip
    """Train a design VAE on a dataset file."""
    from ..models import ConfigError, TrainConfig, TrainingError
    from ..solvers import ProblemError
    from ..workflows import WorkflowError
    from ..workflows import train as train_model

    output_folder(out, parents=True)
    check_device(device)
    if init is not None:  # named by its flag, before any work
        if resume:
            raise InputError("--init starts a run from a checkpoint; --resume continues one")
        from ..models import read_checkpoint

        try:
            read_checkpoint(init)
        except ConfigError as e:
            raise InputError(f"--init: {e}") from None
    try:
        tcfg = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, device=device,
                           compile=compile_, augment=augment, ema=ema,
                           threads=threads)  # fmt: skip
        trainer = train_model(
            data, out, kind, train_config=tcfg, fields=fields, in_memory=in_memory, init=init,
            resume=resume, progress=not quiet, latent_dim=latent_dim, base_width=base_width,
            **({"top_dim": top_dim} if top_dim else {}),
            depth=depth, arch=arch, prior=prior, free_bits=free_bits, kl_warmup_steps=kl_warmup,
            volume_weight=volume_weight, compliance_weight=compliance_weight,
            compliance_start=compliance_start, compliance_ramp=compliance_ramp,
            compliance_decode=compliance_decode, compliance_samples=compliance_samples,
            compliance_tolerance=compliance_tolerance, floating_weight=floating_weight,
            condition_dropout=condition_dropout, prior_components=prior_components,
            codebook_size=codebook_size, code_dim=code_dim, commitment=commitment,
            codebook_decay=codebook_decay,
            **({} if beta is None else {"beta": beta}),
        )  # fmt: skip
        history = trainer.history
    except (ConfigError, ProblemError, WorkflowError, ValueError) as e:
        raise InputError(str(e)) from None
    except TrainingError as e:
        click.echo(f"Error: {e}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo(f"interrupted: {out}/last.pt holds the last finished epoch; --resume", err=True)
        sys.exit(130)
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():  # under torchrun: leave the group cleanly
        dist.destroy_process_group()  # (gloo's threads abort a process that exits inside it)
    if not history:  # a torchrun rank other than 0: rank 0 evaluates, writes and reports
        return
    # the last validated epoch (a run resumed past its new --epochs may end on one that was
    # not; the first epoch always is)
    last = next(r for r in reversed(history) if "val_total" in r)
    click.echo(
        f"{out}: epoch {last['epoch']}, val loss {last['val_total']:.4g}, "
        f"IoU {last['val_iou']:.3f}, active units {last['val_active_units']}"
    )
