"""Look at the design manifold: prior samples, interpolations, traversals, each as a scored grid.

    from topovae.workflows import prior_samples, interpolate, traverse, save_scored_grid
    designs = prior_samples(model, 16, problem, seed=0)              # (16, H, W)
    path = interpolate(model, design_a, design_b, steps=8, method="slerp", problem=problem)
    save_scored_grid(path, problem, "interpolation.png")             # each titled with its score

With a problem the designs are the model's (conditioned on it when the model is a CVAE), with
the passive regions imposed, and are scored by the judge; without one (unconditional models)
the figure shows each design's volume fraction and greyness. Latent vectors are whitened (see
`LatentDecoder`): u ~ N(0, I) samples the model's prior for the problem, u = 0 is its mean.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..solvers import Problem
from ._judge import caption, score
from ._latent import LatentDecoder, WorkflowError, check_seed

INTERPOLATIONS = ("linear", "slerp")


def slerp(z0: torch.Tensor, z1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation (B,) steps between two latent vectors (d,), (B, d) out; falls back
    to linear when they are (anti-)parallel."""
    t = t[:, None]
    a, b = z0 / z0.norm(), z1 / z1.norm()
    omega = torch.arccos(torch.clamp((a * b).sum(), -1.0, 1.0))
    if torch.sin(omega).abs() < 1e-6:
        return (1 - t) * z0 + t * z1
    return (torch.sin((1 - t) * omega) * z0 + torch.sin(t * omega) * z1) / torch.sin(omega)


def prior_samples(model, n: int, problem: Problem | None = None, seed: int = 0, device=None):
    """``n`` designs decoded from prior samples, (n, H, W)."""
    if n <= 0:
        raise WorkflowError(f"-n must be a positive integer, got {n}")
    seed = check_seed(seed)
    dec = LatentDecoder(model, problem, device)
    g = torch.Generator().manual_seed(seed)
    return dec.numpy(torch.randn(n, dec.latent_dim, generator=g))


def interpolate(
    model,
    start: np.ndarray,
    end: np.ndarray,
    steps: int = 8,
    method: str = "slerp",
    problem: Problem | None = None,
    conditions: tuple[np.ndarray, np.ndarray] | None = None,
    device=None,
) -> np.ndarray:
    """Designs along the path between the encodings of two designs (H, W), ends included.

    A CVAE encodes each end under its own condition (``conditions``, default: the problem's)
    and decodes the path under the problem's; without a problem the condition is interpolated
    linearly along with z."""
    if method not in INTERPOLATIONS:
        raise WorkflowError(
            f"unknown interpolation {method!r}; choose one of: {', '.join(INTERPOLATIONS)}"
        )
    if steps < 2:
        raise WorkflowError(f"--steps must be >= 2, got {steps}")
    conditional = model.config.conditional
    if conditional and problem is None and conditions is None:
        raise WorkflowError("a cvae needs a problem or the two designs' conditions")
    dec = LatentDecoder(model, problem, device, explicit_conditions=conditions is not None)
    cs = [None, None]
    if conditions is not None:
        cs = [torch.as_tensor(c)[None] for c in conditions]
    z0 = dec.encode(np.asarray(start)[None], cs[0])[0]
    z1 = dec.encode(np.asarray(end)[None], cs[1])[0]
    t = torch.linspace(0, 1, steps, device=z0.device)
    z = slerp(z0, z1, t) if method == "slerp" else (1 - t[:, None]) * z0 + t[:, None] * z1
    c = None
    if conditional and problem is None:
        c0, c1 = (x.to(z.device) for x in cs)
        c = (1 - t[:, None, None, None]) * c0 + t[:, None, None, None] * c1
    return dec.numpy(z, c=c)


def traverse(
    model,
    dim: int,
    values: np.ndarray,
    problem: Problem | None = None,
    base: np.ndarray | None = None,
    device=None,
) -> np.ndarray:
    """Designs with latent dimension ``dim`` set to each of ``values``, the others those of
    ``base`` (a whitened latent vector; default the prior mean, u = 0)."""
    d = model.config.latent_dim
    if not 0 <= dim < d:
        raise WorkflowError(
            f"--dim must be in [0, {d - 1}] for this {d}-dimensional model, got {dim}"
        )
    dec = LatentDecoder(model, problem, device)
    values = np.asarray(values, np.float32)
    z = np.zeros((len(values), d), np.float32) if base is None else np.tile(base, (len(values), 1))
    z[:, dim] = values
    return dec.numpy(torch.from_numpy(z.astype(np.float32)))


def save_scored_grid(
    designs: np.ndarray,
    problem: Problem | None,
    path: str | Path,
    labels: list[str] | None = None,
    reference: np.ndarray | None = None,
    ncols: int | None = None,
) -> tuple[Path, dict[str, np.ndarray] | None]:
    """Designs in a grid, each titled with ``labels[k]`` and its score; returns (path, scores)."""
    from ..plotting import save_design_grid

    labels = labels or [""] * len(designs)
    s = None
    if problem is not None:
        s = score(designs, problem, reference)
        titles = [f"{lab}\n{caption(s, k)}".strip() for k, lab in enumerate(labels)]
    else:
        titles = [
            f"{lab}\nVF={d.mean():.2f} Mnd={4 * np.mean(d * (1 - d)):.2f}".strip()
            for lab, d in zip(labels, designs, strict=True)
        ]
    items = [(d, problem, t) for d, t in zip(designs, titles, strict=True)]
    return save_design_grid(items, path, ncols=ncols), s
