"""Disentanglement against the data's known factors: which latent dimension carries what.

Every design of a topovae dataset knows the factors its problem was drawn from
(`design_factors`): the volume fraction, where the load acts (its force-weighted x and y, as
shares of the width and height) and its direction, which edges hold the supports, and whether
the problem has passive regions. `factor_information` estimates the mutual information between
every latent dimension (the posterior means, discretised into equal-width bins) and every
factor (discretised into quantile bins when it takes more values than that), each divided by
the factor's entropy, and the mutual information gap (MIG, Chen et al. 2018): per factor, the
share of its entropy the most informative dimension holds minus that of the second; 1 when one
dimension alone carries the factor, 0 when two carry it alike or none does. The mean over the
factors is the model's MIG.
"""

from __future__ import annotations

import numpy as np

from ._latent import WorkflowError

FACTORS = ("volfrac", "load_x", "load_y", "load_angle", "supports", "passive")


def design_factors(problems) -> dict[str, np.ndarray]:
    """The generative factors (`FACTORS`) of each problem, as arrays (N,)."""
    out: dict[str, list] = {name: [] for name in FACTORS}
    for p in problems:
        f = np.abs(p.loads).sum(axis=(0, 1))  # (nely+1, nelx+1) force magnitude per node
        rows, cols = np.indices(f.shape)
        total = max(float(f.sum()), 1e-300)
        fx, fy = p.loads[:, 0].sum(), p.loads[:, 1].sum()
        fixed = p.fixed_x | p.fixed_y
        edges = (fixed[:, 0].any(), fixed[:, -1].any(), fixed[0, :].any(), fixed[-1, :].any())
        passive = p.passive_solid is not None and p.passive_solid.any()
        passive = passive or (p.passive_void is not None and p.passive_void.any())
        out["volfrac"].append(p.volfrac)
        out["load_x"].append(float((f * cols).sum()) / total / p.nelx)
        out["load_y"].append(float((f * rows).sum()) / total / p.nely)
        out["load_angle"].append(float(np.degrees(np.arctan2(fy, fx))))
        out["supports"].append(sum(int(e) << k for k, e in enumerate(edges)))
        out["passive"].append(int(passive))
    return {k: np.asarray(v, dtype=np.float64) for k, v in out.items()}


def discretise(values: np.ndarray, bins: int, quantile: bool) -> np.ndarray:
    """Integer codes of ``values`` (N,): its distinct values when there are at most ``bins``,
    else ``bins`` quantile bins (``quantile``) or equal-width bins over its range."""
    values = np.asarray(values, dtype=np.float64)
    distinct = np.unique(values)
    if distinct.size <= bins:
        return np.searchsorted(distinct, values)
    if quantile:
        edges = np.unique(np.quantile(values, np.linspace(0, 1, bins + 1)[1:-1]))
    else:
        edges = np.linspace(values.min(), values.max(), bins + 1)[1:-1]
    return np.searchsorted(edges, values, side="right")


def entropy(codes: np.ndarray) -> float:
    """H of a discrete sample, in nats."""
    p = np.bincount(codes) / codes.size
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def mutual_information(a: np.ndarray, b: np.ndarray) -> float:
    """I(a; b) of two discrete samples (integer codes), in nats, from their joint histogram."""
    return entropy(a) + entropy(b) - entropy(a * (int(b.max()) + 1) + b)


def factor_information(
    latents: np.ndarray, factors: dict[str, np.ndarray], bins: int = 20, factor_bins: int = 10
) -> dict:
    """Normalised mutual information (factor x dimension) and the MIG of ``latents`` (N, D)
    against ``factors`` (name -> (N,)); a factor that never varies is left out."""
    z = np.asarray(latents, dtype=np.float64)
    if z.ndim != 2 or not np.isfinite(z).all():
        raise WorkflowError(f"latents must be a finite (N, D) array, got shape {z.shape}")
    codes_z = [discretise(z[:, j], bins, quantile=False) for j in range(z.shape[1])]
    names, rows, gaps = [], [], {}
    for name, values in factors.items():
        values = np.asarray(values)
        if values.shape != (z.shape[0],):
            raise WorkflowError(f"factor {name!r} must have shape ({z.shape[0]},)")
        v = discretise(values, factor_bins, quantile=True)
        h = entropy(v)
        if h <= 0:
            continue
        mi = np.array([mutual_information(c, v) for c in codes_z]) / h
        names.append(name)
        rows.append(mi)
        top = np.sort(mi)[::-1]
        gaps[name] = float(top[0] - (top[1] if top.size > 1 else 0.0))
    if not names:
        raise WorkflowError("no factor varies over these designs")
    matrix = np.stack(rows)
    return {
        "factors": names,
        "mi": matrix.tolist(),  # (factors, dims), each row divided by the factor's entropy
        "best_dim": {n: int(np.argmax(r)) for n, r in zip(names, rows, strict=True)},
        "gap": gaps,
        "mig": float(np.mean(list(gaps.values()))),
    }
