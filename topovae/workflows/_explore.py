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

import numbers
from pathlib import Path

import numpy as np
import torch

from .._checks import check_path, output_file, real_array
from ..models._config import check_model
from ..solvers import Problem
from ..solvers._problem import check_problem
from ._judge import caption, score
from ._latent import LatentDecoder, WorkflowError, check_count, check_seed

INTERPOLATIONS = ("linear", "slerp")


def slerp(z0: torch.Tensor, z1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation (B,) steps between two latent vectors (d,), (B, d) out; falls back
    to linear when they are (anti-)parallel."""
    for name, v in (("z0", z0), ("z1", z1), ("t", t)):
        if not isinstance(v, torch.Tensor) or v.ndim != 1 or not v.is_floating_point():
            what = (
                f"a {v.ndim}D {v.dtype} tensor" if isinstance(v, torch.Tensor) else type(v).__name__
            )
            raise WorkflowError(f"{name} must be a 1D float tensor, got {what}")
        if not torch.isfinite(v).all():
            raise WorkflowError(f"{name} must be finite")
    if z0.shape != z1.shape:
        raise WorkflowError(
            f"z0 and z1 must have one shape, got {tuple(z0.shape)} and {tuple(z1.shape)}"
        )
    t = t[:, None]
    a, b = z0 / z0.norm(), z1 / z1.norm()
    omega = torch.arccos(torch.clamp((a * b).sum(), -1.0, 1.0))
    if torch.sin(omega).abs() < 1e-6:
        return (1 - t) * z0 + t * z1
    return (torch.sin((1 - t) * omega) * z0 + torch.sin(t * omega) * z1) / torch.sin(omega)


def prior_samples(model, n: int, problem: Problem | None = None, seed: int = 0, device=None):
    """``n`` designs decoded from prior samples, (n, H, W)."""
    check_count(n, "-n")
    seed = check_seed(seed)
    dec = LatentDecoder(model, problem, device)
    g = torch.Generator().manual_seed(seed)
    return dec.numpy(dec.prior_draws(torch.randn(n, dec.latent_dim, generator=g), g))


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
    check_model(model)
    if method not in INTERPOLATIONS:
        raise WorkflowError(
            f"unknown interpolation {method!r}; choose one of: {', '.join(INTERPOLATIONS)}"
        )
    check_count(steps, "--steps", low=2)
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
    d = check_model(model).config.latent_dim
    if isinstance(dim, bool) or not isinstance(dim, int | np.integer) or not 0 <= dim < d:
        raise WorkflowError(
            f"--dim must be in [0, {d - 1}] for this {d}-dimensional model, got {dim}"
        )
    values = real_array(values, "values", WorkflowError).astype(np.float32)
    if values.ndim != 1 or not np.isfinite(values).all():
        raise WorkflowError(
            f"values must be a 1D array of finite numbers, got shape {values.shape}"
        )
    check_count(len(values), "the number of values")
    dec = LatentDecoder(model, problem, device)
    z = np.zeros((len(values), d), np.float32) if base is None else np.tile(base, (len(values), 1))
    z[:, dim] = values
    return dec.numpy(torch.from_numpy(z.astype(np.float32)))


def save_scored_grid(
    designs: np.ndarray,
    problem: Problem | list[Problem] | None,
    path: str | Path,
    labels: list[str] | None = None,
    reference: np.ndarray | None = None,
    ncols: int | None = None,
) -> tuple[Path, dict[str, np.ndarray] | None]:
    """Designs in a grid, each titled with ``labels[k]`` and its score; returns (path, scores).
    ``problem``: one for all designs or a list, one per design (``reference`` then (B, H, W))."""
    from ..plotting import save_design_grid

    path = output_file(path, "path", WorkflowError, image=True)
    designs = real_array(designs, "designs", WorkflowError)
    if designs.ndim != 3 or len(designs) == 0:
        raise WorkflowError(
            f"designs must be a non-empty (B, H, W) array, got shape {designs.shape}"
        )
    if ncols is not None:
        check_count(ncols, "ncols", high=None)
    labels = labels or [""] * len(designs)
    if isinstance(labels, str) or len(labels) != len(designs):
        raise WorkflowError(f"labels must be a list of {len(designs)} titles, one per design")
    if not np.isfinite(designs).all():
        raise WorkflowError("designs must be finite")
    s = None
    problems = problem if isinstance(problem, list) else [problem] * len(designs)
    if problem is not None:
        s = score(designs, problem, reference)
        titles = [f"{lab}\n{caption(s, k)}".strip() for k, lab in enumerate(labels)]
    else:
        titles = [
            f"{lab}\nVF={d.mean():.2f} Mnd={4 * np.mean(d * (1 - d)):.2f}".strip()
            for lab, d in zip(labels, designs, strict=True)
        ]
    items = [(d, p, t) for d, p, t in zip(designs, problems, titles, strict=True)]
    return save_design_grid(items, path, ncols=ncols), s


# -- the latent map: a dataset split in a 2-D plane of the latent space ---------------------------
PROJECTIONS = ("kl", "pca")
COLOURS = ("volfrac", "compliance", "iterations", "kl")


def latent_map(
    model,
    data,
    split: str = "test",
    projection: str = "kl",
    colour: str = "volfrac",
    grid: int = 7,
    span: float = 3.0,
    outliers: int = 8,
    index: int = 0,
    split_seed: int = 0,
    device=None,
) -> dict:
    """A dataset split encoded (whitened posterior means u), projected to a plane, and the
    decoded "manifold grid" over that plane.

    projection: "kl", the two latent dimensions with the most KL (mean over the split: the ones
    the model uses most), or "pca", the two principal directions of the encodings. colour: what
    the scatter is coloured by ("volfrac", the SIMP "compliance" or "iterations" stored in the
    file, or each design's total "kl"). The grid (``grid`` x ``grid`` tiles over [-span, span]^2
    in the plane's coordinates; PCA coordinates are in units of each direction's spread) is
    decoded under the problem of sample ``index`` of the split (a cvae needs one) and every tile
    is judged against that sample's SIMP design. ``outliers``: the samples whose encodings lie
    farthest from the prior (largest |u|). Returns a dict of arrays; `save_latent_map` draws it.
    """
    import h5py

    from ..datasets._store import read_rows
    from ..models._losses import gaussian_kl
    from ._evaluate import _load_split

    check_model(model)
    check_path(data, "data")
    if projection not in PROJECTIONS:
        raise WorkflowError(
            f"unknown projection {projection!r}; choose one of: {', '.join(PROJECTIONS)}"
        )
    if colour not in COLOURS:
        raise WorkflowError(f"unknown colour {colour!r}; choose one of: {', '.join(COLOURS)}")
    if isinstance(grid, bool) or not isinstance(grid, int) or not 2 <= grid <= 16:
        raise WorkflowError(f"--grid must be an integer in 2..16, got {grid}")
    if not isinstance(span, numbers.Real) or not 0 < span < 1e3:
        raise WorkflowError(f"--span must be a number in (0, 1000), got {span}")
    if model.config.latent_dim < 2:
        raise WorkflowError("a latent map needs a model with at least 2 latent dimensions")
    ds = _load_split(model, data, split, split_seed)
    if check_count(index, "--index", low=0, high=None) >= len(ds):
        raise WorkflowError(f"--index must be in [0, {len(ds) - 1}] for this split, got {index}")
    check_count(outliers, "--outliers", low=0)
    conditional = model.config.conditional
    dev = LatentDecoder(model, None, device, explicit_conditions=True).device
    model = model.to(dev).eval()
    us, kls, designs = [], [], []
    with torch.no_grad():
        for start in range(0, len(ds), 64):
            items = [ds[k] for k in range(start, min(start + 64, len(ds)))]
            x = torch.stack([it["density"] for it in items]).to(dev)
            c = torch.stack([it["condition"] for it in items]).to(dev) if conditional else None
            feats = model.condition_features(c)
            mu, logvar, pmu, plogvar = model.latent_distributions(x, c, feats)
            kls.append(gaussian_kl(mu, logvar, pmu, plogvar).cpu())
            us.append(model.whiten(mu, c, feats).cpu())
            designs.append(x[:, 0].cpu())
    u = torch.cat(us).double().numpy()
    kl = torch.cat(kls).double().numpy()
    x = torch.cat(designs).double().numpy()
    kl_dim = kl.mean(0)
    if projection == "kl":
        dims = np.argsort(-kl_dim, kind="stable")[:2]
        basis = np.zeros((2, u.shape[1]))
        basis[[0, 1], dims] = 1.0
        centre, scale = np.zeros(u.shape[1]), np.ones(2)
        axes = [f"u{d} (KL {kl_dim[d]:.2f})" for d in dims]
    else:
        centre = u.mean(0)
        _, sv, vt = np.linalg.svd(u - centre, full_matrices=False)
        basis = vt[:2]
        scale = np.maximum(sv[:2] / np.sqrt(max(len(u) - 1, 1)), 1e-12)
        share = sv[:2] ** 2 / max(float((sv**2).sum()), 1e-300)
        axes = [f"PC{k + 1} ({100 * share[k]:.0f} % of the variance)" for k in range(2)]
    xy = (u - centre) @ basis.T / scale
    if colour == "kl":
        values = kl.sum(1)
    else:  # only the array asked for: an imported file has no SIMP results
        key = {"volfrac": "problem/volfrac", "compliance": "result/compliance",
               "iterations": "result/iterations"}[colour]  # fmt: skip
        with h5py.File(ds.path, "r") as f:
            if key not in f:
                raise WorkflowError(
                    f"{str(ds.path)!r} stores no {colour} (imported designs?); "
                    "colour by volfrac or kl"
                )
            values = read_rows(f, key, ds.rows).astype(np.float64)
    problem = ds.problem(index)
    dec = LatentDecoder(model, problem, dev, explicit_conditions=True)
    ticks = np.linspace(-span, span, grid)
    a, b = np.meshgrid(ticks, ticks[::-1])  # row 0 at the top: the largest second coordinate
    plane = centre + (np.stack([a.ravel(), b.ravel()], 1) * scale) @ basis
    c = ds[index]["condition"] if conditional else None
    tiles = dec.numpy(torch.from_numpy(plane.astype(np.float32)), project=True, c=c)
    tile_scores = score(tiles, problem, np.repeat(x[index][None], len(tiles), 0))
    far = np.argsort(-np.linalg.norm(u, axis=1), kind="stable")[:outliers]
    return {
        "xy": xy, "values": values, "colour": colour, "axes": axes, "projection": projection,
        "ticks": ticks, "tiles": tiles.reshape(grid, grid, *tiles.shape[1:]),
        "tile_scores": {k: v.reshape(grid, grid) for k, v in tile_scores.items()},
        "problem": problem, "index": index, "sample_index": int(ds[index]["index"]),
        "outliers": [(int(ds[k]["index"]), float(np.linalg.norm(u[k])), x[k], ds.problem(k))
                     for k in far],
        "kl_per_dim": kl_dim, "split": split,
    }  # fmt: skip


def save_latent_map(m: dict, path: str | Path) -> tuple[Path, Path | None]:
    """The map (scatter left, the manifold grid right with each tile's CE printed on it) as
    ``path``, and the outliers as ``<stem>_outliers<suffix>`` (None when there are none)."""
    from matplotlib.colors import LogNorm

    from ..plotting import _pyplot, save_design_grid

    path = output_file(path, "path", WorkflowError, image=True)
    if not isinstance(m, dict) or not {"tiles", "xy", "values", "tile_scores"} <= m.keys():
        raise WorkflowError("m must be a latent map (the dict latent_map returns)")
    plt = _pyplot()
    tiles = m["tiles"]
    grid, (h, w) = tiles.shape[0], tiles.shape[2:]
    gap = max(1, h // 8)
    mosaic = np.full((grid * (h + gap) - gap, grid * (w + gap) - gap), 0.35)  # grey gaps
    for i in range(grid):
        for j in range(grid):
            mosaic[i * (h + gap) : i * (h + gap) + h, j * (w + gap) : j * (w + gap) + w] = tiles[
                i, j
            ]
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(13, 6), width_ratios=(1, 1.15))
    v = m["values"]
    norm = LogNorm() if m["colour"] == "compliance" and np.all(v > 0) else None
    sc = ax.scatter(m["xy"][:, 0], m["xy"][:, 1], c=v, s=16, cmap="viridis", norm=norm)
    fig.colorbar(sc, ax=ax, label=m["colour"], fraction=0.046)
    lim = m["ticks"][-1]
    ax.add_patch(plt.Rectangle((-lim, -lim), 2 * lim, 2 * lim, fill=False, ls="--", lw=0.8))
    title = f"{len(m['xy'])} {m['split']} designs, encoded ({m['projection']} plane)"
    ax.set(xlabel=m["axes"][0], ylabel=m["axes"][1], title=title)
    ax.set_aspect("equal", adjustable="datalim")
    bx.imshow(1 - mosaic, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ce = m["tile_scores"]["ce"]
    for i in range(grid):
        for j in range(grid):
            bx.text(j * (w + gap) + w / 2, i * (h + gap) + h - 0.5, f"{100 * ce[i, j]:+.1f}%",
                    ha="center", va="bottom", fontsize=7, color="tab:red")  # fmt: skip
    centres = [k * (w + gap) + w / 2 for k in range(grid)]
    bx.set_xticks(centres, [f"{t:+.1f}" for t in m["ticks"]], fontsize=7)
    bx.set_yticks([k * (h + gap) + h / 2 for k in range(grid)],
                  [f"{t:+.1f}" for t in m["ticks"][::-1]], fontsize=7)  # fmt: skip
    title = f"decoded over the dashed box, problem of sample #{m['sample_index']} (CE)"
    bx.set(xlabel=m["axes"][0], ylabel=m["axes"][1], title=title)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    out = None
    if m["outliers"]:
        out = path.with_name(f"{path.stem}_outliers{path.suffix}")
        items = [(d, p, f"#{k}: |u| = {r:.2f}") for k, r, d, p in m["outliers"]]
        save_design_grid(items, out)
    return path, out


def responsive_dims(model, problem: Problem | None, n: int = 2, device=None) -> tuple[int, ...]:
    """The ``n`` latent dimensions along which the prior-mean design changes most (mean
    |design(u = +e_d) - design(u = -e_d)|), most responsive first."""
    dec = LatentDecoder(model, problem, device)
    d = model.config.latent_dim
    u = torch.cat([torch.eye(d), -torch.eye(d)])
    x = dec.numpy(u, project=problem is not None)
    change = np.abs(x[:d] - x[d:]).mean(axis=(1, 2))
    return tuple(int(k) for k in np.argsort(-change, kind="stable")[:n])


# -- condition sweeps: one latent vector under a range of conditions --------------------------
def with_load_angle(problem: Problem, degrees: float) -> Problem:
    """The problem with every load turned to the direction ``degrees`` (0 = +x, -90 = down, as
    in the dataset distributions), each node's force magnitude kept."""
    if check_problem(problem).loads.shape[0] != 1:
        raise WorkflowError("a load-angle sweep needs a problem with one load case")
    if (
        isinstance(degrees, bool)
        or not isinstance(degrees, numbers.Real)
        or not np.isfinite(degrees)
    ):
        raise WorkflowError(f"degrees must be a finite number, got {degrees!r}")
    magnitude = np.hypot(problem.loads[0, 0], problem.loads[0, 1])
    t = np.radians(degrees)
    return problem.replace(loads=np.stack([magnitude * np.cos(t), magnitude * np.sin(t)])[None])


def parse_range(text: str, what: str, within: tuple[float, float] | None = None) -> np.ndarray:
    """ "0.3:0.6:7" -> linspace(0.3, 0.6, 7); "0.4" -> [0.4]. Values must be finite and, with
    ``within`` = (lo, hi), inside the open interval (lo, hi)."""
    parts = text.split(":")
    values = None
    try:
        if len(parts) == 1:
            values = np.array([float(parts[0])])
        elif len(parts) == 3 and 2 <= int(parts[2]) <= 64:
            values = np.array([float(parts[0]), float(parts[1])])
    except ValueError:
        pass
    if values is None or not np.isfinite(values).all():
        raise WorkflowError(
            f"{what} {text!r}: give START:STOP:N (finite numbers, N in 2..64) or one number"
        )
    if within is not None and not ((values > within[0]) & (values < within[1])).all():
        raise WorkflowError(f"{what} {text!r}: values must lie in ({within[0]:g}, {within[1]:g})")
    return values if len(parts) == 1 else np.linspace(values[0], values[1], int(parts[2]))


def condition_sweep(
    model,
    problem: Problem,
    volfracs=None,
    angles=None,
    u: np.ndarray | None = None,
    device=None,
) -> tuple[np.ndarray, list[Problem], list[str]]:
    """The same whitened latent vector ``u`` (default 0, each condition's prior mean) decoded
    under the problem with each volume fraction of ``volfracs`` (rows) and each load direction
    of ``angles`` in degrees (columns); either may be None (kept). Designs are projected onto
    each volume fraction. Returns (designs (R*C, H, W), their problems, labels)."""
    if not check_model(model).config.conditional:
        raise WorkflowError("a condition sweep needs a cvae (this model takes no condition)")
    check_problem(problem)
    for name, v in (("volfracs", volfracs), ("angles", angles)):
        if v is not None:
            a = real_array(v, name, WorkflowError)
            if a.ndim != 1 or not np.isfinite(a).all():
                raise WorkflowError(f"{name} must be a 1D sequence of finite numbers, got {v!r}")
    vfs = [problem.volfrac] if volfracs is None else [float(v) for v in volfracs]
    degs = [None] if angles is None else [float(a) for a in angles]
    check_count(len(vfs) * len(degs), "the sweep's designs (volume fractions x angles)")
    for v in vfs:
        if not 0 < v < 1:
            raise WorkflowError(f"volume fractions must be in (0, 1), got {v}")
    degs = [None] if angles is None else [float(a) for a in angles]
    d = model.config.latent_dim
    u = np.zeros(d, np.float32) if u is None else np.asarray(u, np.float32)
    if u.shape != (d,):
        raise WorkflowError(f"u must have {d} coordinates, got shape {u.shape}")
    designs, problems, labels = [], [], []
    for v in vfs:
        for a in degs:
            p = problem.replace(volfrac=v)
            if a is not None:
                p = with_load_angle(p, a)
            designs.append(
                LatentDecoder(model, p, device).numpy(torch.from_numpy(u[None]), True)[0]
            )
            problems.append(p)
            labels.append(f"VF={v:.2f}" + ("" if a is None else f" {a:+.0f}°"))
    return np.stack(designs), problems, labels
