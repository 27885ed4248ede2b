"""The ELBO of a design VAE as named terms.

For a batch of designs x with posterior q(z|x, c) = N(mu, diag(exp(logvar))) and prior
p(z|c) = N(mu_p, diag(exp(logvar_p))) (mu_p = 0, logvar_p = 0: the independent prior N(0, I)):

    reconstruction = -log p(x|z, c), summed over pixels, averaged over the batch
                     bernoulli: BCE-with-logits; gaussian: 0.5 * sum((sigmoid(logits) - x)^2)
    kl             = KL(q || p) = 0.5 * sum(logvar_p - logvar
                                            + (exp(logvar) + (mu - mu_p)^2) / exp(logvar_p) - 1),
                     batch mean (both forms of the conditional ELBO: Sohn et al. 2015)
    weighted_kl    = beta * w(t) * sum_d max(KL_d, free_bits)           (w: linear KL warm-up)
                     or, with a capacity schedule, gamma * |KL - C(t)|   (Burgess et al. 2018)
    volume         = volume_weight * H * W * mean_b (mean(sigmoid(logits_b)) - vf_b)^2
                     (scaled by the pixel count to weigh like the summed reconstruction)
    compliance     = log(C(P(x_hat)) / C(x)), batch mean: the FE compliance of the decoded design
                     shifted onto the volume fraction (`project_volume`) relative to the SIMP
                     design's, through the batched differentiable FE (`physics_terms`; optional),
                     plus floating_weight * the floating material of the same designs
                     (`floating_terms`; optional)
    total          = reconstruction + weighted_kl + volume + w_c(t) * compliance
                     (w_c: compliance_weight, off before compliance_start, then a linear ramp
                     over compliance_ramp steps)

Free bits act per latent dimension on the batch-mean KL (Kingma et al. 2016).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from ..solvers._problem import check_problem
from ._config import ConfigError, VAEConfig


def _tensor(value, name: str, ndim: int | None = None) -> torch.Tensor:
    """``value`` if it is a real torch tensor (of ``ndim`` dimensions), else a clear error."""
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if value.is_complex() or value.dtype == torch.bool:
        raise ConfigError(f"{name} must be a real tensor, got {value.dtype}")
    if ndim is not None and value.ndim != ndim:
        raise ConfigError(f"{name} must have {ndim} dimensions, got shape {tuple(value.shape)}")
    return value


def _same_shape(a: torch.Tensor, b: torch.Tensor, names: str) -> None:
    if a.shape != b.shape:
        raise ConfigError(f"{names} must have one shape, got {tuple(a.shape)} and {tuple(b.shape)}")


def _config(cfg) -> VAEConfig:
    if not isinstance(cfg, VAEConfig):
        raise TypeError(f"cfg must be a VAEConfig, got {type(cfg).__name__}")
    return cfg


def _step(step) -> int:
    if isinstance(step, bool) or not isinstance(step, int | np.integer) or step < 0:
        raise ConfigError(f"step must be an integer >= 0, got {step!r}")
    return int(step)


def gaussian_kl(
    mu: torch.Tensor,
    logvar: torch.Tensor,
    prior_mu: torch.Tensor | None = None,
    prior_logvar: torch.Tensor | None = None,
) -> torch.Tensor:
    """Closed-form KL(N(mu, exp(logvar)) || N(prior_mu, exp(prior_logvar))) per sample and
    dimension, (B, D); the prior defaults to N(0, 1)."""
    _same_shape(_tensor(mu, "mu"), _tensor(logvar, "logvar"), "mu and logvar")
    if prior_mu is not None:
        _same_shape(mu, _tensor(prior_mu, "prior_mu"), "mu and prior_mu")
        _same_shape(mu, _tensor(prior_logvar, "prior_logvar"), "mu and prior_logvar")
    if prior_mu is None:
        return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)
    return 0.5 * (
        prior_logvar - logvar + (logvar.exp() + (mu - prior_mu).pow(2)) * torch.exp(-prior_logvar)
        - 1.0
    )  # fmt: skip


def kl_weight(cfg: VAEConfig, step: int) -> float:
    """beta times the linear warm-up factor at optimisation step ``step``."""
    cfg, step = _config(cfg), _step(step)
    warm = min(1.0, step / cfg.kl_warmup_steps) if cfg.kl_warmup_steps else 1.0
    return cfg.beta * warm


def loss_terms(
    cfg: VAEConfig,
    logits: torch.Tensor,
    x: torch.Tensor,
    mu: torch.Tensor,
    logvar: torch.Tensor,
    step: int = 0,
    volfrac: torch.Tensor | None = None,
    prior_mu: torch.Tensor | None = None,
    prior_logvar: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """The named terms of the module docstring (scalars) plus "kl_per_dim" (D,)."""
    cfg, step = _config(cfg), _step(step)
    _same_shape(_tensor(logits, "logits", 4), _tensor(x, "x", 4), "logits and x")
    _tensor(mu, "mu", 2)
    if mu.shape[0] != x.shape[0]:
        raise ConfigError(f"mu must have one row per design ({x.shape[0]}), got {mu.shape[0]}")
    if volfrac is not None and _tensor(volfrac, "volfrac").shape != (x.shape[0],):
        raise ConfigError(f"volfrac must have shape ({x.shape[0]},), got {tuple(volfrac.shape)}")
    b = x.shape[0]
    logits = logits.float()
    if cfg.likelihood == "bernoulli":
        rec = F.binary_cross_entropy_with_logits(logits, x, reduction="sum") / b
    else:
        rec = 0.5 * (torch.sigmoid(logits) - x).pow(2).sum() / b
    if prior_mu is not None:
        prior_mu, prior_logvar = prior_mu.float(), prior_logvar.float()
    kl_dim = gaussian_kl(mu.float(), logvar.float(), prior_mu, prior_logvar).mean(0)
    kl = kl_dim.sum()
    kl_fb = kl_dim.clamp(min=cfg.free_bits).sum() if cfg.free_bits > 0 else kl
    if cfg.capacity_max > 0:
        frac = min(1.0, step / cfg.capacity_steps) if cfg.capacity_steps else 1.0
        weighted = cfg.capacity_gamma * (kl_fb - cfg.capacity_max * frac).abs()
    else:
        weighted = kl_weight(cfg, step) * kl_fb
    volume = torch.zeros((), device=x.device)
    if cfg.volume_weight > 0 and volfrac is not None:
        decoded = torch.sigmoid(logits).mean(dim=(1, 2, 3))
        pixels = x.shape[-1] * x.shape[-2]
        volume = cfg.volume_weight * pixels * (decoded - volfrac.float()).pow(2).mean()
    return {
        "reconstruction": rec,
        "kl": kl,
        "weighted_kl": weighted,
        "volume": volume,
        "total": rec + weighted + volume,
        "kl_per_dim": kl_dim.detach(),
    }


def active_units(mu: torch.Tensor, threshold: float = 0.01) -> int:
    """Latent dimensions whose posterior mean varies across the data: Var_x[mu_d] > threshold
    (Burda et al. 2016). ``mu`` is (N, D) over a dataset."""
    _tensor(mu, "mu", 2)
    if (
        isinstance(threshold, bool)
        or not isinstance(threshold, int | float)
        or not (0 <= threshold < float("inf"))
    ):
        raise ConfigError(f"threshold must be a finite number >= 0, got {threshold!r}")
    return int((mu.float().var(dim=0) > threshold).sum())


def compliance_weight(cfg: VAEConfig, step: int) -> float:
    """The weight of the compliance term at optimisation step ``step`` (see the docstring)."""
    cfg, step = _config(cfg), _step(step)
    if cfg.compliance_weight <= 0 or step < cfg.compliance_start:
        return 0.0
    ramp = (
        min(1.0, (step - cfg.compliance_start + 1) / cfg.compliance_ramp)
        if cfg.compliance_ramp
        else 1.0
    )
    return cfg.compliance_weight * ramp


# the volume projection's shift: at most this many bracketed Newton iterations (as many as the
# bisection it replaced used), stopping once no shift s moves by more than PROJECT_TOL (1 + |s|)
# logits (the last Newton step then leaves the volume exact to far below float32's resolution)
PROJECT_ITERATIONS = 60
PROJECT_TOL = 1e-6


def project_volume(logits: torch.Tensor, free: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Logits shifted per design so that the mean of sigmoid over the ``free`` elements is
    ``target``: logits (B, H, W), free (B, H, W) or (H, W) bool, target (B,) or a scalar.

    The shift s is found by Newton's method kept inside a bracket (the mean is increasing in s;
    a step that leaves the bracket bisects it instead): 4-5 iterations on decoded and random
    designs (20 on saturated ones) where a bisection took 60
    (`benchmarks/bench_project_volume.py`). It is returned as one more Newton step from the
    root, so its value is the root and its gradient the implicit-function one."""
    _tensor(logits, "logits", 3)
    if not isinstance(free, torch.Tensor) or free.dtype != torch.bool:
        raise TypeError(f"free must be a bool tensor, got {getattr(free, 'dtype', type(free))}")
    if free.shape not in (logits.shape, logits.shape[1:]):
        raise ConfigError(
            f"free must have shape {tuple(logits.shape)} or {tuple(logits.shape[1:])}, got "
            f"{tuple(free.shape)}"
        )
    t = torch.as_tensor(target, dtype=torch.float64)
    if t.ndim > 1 or (t.ndim == 1 and t.shape[0] != logits.shape[0]):
        raise ConfigError(f"target must be a scalar or ({logits.shape[0]},), got {tuple(t.shape)}")
    if not bool(((t > 0) & (t < 1)).all()):
        raise ConfigError(f"target volume fractions must lie in (0, 1), got {t.tolist()}")
    free = free.to(logits.dtype)
    count = free.sum((-2, -1))
    target = torch.as_tensor(target, dtype=logits.dtype, device=logits.device)

    if logits.shape[0] == 0:
        return logits.clone()
    with torch.no_grad():  # in float64: in float32 the steps of crisp designs bounce at its ulp
        wide, free64 = logits.detach().double(), free.double()
        count64, target64 = count.double(), target.double()
        lo = torch.full(logits.shape[:1], -40.0, dtype=torch.float64, device=logits.device)
        hi = -lo
        s0 = torch.zeros_like(lo)
        for _ in range(PROJECT_ITERATIONS):
            sig = torch.sigmoid(wide + s0[:, None, None])
            f = (sig * free64).sum((1, 2)) / count64 - target64
            below = f < 0
            lo, hi = torch.where(below, s0, lo), torch.where(below, hi, s0)
            step = s0 - f / ((sig * (1 - sig) * free64).sum((1, 2)) / count64)
            inside = (step >= lo) & (step <= hi)  # False for NaN (a saturated design)
            step = torch.where(f == 0, s0, torch.where(inside, step, 0.5 * (lo + hi)))
            # a design with NaN logits or no free element moves by NaN: it cannot hold the
            # others back
            moved = float(torch.nan_to_num((step - s0).abs() / (1 + s0.abs()), nan=0.0).max())
            s0 = step
            if moved <= PROJECT_TOL:
                break
        s0 = s0.to(logits.dtype)
    sig = torch.sigmoid(logits + s0[:, None, None])
    residual = (sig * free).sum((1, 2)) / count - target
    slope = (sig * (1 - sig) * free).sum((1, 2)) / count
    return logits + (s0 - residual / slope.detach().clamp_min(1e-12))[:, None, None]


def physics_terms(
    logits: torch.Tensor,
    x: torch.Tensor,
    problems,
    reference: torch.Tensor | None = None,
    tol: float = 1e-10,
) -> torch.Tensor:
    """log(C(P(x_hat)) / C(x)) per design, (B,): logits (B, 1, H, W) of the decoder, x the SIMP
    designs (B, 1, H, W), ``problems`` their `Problem` values (as augmented). Both designs are
    judged as physical densities with the passive regions imposed, by one batched FE call
    (float64; CG to relative residual ``tol``); gradients reach the logits through the adjoint
    and the volume projection. ``reference``: C(x) (B,) when known (it does not change under
    the symmetry transforms, so the trainer keeps it per sample), else solved here."""
    from ..solvers.batched import compliance

    problems = list(problems) if isinstance(problems, list | tuple) else problems
    if (
        not isinstance(problems, list)
        or len(problems) != logits.shape[0]
        or x.shape != logits.shape
    ):
        raise ConfigError(
            f"physics_terms needs one Problem per design and x shaped like the logits; got "
            f"{len(problems) if isinstance(problems, list) else type(problems).__name__} "
            f"problems, logits {tuple(logits.shape)} and x {tuple(x.shape)}"
        )
    for k, p in enumerate(problems):
        check_problem(p, f"problems[{k}]")

    rho = judged_density(logits, problems)
    if reference is None:
        reference = simp_compliance(x, problems, tol)
    c = compliance(rho, problems, physical=False, tol=tol)
    return torch.log(c / reference.to(c))


def judged_density(logits: torch.Tensor, problems) -> torch.Tensor:
    """(B, H, W) float64: the decoder's designs as the physics term judges them, logits
    (B, 1, H, W) shifted onto each problem's volume fraction (`project_volume`), passive
    regions imposed."""
    solid, void = _passive(problems, logits.device)
    free = ~(solid | void)
    n = solid[0].numel()
    vf = torch.tensor([p.volfrac for p in problems], dtype=torch.float64, device=logits.device)
    target = (vf * n - solid.sum((1, 2))) / free.sum((1, 2)).clamp_min(1)
    rho = torch.sigmoid(project_volume(logits[:, 0].double(), free, target))
    return torch.where(solid, 1.0, torch.where(void, 0.0, rho))


def floating_terms(logits: torch.Tensor, problems) -> torch.Tensor:
    """(B,) per design: the sum of its soft densities (`judged_density`) over the elements that
    float in its binarisation (`solvers.solid`: solid, but outside every component that touches
    both a loaded and a supported node, the judge's floating material), over the binarised
    solid's size. 0 for a design whose solid all carries load; its gradient lowers exactly the
    densities the judge counts as floating (the volume projection hands their material to the
    rest). Differentiable in the logits; the binarisation itself is a constant."""
    from ..solvers import solid as binarise
    from ..solvers._connectivity import load_carrying

    rho = judged_density(logits, problems)
    out = []
    for r, p in zip(rho, problems, strict=True):
        hard = binarise(r.detach().cpu().numpy(), p)
        floating = torch.as_tensor(hard & ~load_carrying(hard, p), device=r.device)
        out.append((r * floating).sum() / max(int(hard.sum()), 1))
    return torch.stack(out)


def physics_hinge(terms: torch.Tensor, tolerance: float) -> torch.Tensor:
    """max(0, terms - log(1 + tolerance)): `physics_terms` of designs within ``tolerance`` of
    their SIMP design's compliance count zero (`VAEConfig.compliance_tolerance`)."""
    return (terms - math.log1p(tolerance)).clamp_min(0.0) if tolerance > 0 else terms


def _passive(problems, device) -> tuple[torch.Tensor, torch.Tensor]:
    """The problems' passive solid and void masks, (B, H, W) bool each."""
    solid = torch.as_tensor(np.stack([p.passive_solid for p in problems]), device=device)
    void = torch.as_tensor(np.stack([p.passive_void for p in problems]), device=device)
    return solid, void


@torch.no_grad()
def simp_compliance(x: torch.Tensor, problems, tol: float = 1e-10) -> torch.Tensor:
    """C(x) (B,) float64 of SIMP designs x (B, 1, H, W) on their problems, passive regions
    imposed: the physics term's reference (a constant: no gradient)."""
    from ..solvers.batched import compliance

    solid, void = _passive(problems, x.device)
    ref = torch.where(solid, 1.0, torch.where(void, 0.0, x[:, 0].double()))
    return compliance(ref, list(problems), physical=False, tol=tol)
