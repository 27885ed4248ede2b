"""A trained model bound to a problem: latent vectors in, designs out.

    dec = LatentDecoder(model, problem)          # checks sizes and conditioning once
    rho = dec.designs(u, project=True)           # (B, H, W) torch, differentiable in u

Latent vectors here are *whitened*: z = mu(c) + sigma(c) u with p(z | c) = N(mu(c), sigma(c)^2)
the model's prior for the problem (the identity for an independent prior N(0, I)). So u ~ N(0, I)
is a prior sample, u = 0 the prior mean, and a box |u_i| <= 3 holds 99.7 % of the prior per axis,
for every problem, whatever the model's prior.

``project`` shifts each design's logits by one scalar so that the design meets the problem's
volume fraction exactly (the shift is a bracketed Newton solve's root; its gradient is the
implicit one, so gradients through the projection are exact). Passive regions are imposed on
every design.
`numpy` with ``project`` (the designs workflows return and judge) also connects each design's
load path along its grey members (`_connect`), unless the decoder was made with
``connect=False``; `designs` (differentiable) does not.
"""

from __future__ import annotations

import numpy as np
import torch

from .._checks import MAX_DESIGNS, real_array
from ..datasets._torch import BASE_CHANNELS, problem_condition
from ..models._config import check_model
from ..models._losses import project_volume
from ..models._vae import drop_condition
from ..solvers import Problem
from ..solvers._problem import check_problem
from ._connect import connect

GUIDE_LR = 1.0  # Adam's step on u
GUIDE_PULL = 0.01  # 0.5 * pull * |u|^2 keeps a guided vector near the prior mean
GUIDE_STIFFNESS = 1.0  # weight of log(C / C_0): the design must not lose stiffness
# steps of guidance on a model's first design by default (`evaluate`): on two demo models 100
# steps connected every floating first design (bench_guidance.py, 11 and 12 of 80 moved); one
# that does not float is left as it is
GUIDE_STEPS = 100


def guide_away_from_floating(logits_of, problem: Problem, u: torch.Tensor, steps: int, *,
                             lr: float = GUIDE_LR, pull: float = GUIDE_PULL,
                             stiffness: float = GUIDE_STIFFNESS) -> torch.Tensor:  # fmt: skip
    """Floating-material guidance at sampling time (TopoDiff guides its diffusion so): from the
    whitened vector ``u`` (1, D), at most ``steps`` Adam steps on u against
    `models.floating_terms` of the decoded, volume-projected design, plus
    GUIDE_STIFFNESS x log(C / C_0) (its FE compliance against the unguided design's: without it
    a guided design may buy connectivity with stiffness) and 0.5 GUIDE_PULL |u|^2, stopping as
    soon as nothing floats (``lr``, ``pull`` and ``stiffness`` replace the three constants);
    a design that does not float comes back unmoved. ``logits_of``
    maps (1, D) to logits (1, H, W), differentiably. Measured (`benchmarks/bench_guidance.py`,
    two demo models, 80 held-out problems, 100 steps): decoder-alone floating 13.75 / 15.0 % ->
    0 %, first CE 3.81 -> 3.18 % and 3.89 -> 3.38 %, pass 95.0 -> 97.5 %."""
    from ..models._losses import floating_terms, judged_density
    from ..solvers.batched import compliance

    u = u.detach().clone().requires_grad_(True)
    opt = torch.optim.Adam([u], lr=lr)
    c0 = None
    for _ in range(steps):
        logits = logits_of(u)[:, None]
        term = floating_terms(logits, [problem]).sum()
        if float(term.detach()) == 0.0:
            break
        loss = term + 0.5 * pull * u.pow(2).sum()
        if stiffness > 0:
            c = compliance(judged_density(logits, [problem]), [problem], physical=False).sum()
            c0 = float(c.detach()) if c0 is None else c0
            loss = loss + stiffness * torch.log(c / c0)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return u.detach()


class WorkflowError(ValueError):
    """Input a workflow cannot use: its message names the bad value and what is allowed."""


def check_seed(seed) -> int:
    """Seeds are integers in [0, 2^63) everywhere in topovae (numpy refuses negative ones, torch's
    generators and the dataset files take 64-bit integers)."""
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or not 0 <= seed < 2**63:
        raise WorkflowError(f"--seed must be an integer in [0, 2^63), got {seed!r}")
    return int(seed)


def check_temperature(value) -> float:
    """``value`` if it is a sampling temperature in (0, 10] (prior samples u ~ N(0, T^2 I)),
    else one WorkflowError."""
    ok = not isinstance(value, bool) and isinstance(value, int | float)
    if not (ok and 0 < value <= 10):
        raise WorkflowError(f"--temperature must be a number in (0, 10], got {value!r}")
    return float(value)


def _device(device: str | torch.device | None) -> torch.device:
    from ..solvers.batched import resolve_device

    return resolve_device("auto" if device is None else device)


def check_count(value, flag: str, low: int = 1, high: int | None = MAX_DESIGNS) -> int:
    """An integer in ``low``..``high`` (not a bool; ``high`` None: no upper bound), or a
    WorkflowError naming the option."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        ok = False
    else:
        ok = value >= low and (high is None or value <= high)
    if not ok:
        allowed = f">= {low}" if high is None else f"in {low}..{high}"
        raise WorkflowError(f"{flag} must be an integer {allowed}, got {value!r}")
    return int(value)


def condition_of(model, problem: Problem) -> torch.Tensor:
    """The (Cc, H, W) condition images of ``problem`` for ``model``, or a clear error."""
    check_model(model)
    check_problem(problem)
    cfg = model.config
    if problem.shape != (cfg.height, cfg.width):
        raise WorkflowError(
            f"the model makes {cfg.width}x{cfg.height} designs; problem {problem.name!r} is "
            f"{problem.nelx}x{problem.nely}"
        )
    if problem.ncases != 1:
        raise WorkflowError(
            f"the model conditions on one load case; problem {problem.name!r} has {problem.ncases}"
        )
    extra = cfg.cond_channels - len(BASE_CHANNELS)
    if cfg.conditional and extra not in (0, 2):
        raise WorkflowError(
            f"the model expects {cfg.cond_channels} condition channels; topovae makes "
            f"{len(BASE_CHANNELS)} (or {len(BASE_CHANNELS) + 2} with physical fields)"
        )
    return torch.from_numpy(problem_condition(problem, fields=cfg.conditional and extra > 0))


def check_drop(model, drop) -> tuple[str, ...]:
    """Condition groups to leave out (a partial condition), checked against the model."""
    from ..models import CONDITION_GROUPS

    if isinstance(drop, str):
        drop = tuple(g.strip() for g in drop.split(",") if g.strip())
    drop = tuple(drop)
    for g in drop:
        if g not in CONDITION_GROUPS:
            raise WorkflowError(
                f"unknown condition group {g!r} to leave out; choose from: "
                f"{', '.join(CONDITION_GROUPS)}"
            )
    if drop and not model.config.partial:
        raise WorkflowError(
            "this model was trained on full conditions only: leaving out "
            f"{', '.join(drop)} needs a model trained with condition dropout"
        )
    return drop


class Placement:
    """Logits (B, H, W) -> densities on ``problem``: shifted onto its volume fraction
    (``project``; `project_volume` over the design elements), its passive regions set."""

    def __init__(self, problem: Problem, device=None) -> None:
        self.solid = torch.tensor(problem.passive_solid, device=device)
        self.void = torch.tensor(problem.passive_void, device=device)
        self.free = ~(self.solid | self.void)
        n = problem.nelx * problem.nely
        # the design elements' mean density that gives volume fraction VF*
        self.target = (problem.volfrac * n - float(self.solid.sum())) / float(self.free.sum())

    def __call__(self, logits: torch.Tensor, project: bool = True) -> torch.Tensor:
        if project:
            logits = project_volume(logits, self.free, self.target)
        rho = torch.sigmoid(logits)
        rho = torch.where(self.solid, torch.ones_like(rho), rho)
        return torch.where(self.void, torch.zeros_like(rho), rho)

    def densities(self, rho: np.ndarray) -> np.ndarray:
        """Densities (B, H, W) of other problems (e.g. training designs) placed on this one."""
        r = torch.from_numpy(np.asarray(rho, np.float64))
        return self(torch.logit(r, eps=1e-4)).numpy()


class LatentDecoder:
    """See the module docstring. ``problem`` may be None for an unconditional model (no
    projection and no passive regions then), and for a CVAE whose every call passes its
    conditions (``explicit_conditions``). ``drop``: condition groups to leave out of the
    problem's condition ("volfrac", "loads", "supports"), for a model trained with condition
    dropout; the designs are still projected onto the problem and judged on it."""

    def __init__(
        self,
        model,
        problem: Problem | None = None,
        device=None,
        explicit_conditions=False,
        connect: bool = True,
        drop: tuple[str, ...] = (),
    ) -> None:
        check_model(model)
        if problem is not None:
            check_problem(problem)
        self.device = _device(device)
        self.model = model.to(self.device).eval()
        self.problem = problem
        self.latent_dim = model.config.latent_dim
        self.connect = bool(connect)
        cfg = model.config
        drop = check_drop(model, drop)
        self.condition = None
        if problem is not None:
            c = condition_of(model, problem)  # also checks the size
            if cfg.conditional:
                self.condition = c.to(self.device)
                if drop:
                    self.condition = drop_condition(self.condition, drop)
            self._placement = Placement(problem, self.device)
        elif cfg.conditional and not explicit_conditions:
            raise WorkflowError(
                "this model is a cvae: give a problem to condition it on (--problem, "
                "--problem-file or --data with --index)"
            )

    def _c(self, n: int, c: torch.Tensor | None) -> torch.Tensor | None:
        if not self.model.config.conditional:
            return None
        c = self.condition if c is None else c.to(self.device)
        return c.expand(n, *c.shape[-3:]) if c.dim() == 3 else c

    def prior_draws(self, eps: torch.Tensor, generator=None) -> torch.Tensor:
        """Whitened prior samples of this problem from standard normal ``eps`` (n, D): ``eps``,
        or draws of the model's fitted prior mixture (`DesignVAE.prior_draws`)."""
        c = self._c(1, None)
        return self.model.prior_draws(eps, None if c is None else c[:1], generator)

    def logits(self, u: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """Whitened latent vectors (B, D) -> logits (B, H, W)."""
        u = self._tensor(u, "latent vectors", (self.latent_dim,))
        return self.model.decode_whitened(u, self._c(u.shape[0], c))[:, 0]

    def guided(self, u: torch.Tensor, steps: int, c: torch.Tensor | None = None) -> torch.Tensor:
        """Each whitened vector of ``u`` (B, D) guided away from floating material
        (`guide_away_from_floating`, at most ``steps`` steps; 0: ``u`` as it is)."""
        u = self._tensor(u, "latent vectors", (self.latent_dim,))
        if steps <= 0 or self.problem is None:
            return u
        rows = [guide_away_from_floating(lambda v: self.logits(v, c), self.problem, u[k:k + 1],
                                         steps) for k in range(u.shape[0])]  # fmt: skip
        return torch.cat(rows)

    def encode(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """Whitened posterior means of designs (B, H, W) (under ``c`` or this problem's
        condition)."""
        x = self._tensor(x, "designs", (self.model.config.height, self.model.config.width))
        if x.numel() and not bool(((x >= 0) & (x <= 1)).all()):
            raise WorkflowError("designs must be densities in [0, 1]")
        c = self._c(x.shape[0], c)
        with torch.no_grad():
            feats = self.model.condition_features(c)
            mu, _ = self.model.encode(x[:, None], c, feats)
            return self.model.whiten(mu, c, feats)

    def designs(
        self, z: torch.Tensor, project: bool = False, c: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Whitened (B, latent_dim) -> densities (B, H, W) in [0, 1] (float64 with a problem)."""
        logits = self.logits(z, c)
        if self.problem is None:
            return torch.sigmoid(logits)
        return self._placement(logits.double(), project)

    def _tensor(self, value, name: str, trailing: tuple[int, ...]) -> torch.Tensor:
        """``value`` as a float32 tensor on the device, (B, *trailing) and finite, or a
        WorkflowError naming it (a grad-tracking tensor keeps its graph)."""
        if not isinstance(value, torch.Tensor):
            value = torch.as_tensor(real_array(value, name, WorkflowError))
        if value.is_complex() or value.dtype == torch.bool:
            raise WorkflowError(f"{name} must be real numbers, got {value.dtype}")
        if value.ndim != 1 + len(trailing) or tuple(value.shape[1:]) != trailing:
            want = ", ".join(["B", *map(str, trailing)])
            raise WorkflowError(f"{name} must have shape ({want}), got {tuple(value.shape)}")
        if not torch.isfinite(value.detach()).all():
            raise WorkflowError(f"{name} must be finite")
        return value.to(self.device, torch.float32)

    def numpy(self, z, project: bool = False, c=None) -> np.ndarray:
        """`designs` as numpy; projected designs with their load paths connected (see the
        module docstring)."""
        with torch.no_grad():
            if not (project and self.connect and self.problem is not None):
                return self.designs(z, project, c).double().cpu().numpy()
            logits = self.logits(z, c).double().cpu().numpy()
        return self.connected(logits)

    def connected(self, logits: np.ndarray) -> np.ndarray:
        """Logits (B, H, W) -> projected designs with connected load paths (numpy)."""

        def density(lg: np.ndarray) -> np.ndarray:
            t = torch.from_numpy(lg[None]).to(self.device)
            with torch.no_grad():
                return self._placement(t, True)[0].cpu().numpy()

        return np.stack([connect(lg, self.problem, density) for lg in logits])
