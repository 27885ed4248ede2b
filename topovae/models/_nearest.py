"""The nearest training design: the conditional yardstick every learned model must beat.

    from topovae.models import NearestDesign
    nearest = NearestDesign.fit(train_split)        # a TopologyDataset made with fields=True
    designs = nearest.designs(condition, k=8)       # (k, H, W): the k nearest training designs

It learns nothing: for a problem's condition images it returns the training designs whose
conditions are nearest, nearest first; the alternatives of one training problem share its
condition, so they come together. A model that does not beat it on held-out problems has
memorised, not generalised. `workflows.evaluate("nearest", data)` (and ``topovae evaluate
nearest DATA``) judges it like a trained model.

Nearest by what: the Euclidean distance over the volume fraction and the full-material fields
(strain energy and von Mises stress of the solid design under the problem's loads), each
channel divided by its root mean square over the training set. The fields say where the load
paths run; the raw load and support images do not (two loads one element apart are as far
apart as two at opposite ends). On 80 held-out problems of a 32x32 alternatives file
(`benchmarks/bench_nearest.py`), the nearest design's median compliance error was 38 % this way
(best of 16: 9.3 %), 58 times the SIMP compliance over the standardised condition images and
9e7 times over the raw ones.
"""

from __future__ import annotations

import numpy as np
import torch

from ._config import ConfigError

CHANNELS = ("volfrac", "strain_energy", "von_mises")  # what "nearest" measures (see above)


class NearestDesign:
    """Training features (N, C, H, W) and designs (N, H, W); ``channels`` picks the condition
    channels (by position) that the distance uses, ``standardise`` divides each by its RMS.
    See the module docstring."""

    def __init__(
        self, conditions: torch.Tensor, designs: torch.Tensor, channels=None, standardise=True
    ) -> None:
        conditions = torch.as_tensor(conditions, dtype=torch.float32)
        designs = torch.as_tensor(designs, dtype=torch.float32)
        if conditions.ndim != 4 or designs.ndim != 3 or len(conditions) != len(designs):
            raise ConfigError(
                "NearestDesign takes conditions (N, C, H, W) and designs (N, H, W), got "
                f"{tuple(conditions.shape)} and {tuple(designs.shape)}"
            )
        if len(designs) == 0:
            raise ConfigError("NearestDesign needs at least one training design")
        self.channels = list(range(conditions.shape[1]) if channels is None else channels)
        features = conditions[:, self.channels]
        self.scale = features.pow(2).mean((0, 2, 3)).sqrt().clamp_min(1e-12)
        if not standardise:  # raw units (benchmarks/bench_nearest.py's comparison)
            self.scale = torch.ones_like(self.scale)
        self.features = (features / self.scale[None, :, None, None]).flatten(1)
        self._sq = (self.features**2).sum(1)
        self.training_designs = designs
        self.in_channels = conditions.shape[1]

    @classmethod
    def fit(cls, dataset, channels=CHANNELS) -> NearestDesign:
        """From a `TopologyDataset` split: its conditions (``channels`` by name, from
        ``dataset.condition_channels``; the default needs ``fields=True``) and designs."""
        missing = [c for c in channels if c not in dataset.condition_channels]
        if missing:
            raise ConfigError(
                f"the dataset has no {', '.join(missing)} channel (it has "
                f"{', '.join(dataset.condition_channels)}); open it with fields=True"
            )
        items = [dataset[i] for i in range(len(dataset))]
        if not items:
            raise ConfigError("NearestDesign needs at least one training design")
        conditions = torch.stack([it["condition"] for it in items])
        designs = torch.stack([it["density"][0] for it in items])
        where = [dataset.condition_channels.index(c) for c in channels]
        return cls(conditions, designs, where)

    def nearest(self, condition: torch.Tensor, k: int) -> np.ndarray:
        """Indices of the ``k`` training designs nearest to ``condition`` (C, H, W, in the
        training conditions' layout), nearest first (ties in training order)."""
        c = torch.as_tensor(condition, dtype=torch.float32)
        if c.ndim != 3 or c.shape[0] != self.in_channels:
            raise ConfigError(
                f"the condition must be ({self.in_channels}, H, W) like the training "
                f"conditions, got {tuple(c.shape)}"
            )
        q = (c[self.channels] / self.scale[:, None, None]).flatten()
        if q.numel() != self.features.shape[1]:
            raise ConfigError("the condition's grid differs from the training conditions'")
        d2 = self._sq - 2 * self.features @ q + (q**2).sum()
        order = np.argsort(d2.numpy(), kind="stable")
        return order[: min(int(k), len(order))]

    def designs(self, condition: torch.Tensor, k: int) -> np.ndarray:
        """The ``k`` nearest training designs (k, H, W), float64 in [0, 1]."""
        return self.training_designs[self.nearest(condition, k)].double().numpy()
