"""How wide do a trained model's posteriors get, and would capping them at the prior's bound help?

For a model and its dataset, per split (train: the first ``--train-limit`` designs; val: all), it
encodes every design and prints the largest raw log-variance per design (median, 99.9th
percentile, max, and how many exceed the prior's upper bound of 5 and 2), then the
reconstruction loss (Bernoulli, nats per design) of one sampled z per design (seeded) with the
log-variance capped at 20 (the encoder's bound) and at 5 (the prior's), and at the posterior
mean. It does so twice: in eval mode (BatchNorm's running statistics, as validation, `encode`
and exploration use) and in train mode (each batch's own statistics, as training sees them;
the running statistics are left untouched).

Measured (2026-12-01, 2 cores, eval mode only; those models are not in the repository):

- a 64x64 cvae trained on 8000 mixed designs (`benchmarks/route64.sh`): on 1600 training designs
  the largest log-variance is a median -2.90, but 5 exceed 5 (max 12.53, in a latent dimension
  where the prior's is 4.23); one sampled z of each costs a mean 1.07e7 nats with the cap at 20
  (max 1.4e10, the median 496) and a mean 565 with the cap at 5 (max 4.1e4); at the posterior
  mean, 514. Validation (800): max 5.25, means 538.2 and 538.1. Two other 64x64 models of that
  route show the same (3-4 training designs above 5, max 12.2-12.8);
- the demo's 32x32 model: largest log-variance -0.18 over all its designs.

The same model's training log shows no such outliers (training reconstruction ~463 nats per
design, no spikes), so they are likely an eval-mode effect of BatchNorm's running statistics;
the train-mode rows test that. Capping the encoder at 5 was tried and not adopted: the cap would
cut the gradient of any training design above it, and the fine-tune A/B that would show its
effect on training was not completed.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_posterior.py MODEL DATA [--train-limit 1600]
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch
import torch.nn.functional as F

from topovae.models import load
from topovae.workflows._evaluate import _load_split

PRIOR_BOUND = 5.0  # the upper bound of DesignVAE.prior's log-variance


def raw_posterior(model, x, c):
    """(mu, log-variance before any cap) of the encoder, and the condition features."""
    feats = model.condition_features(c)
    if model.config.arch == "unet":
        h = model._run_pyramid(model.encoder, model._pad(x), feats)[-1]
    else:
        h = model.encoder(model._pad(x if c is None else torch.cat([x, c], dim=1)))
    mu, logvar = model.to_latent(h.flatten(1)).chunk(2, dim=1)
    return mu, logvar, feats


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("data")
    ap.add_argument("--train-limit", type=int, default=1600)
    ap.add_argument("--batch", type=int, default=64)
    a = ap.parse_args()
    torch.set_num_threads(2)
    model = load(a.model)
    for m in model.modules():  # train mode below must not move the running statistics
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.momentum = 0.0
    for split, limit in (("train", a.train_limit), ("val", None)):
        ds = _load_split(model, a.data, split, 0)
        n = len(ds) if limit is None else min(limit, len(ds))
        for mode in ("eval", "train"):
            model.train(mode == "train")
            report(model, ds, n, a.batch, f"{split} ({n} designs), {mode} mode")
    return 0


def report(model, ds, n: int, batch: int, title: str) -> None:
    """Print the posterior-width and reconstruction figures of the first n designs of ds."""
    caps = (20.0, PRIOR_BOUND)
    widest, rec = [], {cap: [] for cap in (*caps, "mean")}
    noise = torch.Generator().manual_seed(0)
    for start in range(0, n, batch):
        items = [ds[k] for k in range(start, min(start + batch, n))]
        x = torch.stack([it["density"] for it in items]).float()
        c = None
        if model.config.conditional:
            c = torch.stack([it["condition"] for it in items]).float()
        with torch.no_grad():
            mu, logvar, feats = raw_posterior(model, x, c)
            widest.append(logvar.max(1).values)
            eps = torch.randn(mu.shape, generator=noise)
            for cap in caps:
                z = mu + eps * torch.exp(0.5 * logvar.clamp(-30.0, cap))
                rec[cap].append(bernoulli_nats(model.decode(z, c, feats), x))
            rec["mean"].append(bernoulli_nats(model.decode(mu, c, feats), x))
    w = torch.cat(widest).numpy()
    print(f"{title}: largest log-variance per design median {np.median(w):.2f}, "
          f"99.9th percentile {np.percentile(w, 99.9):.2f}, max {w.max():.2f}; "
          f"above {caps[1]:g}: {(w > caps[1]).sum()}, above 2: {(w > 2).sum()}")  # fmt: skip
    for key, values in rec.items():
        v = torch.cat(values).numpy()
        what = "posterior mean" if key == "mean" else f"one sample, cap {key:g}"
        print(f"  reconstruction at {what}: mean {v.mean():.4g}, median {np.median(v):.4g}, "
              f"max {v.max():.4g} nats")  # fmt: skip


def bernoulli_nats(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Per-design Bernoulli negative log-likelihood, summed over pixels."""
    return F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum((1, 2, 3))


if __name__ == "__main__":
    raise SystemExit(main())
