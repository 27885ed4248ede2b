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


def design_batches(dataset, device, symmetries: bool = True, batch: int = 256):
    """(designs, conditions) of ``dataset`` in batches on ``device``, each batch also under
    every flip and quarter turn of the grid (`datasets.symmetric_copies`) with ``symmetries``
    when the dataset names its condition channels: what a prior fitted after training sees."""
    from ..datasets import symmetric_copies

    channels = getattr(dataset, "condition_channels", None) if symmetries else None
    for start in range(0, len(dataset), batch):
        items = [dataset[i] for i in range(start, min(start + batch, len(dataset)))]
        x = torch.stack([it["density"] for it in items]).to(device)
        c = torch.stack([it["condition"] for it in items]).to(device)
        yield from symmetric_copies(x, c, channels)
