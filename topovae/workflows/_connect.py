"""Connect a decoded design's load path along the decoder's own grey members.

A decoder that is unsure of a thin member draws it grey. Binarised at the volume fraction (the
judge's `binarize`: the highest-density elements), such a member is cut, and what it held floats,
or the load loses its path to the supports. The repair works in the decoder's logits, so the
design keeps its volume fraction exactly:

1. decode and binarise; stop when every solid element is in a component that touches a loaded
   and a supported node (`load_carrying`) and every loaded node touches solid;
2. otherwise take each floating component (and each bare loaded node) and find the path to the
   load-carrying material that adds the least missing density: the shortest path on the
   element grid (4-neighbourhood, passive void excluded) where entering an element costs how
   far its density lies below the binarisation threshold. The path follows the grey member
   the decoder meant. With no load-carrying component yet, the path joins the load's side to
   the supports' side;
3. raise the path's logits just above the threshold's, project onto the volume fraction again
   and repeat (a few rounds: the raised elements push the weakest solid elements out).

The design returned is the round's with the least disconnected material (the input's when no
round improves it). No FE solve is involved; `LatentDecoder.numpy` applies it to every projected
design a workflow returns, and ``connect=False`` there gives the decoder's design as it is.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import ndimage
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import dijkstra

from ..solvers import Problem
from ..solvers._connectivity import _EDGES, _loaded_nodes, element_nodes, load_carrying
from ._judge import binarize

ROUNDS = 8
MARGIN = 2.0  # logits a path element is raised above the threshold's, so it stays solid


def _node_elements(nodes: np.ndarray) -> np.ndarray:
    """(nely+1, nelx+1) node mask -> (nely, nelx) mask of the elements around those nodes."""
    return nodes[:-1, :-1] | nodes[1:, :-1] | nodes[:-1, 1:] | nodes[1:, 1:]


class _Grid:
    """The element grid's 4-neighbour graph without passive void, weighted per entered element."""

    def __init__(self, problem: Problem) -> None:
        h, w = problem.shape
        idx = np.arange(h * w).reshape(h, w)
        a = np.concatenate([idx[:, :-1], idx[:, 1:], idx[:-1], idx[1:]], axis=None)
        b = np.concatenate([idx[:, 1:], idx[:, :-1], idx[1:], idx[:-1]], axis=None)
        open_ = ~problem.passive_void.ravel()
        keep = open_[a] & open_[b]
        self.a, self.b, self.n, self.shape = a[keep], b[keep], h * w, (h, w)

    def cheapest_path(
        self, cost: np.ndarray, src: np.ndarray, dst: np.ndarray
    ) -> np.ndarray | None:
        """The elements of the cheapest path from ``src`` to ``dst`` (masks; the path's first
        element in ``src`` included), or None when no path exists."""
        weights = cost.ravel()[self.b] + 1e-9  # > 0: csgraph drops explicit zeros
        graph = coo_matrix((weights, (self.a, self.b)), shape=(self.n, self.n)).tocsr()
        starts = np.flatnonzero(src)
        if starts.size == 0:
            return None
        dist, pred, _ = dijkstra(graph, indices=starts, min_only=True, return_predecessors=True)
        ends = np.flatnonzero(dst)
        if ends.size == 0 or not np.isfinite(dist[ends]).any():
            return None
        t = int(ends[np.argmin(dist[ends])])
        path = np.zeros(self.n, bool)
        source = src.ravel()
        while t >= 0:
            path[t] = True
            if source[t]:
                break
            t = int(pred[t])
        return path.reshape(self.shape)


def connect(
    logits: np.ndarray, problem: Problem, density: Callable[[np.ndarray], np.ndarray]
) -> np.ndarray:
    """The (H, W) design of ``logits`` with its load path connected; ``density`` maps logits to
    the projected design (volume fraction met, passive regions imposed). See the module
    docstring."""
    grid = None  # built when a first path is needed: most designs are connected already
    free = ~(problem.passive_solid | problem.passive_void)
    loaded = _node_elements(_loaded_nodes(problem))
    supported = _node_elements(problem.fixed_x | problem.fixed_y)
    lg = np.array(logits, np.float64)
    best, best_defect = None, np.inf
    for _ in range(ROUNDS + 1):
        rho = density(lg)
        solid = binarize(rho, problem).astype(bool)
        keep = load_carrying(solid, problem)
        bare = _loaded_nodes(problem) & ~element_nodes(solid)
        defect = np.count_nonzero(solid & ~keep) + np.count_nonzero(bare) + (0 if keep.any() else 1)
        if defect < best_defect:
            best, best_defect = rho, defect
        if defect == 0:
            break
        chosen = solid & free
        threshold = rho[chosen].min() if chosen.any() else 1.0
        cost = np.maximum(0.0, threshold - rho)
        raise_to = (lg[chosen].min() if chosen.any() else lg[free].max()) + MARGIN
        if keep.any():
            labels, n = ndimage.label(solid & ~keep, structure=_EDGES)
            parts = [labels == k for k in range(1, n + 1)]
            parts += [_node_elements(node) for node in _single_nodes(bare)]
            targets = [keep] * len(parts)
        else:  # no load path at all: join the loads' side to the supports' side
            labels, _ = ndimage.label(solid, structure=_EDGES)
            parts = [loaded | np.isin(labels, np.unique(labels[loaded & solid]))]
            targets = [supported | np.isin(labels, np.unique(labels[supported & solid]))]
        grid = grid or _Grid(problem)
        changed = False
        for part, target in zip(parts, targets, strict=True):
            path = grid.cheapest_path(cost, part & ~problem.passive_void, target)
            if path is not None and path.any():
                lg[path & free] = np.maximum(lg[path & free], raise_to)
                changed = True
        if not changed:
            break
    return best


def _single_nodes(nodes: np.ndarray) -> list[np.ndarray]:
    """One (nely+1, nelx+1) mask per True node of ``nodes``."""
    out = []
    for i, j in zip(*np.nonzero(nodes), strict=True):
        m = np.zeros_like(nodes)
        m[i, j] = True
        out.append(m)
    return out
