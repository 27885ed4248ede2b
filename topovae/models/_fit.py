"""`fit_early_stopped`: the fit of a prior after training (the prior mixture, a vqvae's code
prior), by Adam on random batches, keeping the parameters of the best validation loss: the
training problems are few hundred, and these fits overfit them within a few hundred steps."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


def fit_early_stopped(
    module: nn.Module, batch_loss: Callable[[torch.Tensor], torch.Tensor],
    val_loss: Callable[[], torch.Tensor], n: int, generator: torch.Generator, *, steps: int,
    lr: float, weight_decay: float, batch_size: int, every: int,
) -> tuple[float, int]:  # fmt: skip
    """Fit ``module``'s parameters by Adam on ``batch_loss(indices)`` of random batches of the
    ``n`` training items (drawn from ``generator``), checking ``val_loss()`` every ``every``
    steps and at the end, and leave the parameters of the lowest one in ``module`` (the start
    counts as step 0). The parameters take gradients only during the fit. Returns (the lowest
    validation loss, its step)."""

    def value() -> float:
        with torch.no_grad():
            return float(val_loss())

    module.requires_grad_(True)
    opt = torch.optim.Adam(module.parameters(), lr=lr, weight_decay=weight_decay)
    best = (value(), 0, {k: v.clone() for k, v in module.state_dict().items()})
    for step in range(1, steps + 1):
        pick = torch.randint(n, (min(batch_size, n),), generator=generator)
        loss = batch_loss(pick)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % every == 0 or step == steps:
            v = value()
            if v < best[0]:
                best = (v, step, {k: t.clone() for k, t in module.state_dict().items()})
    module.load_state_dict(best[2])
    module.requires_grad_(False)
    return best[0], best[1]
