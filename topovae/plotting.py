"""Matplotlib figures shared by the whole package (headless: the Agg backend, PNG files).

from topovae.plotting import save_solve_figure
save_solve_figure(result, "mbb.png")        # design with supports and loads + history
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from .solvers import Problem, SolveResult


def _save(fig: Any, path: str | Path, dpi: int) -> Path:
    """Lay out, write as PNG and close a figure."""
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=dpi)
    _pyplot().close(fig)
    return path


def _pyplot() -> Any:
    import matplotlib

    if not os.environ.get("MPLBACKEND"):
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def draw_design(
    ax: Axes, density: np.ndarray, problem: Problem | None = None, title: str | None = None
) -> None:
    """Density (nely, nelx) in grey scale (black = solid) with, when ``problem`` is given, its
    supports (blue > fixes x, green ^ fixes y, green square fixes both), loads (red arrows, every
    case) and passive regions (outlined: orange solid, purple void)."""
    nely, nelx = density.shape
    ax.imshow(
        1 - density, cmap="gray", vmin=0, vmax=1, extent=(0, nelx, nely, 0), interpolation="nearest"
    )
    if problem is not None:
        for mask, color in (
            (problem.passive_solid, "tab:orange"),
            (problem.passive_void, "tab:purple"),
        ):
            if mask.any():
                ax.contour(
                    np.arange(nelx) + 0.5,
                    np.arange(nely) + 0.5,
                    mask.astype(float),
                    levels=[0.5],
                    colors=color,
                    linewidths=1.0,
                )
        size = max(nelx, nely)
        both = problem.fixed_x & problem.fixed_y
        for mask, marker, color in (
            (problem.fixed_x & ~both, ">", "tab:blue"),
            (problem.fixed_y & ~both, "^", "tab:green"),
            (both, "s", "tab:green"),
        ):
            iy, jx = np.nonzero(mask)
            ax.scatter(
                jx, iy, marker=marker, s=max(4.0, 900.0 / size), c=color, zorder=3, clip_on=False
            )
        scale = 0.12 * size
        for load in problem.loads:
            fx, fy = load
            mag = np.hypot(fx, fy)
            if mag.max() == 0:
                continue
            iy, jx = np.nonzero(mag)
            step = -(-iy.size // 12)  # distributed loads: at most ~12 arrows per case
            iy, jx = iy[::step], jx[::step]
            norm = mag.max()
            # y is up for forces and down for image rows
            ax.quiver(
                jx,
                iy,
                fx[iy, jx] / norm * scale,
                -fy[iy, jx] / norm * scale,
                color="tab:red",
                angles="xy",
                scale_units="xy",
                scale=1,
                width=0.006,
                zorder=4,
                pivot="tip",
            )
    ax.set_xlim(-0.05 * nelx, 1.05 * nelx)
    ax.set_ylim(1.05 * nely + 0.12 * max(nelx, nely), -0.05 * nely - 0.12 * max(nelx, nely))
    ax.set_aspect("equal")
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=9)


def save_solve_figure(result: SolveResult, path: str | Path, dpi: int = 150) -> Path:
    """The final design (with supports and loads) and the convergence history, as a PNG."""
    plt = _pyplot()
    p = result.problem
    aspect = p.nely / p.nelx
    fig, (ax0, ax1) = plt.subplots(
        1, 2, figsize=(10, max(3.0, 5.5 * aspect + 1)), gridspec_kw={"width_ratios": [3, 2]}
    )
    draw_design(
        ax0,
        result.density,
        p,
        title=f"{p.name} {p.nelx}x{p.nely}: c = {result.compliance:.5g}, "
        f"vol = {result.volume:.3f}, {result.iterations} it"
        + ("" if result.converged else " (not converged)"),
    )
    it = np.arange(1, result.iterations + 1)
    ax1.plot(it, result.history["compliance"], color="tab:blue")
    ax1.set_xlabel("iteration")
    ax1.set_ylabel("compliance", color="tab:blue")
    ax1.set_yscale("log")
    ax2 = ax1.twinx()
    ax2.plot(it, result.history["volume"], color="tab:gray", lw=1)
    ax2.set_ylabel("volume fraction", color="tab:gray")
    ax2.set_ylim(0, 1)
    ax1.set_title(
        f"{p.settings.update_rule.upper()}, {p.settings.filter} filter "
        f"r={p.settings.rmin:g}, p={p.settings.penal:g}",
        fontsize=9,
    )
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def save_design_grid(
    items: list[tuple[np.ndarray, Problem | None, str]],
    path: str | Path,
    ncols: int | None = None,
    dpi: int = 120,
) -> Path:
    """(density, problem, title) triples drawn in a grid (near-square by default); a None item
    leaves its cell empty (to start a row)."""
    plt = _pyplot()
    ncols = ncols or max(1, round(len(items) ** 0.5))
    nrows = -(-len(items) // ncols)
    h, w = next(item for item in items if item is not None)[0].shape
    cell = (3.6 * min(1.6, max(0.7, w / h)), 2.8)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(cell[0] * ncols, cell[1] * nrows), squeeze=False
    )
    for ax in axes.flat[len(items) :]:
        ax.axis("off")
    for ax, item in zip(axes.flat, items, strict=False):
        if item is None:
            ax.axis("off")
        else:
            draw_design(ax, item[0], item[1], title=item[2])
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def save_results_grid(results: list[SolveResult], path: str | Path, ncols: int = 3) -> Path:
    """Solved designs side by side, each titled with its problem and compliance."""
    items = [
        (r.density, r.problem, f"{r.problem.name} {r.problem.nelx}x{r.problem.nely} "
         f"c={r.compliance:.4g}")
        for r in results
    ]  # fmt: skip
    return save_design_grid(items, path, ncols=ncols)


def _mosaic(rows: list[np.ndarray], gap: int = 1, line: float = 0.2) -> np.ndarray:
    """Rows of density images, each (n, H, W) with the same n, H, W, as one (rows (H + gap) -
    gap, n (W + gap) - gap) density image, ``gap`` elements of density ``line`` between them."""
    n, h, w = rows[0].shape
    out = np.full((len(rows) * (h + gap) - gap, n * (w + gap) - gap), line, dtype=float)
    for r, images in enumerate(rows):
        for k, img in enumerate(images):
            out[r * (h + gap) : r * (h + gap) + h, k * (w + gap) : k * (w + gap) + w] = img
    return out


def save_training_figures(trainer: Any, kl_per_dim: list[float], n: int = 8) -> None:
    """PNGs of a `Trainer` in its output folder (redrawn about ten times a run): loss curves
    (loss.png), held-out reconstructions (reconstructions.png), prior samples (samples.png; a
    conditional model uses held-out conditions) and the KL of each latent dimension (kl.png)."""
    import torch

    plt = _pyplot()
    out, hist = trainer.out, trainer.history
    epochs = [r["epoch"] for r in hist]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.2))
    for ax, key in zip(axes, ("total", "reconstruction", "kl"), strict=True):
        ax.plot(epochs, [r[f"train_{key}"] for r in hist], label="train")
        val = [r for r in hist if f"val_{key}" in r]  # epochs that were validated
        ax.plot([r["epoch"] for r in val], [r[f"val_{key}"] for r in val], label="validation")
        ax.set_title(key)
        ax.set_xlabel("epoch")
    axes[0].legend()
    # fixed margins, not tight_layout: its extra draw was a third of a redraw's time
    fig.subplots_adjust(left=0.05, right=0.99, bottom=0.16, top=0.9, wspace=0.22)
    fig.savefig(out / "loss.png", dpi=100)
    plt.close(fig)

    model, cfg = trainer.eval_model, trainer.mcfg
    items = [trainer.val_set[k] for k in range(min(n, len(trainer.val_set)))]
    x = torch.stack([it["density"] for it in items]).to(trainer.device)
    c = (
        torch.stack([it["condition"] for it in items]).to(trainer.device)
        if cfg.conditional
        else None
    )
    model.eval()
    rec = model.reconstruct(x, c).float().cpu().numpy()
    gen = torch.Generator(device=trainer.device).manual_seed(0)
    samples = model.sample(len(items), c, generator=gen).float().cpu().numpy()
    x = x.float().cpu().numpy()
    # each picture is one image (a mosaic of the designs, light grey lines between them): one
    # axes instead of one per design, and no tight_layout (an extra draw): a redraw of the four
    # PNGs took 1.6 s on 2 cores, ten times a run
    for name, rows in (("reconstructions", (x, rec)), ("samples", (samples,))):
        fig = plt.figure(figsize=(1.6 * len(items), 1.6 * len(rows) + 0.4))
        ax = fig.add_axes((0.01, 0.01, 0.98, 1 - 0.45 / fig.get_figheight()))
        ax.imshow(1 - _mosaic([images[:, 0] for images in rows]), cmap="gray", vmin=0, vmax=1)
        ax.axis("off")
        fig.suptitle(f"epoch {trainer.epoch}: {name}" + (" (top: data)" if len(rows) > 1 else ""))
        fig.savefig(out / f"{name}.png", dpi=100)
        plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 3))
    ax.bar(range(len(kl_per_dim)), kl_per_dim)
    ax.set_xlabel("latent dimension")
    ax.set_ylabel("KL (nats)")
    ax.set_title(f"epoch {trainer.epoch}: KL per dimension")
    fig.subplots_adjust(left=0.12, right=0.98, bottom=0.16, top=0.9)
    fig.savefig(out / "kl.png", dpi=100)
    plt.close(fig)


def save_ce_histogram(ce: dict[str, np.ndarray], path: str | Path) -> Path:
    """Distributions of compliance errors (one series per name), in percent, as a PNG."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.2))
    values = np.concatenate([np.asarray(v) for v in ce.values()])
    hi = float(np.clip(np.nanpercentile(100 * values, 95), 1.0, 500.0))
    lo = float(min(0.0, np.nanmin(100 * values)))
    bins = np.linspace(lo, hi, 40)
    for name, v in ce.items():
        ax.hist(np.clip(100 * np.asarray(v), lo, hi), bins=bins, histtype="step", label=name)
    ax.set_xlabel(f"compliance error CE (%), clipped at {hi:.0f}")
    ax.set_ylabel("problems")
    ax.legend()
    return _save(fig, path, dpi=110)


def save_factor_matrix(info: dict, path: str | Path) -> Path:
    """The factor x latent-dimension matrix of normalised mutual information
    (`workflows._factors.factor_information`), with each factor's gap (MIG term), as a PNG."""
    plt = _pyplot()
    mi = np.asarray(info["mi"], dtype=float)
    names = info["factors"]
    fig, ax = plt.subplots(figsize=(max(4.0, 0.35 * mi.shape[1] + 2.5), 0.45 * len(names) + 1.4))
    im = ax.imshow(mi, cmap="viridis", vmin=0.0, vmax=max(0.05, float(mi.max())), aspect="auto")
    ax.set_yticks(range(len(names)), [f"{n} (gap {info['gap'][n]:.2f})" for n in names])
    ax.set_xticks(range(mi.shape[1]))
    ax.set_xlabel("latent dimension")
    ax.set_title(f"I(z_j; factor) / H(factor); MIG {info['mig']:.3f}", fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.04)
    return _save(fig, path, dpi=110)


def save_search_curves(
    curves: dict[str, np.ndarray], path: str | Path, reference: float | None = None
) -> Path:
    """Best compliance so far against FE evaluations, one curve per search method; as CE in
    percent when the ``reference`` compliance (SIMP's) is given."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.6))
    low = np.inf
    for name, best in curves.items():
        best = np.asarray(best, dtype=float)
        y = 100 * (best / reference - 1) if reference else best
        low = min(low, float(np.min(y)))
        ax.plot(np.arange(1, len(best) + 1), y, label=name)
    ax.set_xlabel("FE evaluations")
    ax.set_ylabel("best CE (%)" if reference else "best compliance")
    if reference:
        ax.axhline(0.0, color="gray", lw=0.8, ls="--")
        ax.set_yscale("symlog", linthresh=1.0)  # linear within +-1 %, logarithmic beyond
        ax.set_ylim(bottom=min(-0.5, 1.5 * low))
    else:
        ax.set_yscale("log")
    ax.legend()
    return _save(fig, path, dpi=110)
