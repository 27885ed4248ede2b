"""The volume projection's cost and agreement: `models.project_volume` (bracketed Newton)
against the 60-step bisection it replaced, on the designs the workflows project.

    PYTHONPATH=. python benchmarks/bench_project_volume.py [--model out/demo/model/best.pt]

Logits: random fields (smooth and rough, float32 and float64) and, with ``--model``, the
decoded prior samples of a trained model for 16 held-out-like problems (MBB and cantilevers at
the model's size). Prints per case: milliseconds per call of each (median of ``--repeat``
calls, in one process, the bisection timed right beside), the ratio, the Newton iterations,
and the largest difference of the projected densities and of the volume error.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from topovae.models import _losses
from topovae.models._losses import project_volume


def bisection(logits, free, target):
    """The projection before: 60 bisection steps on the shift, then the same Newton step."""
    free = free.to(logits.dtype)
    count = free.sum((-2, -1))
    target = torch.as_tensor(target, dtype=logits.dtype)

    def mean_free(s):
        return (torch.sigmoid(logits + s[:, None, None]) * free).sum((1, 2)) / count

    with torch.no_grad():
        lo = torch.full(logits.shape[:1], -40.0, dtype=logits.dtype)
        hi = -lo
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            below = mean_free(mid) < target
            lo, hi = torch.where(below, mid, lo), torch.where(below, hi, mid)
        s0 = 0.5 * (lo + hi)
    sig = torch.sigmoid(logits + s0[:, None, None])
    residual = (sig * free).sum((1, 2)) / count - target
    slope = (sig * (1 - sig) * free).sum((1, 2)) / count
    return logits + (s0 - residual / slope.clamp_min(1e-12))[:, None, None]


def iterations(logits, free, target) -> int:
    """Newton iterations `project_volume` takes (counted through its sigmoid calls)."""
    calls = 0
    real = torch.sigmoid

    def counting(x):
        nonlocal calls
        calls += 1
        return real(x)

    _losses.torch.sigmoid = counting
    try:
        project_volume(logits, free, target)
    finally:
        _losses.torch.sigmoid = real
    return calls - 1  # the final differentiable step


def timed(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1e3 * float(np.median(times))


def cases(model_path: str | None, seed: int):
    g = torch.Generator().manual_seed(seed)
    free = torch.ones(32, 32, dtype=torch.bool)
    target = torch.linspace(0.2, 0.6, 16)
    rough = 4 * torch.randn(16, 32, 32, generator=g)
    smooth = torch.nn.functional.avg_pool2d(rough[:, None], 7, 1, 3)[:, 0] * 8
    yield "random rough, float32", rough, free, target
    yield "random smooth, float32", smooth, free, target
    yield "random smooth x5 (crisp), float32", 5 * smooth, free, target
    yield "random smooth x5 (crisp), float64", 5 * smooth.double(), free, target.double()
    yield "saturated (logits x50), float32", 50 * smooth, free, target
    yield "one design, float32", rough[:1], free, target[:1]
    if model_path:
        from topovae.models import load
        from topovae.solvers import preset
        from topovae.workflows._latent import LatentDecoder

        model = load(model_path)
        h, w = model.config.height, model.config.width
        for name in ("mbb", "cantilever"):
            problem = preset(name, w, h, 0.4)
            dec = LatentDecoder(model, problem)
            u = torch.randn(16, model.config.latent_dim, generator=g)
            with torch.no_grad():
                logits = dec.logits(u)
            mask = torch.from_numpy(~(problem.passive_solid | problem.passive_void))
            yield f"{model_path}: {name} prior samples", logits, mask, torch.tensor(0.4)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", help="a trained checkpoint whose decoded designs to project")
    ap.add_argument("--repeat", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    torch.set_num_threads(1)
    print(f"{'case':52s} {'bisection ms':>12s} {'newton ms':>10s} {'ratio':>6s} {'iters':>5s} "
          f"{'max |d rho|':>11s} {'max |vol err|':>13s}")  # fmt: skip
    for name, logits, free, target in cases(a.model, a.seed):
        old = timed(lambda: bisection(logits, free, target), a.repeat)  # noqa: B023
        new = timed(lambda: project_volume(logits, free, target), a.repeat)  # noqa: B023
        r_old = torch.sigmoid(bisection(logits, free, target))
        r_new = torch.sigmoid(project_volume(logits, free, target))
        f = free.to(r_new.dtype)
        vol = ((r_new * f).sum((-2, -1)) / f.sum((-2, -1)) - target).abs().max()
        print(f"{name[-52:]:52s} {old:12.3f} {new:10.3f} {old / new:6.1f} "
              f"{iterations(logits, free, target):5d} {float((r_new - r_old).abs().max()):11.2e} "
              f"{float(vol):13.2e}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
