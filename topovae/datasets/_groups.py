"""What a file with several designs per problem holds: the groups' sizes, spread and cost.

    from topovae.datasets import alternatives_summary
    alternatives_summary("alt.h5")   # {"problems": 800, "designs": 3410, "distinct_5_median": 4,
                                     #  "pairwise_median": 0.27, "seconds_per_problem": 3.1, ...}

The rows of one problem share its index; within a group the designs are mutually distinct
(1 - IoU of the binarised solids >= 0.15, `topovae.solvers.DISTINCT`) by construction, so the
count within 5 % of the group's stiffest design is a count of distinct near-optimal designs.
"""

from __future__ import annotations

import os

import h5py
import numpy as np

from ..solvers import pairwise_distances
from ..solvers._alternatives import binarized
from ._store import read_header, read_rows


def alternatives_summary(path: str | os.PathLike) -> dict[str, float]:
    """Per-problem figures of a dataset file (module docstring); a file of one design per
    problem gives groups of one."""
    header = read_header(path)
    with h5py.File(path, "r") as f:
        index = read_rows(f, "index")
        compliance = read_rows(f, "result/compliance")
        seconds = read_rows(f, "result/seconds")
        starts = np.flatnonzero(np.r_[True, index[1:] != index[:-1]])
        ends = np.r_[starts[1:], len(index)]
        count, within5, within10, pair, cost = [], [], [], [], []
        has_passive = "problem/passive_solid" in f
        for a, b in zip(starts, ends, strict=True):
            c = compliance[a:b]
            count.append(b - a)
            within5.append(int((c <= 1.05 * c.min()).sum()))
            within10.append(int((c <= 1.10 * c.min()).sum()))
            cost.append(float(seconds[a:b].sum()))
            if b - a > 1:
                d = read_rows(f, "density", slice(a, b))
                vf = float(read_rows(f, "problem/volfrac", a))
                shape = d.shape[1:]
                solid = read_rows(f, "problem/passive_solid", a) if has_passive else None
                void = read_rows(f, "problem/passive_void", a) if has_passive else None
                if solid is None:
                    solid = void = np.zeros(shape, bool)
                solids = np.stack([binarized(x, vf, solid, void) for x in d])
                dist = pairwise_distances(solids)
                pair.append(float(dist[np.triu_indices(b - a, 1)].mean()))
    count = np.asarray(count)
    return {
        "problems": len(count),
        "designs": int(count.sum()),
        "alternatives": header["alternatives"],
        "per_problem": np.bincount(count).tolist(),
        "designs_median": float(np.median(count)),
        "distinct_5_median": float(np.median(within5)),
        "distinct_10_median": float(np.median(within10)),
        "pairwise_median": float(np.median(pair)) if pair else 0.0,
        "seconds_per_problem": float(np.mean(cost)),
    }
