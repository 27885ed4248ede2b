"""Which material carries load: connected components of a design on the element grid.

Two elements are connected when they share an edge (4-neighbourhood). Elements that share only
a corner node form a hinge: the part beyond it can rotate freely (a mechanism that only the void's
tiny stiffness resists), so corner contacts do not count as connections. A component
*carries load* when it touches a loaded node and a supported node; solid outside every such
component is floating material, and a loaded node that touches no solid element is a load the
design disrespects.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

_EDGES = ndimage.generate_binary_structure(2, 1)  # 4-neighbourhood


def _node_touch(labels: np.ndarray, nodes: np.ndarray) -> set[int]:
    """Labels of the elements around the (nely+1, nelx+1) ``nodes`` mask (0 = none)."""
    padded = np.pad(labels, 1)  # node (i, j) touches elements (i-1..i, j-1..j) -> padded (i..i+1)
    i, j = np.nonzero(nodes)
    found = np.concatenate([padded[i, j], padded[i + 1, j], padded[i, j + 1], padded[i + 1, j + 1]])
    return set(found[found > 0].tolist())


def _loaded_nodes(problem) -> np.ndarray:
    return np.any(problem.loads != 0, axis=(0, 1))


def load_carrying(solid: np.ndarray, problem) -> np.ndarray:
    """(nely, nelx) bool: the elements of ``solid`` in a component that touches both a loaded
    node and a supported node of ``problem``."""
    labels, _ = ndimage.label(solid, structure=_EDGES)
    loaded = _node_touch(labels, _loaded_nodes(problem))
    supported = _node_touch(labels, problem.fixed_x | problem.fixed_y)
    keep = sorted(loaded & supported)
    return np.isin(labels, keep) if keep else np.zeros(solid.shape, bool)


def bare_loads(solid: np.ndarray, problem) -> int:
    """How many loaded nodes touch no element of ``solid``."""
    return int(np.count_nonzero(_loaded_nodes(problem) & ~element_nodes(solid)))


def element_nodes(mask: np.ndarray) -> np.ndarray:
    """(nely, nelx) element mask -> (nely+1, nelx+1) mask of the nodes of those elements."""
    padded = np.pad(np.asarray(mask, bool), 1)
    return padded[:-1, :-1] | padded[1:, :-1] | padded[:-1, 1:] | padded[1:, 1:]


def free_rigid_motions(fixed_x: np.ndarray, fixed_y: np.ndarray) -> list[str]:
    """The rigid-body motions of the plane that these node fixities leave free.

    u = (a - t*y, b + t*x): the supports remove them all iff the fixed DOFs' rows of this
    (ndof x 3) basis have rank 3."""
    nely, nelx = fixed_x.shape[0] - 1, fixed_x.shape[1] - 1
    iy, _ = np.nonzero(fixed_x)
    rows_x = np.stack([np.ones(iy.size), np.zeros(iy.size), iy - nely / 2], axis=1)
    _, jx = np.nonzero(fixed_y)
    rows_y = np.stack([np.zeros(jx.size), np.ones(jx.size), jx - nelx / 2], axis=1)
    if np.linalg.matrix_rank(np.concatenate([rows_x, rows_y])) == 3:
        return []
    free = []
    if not fixed_x.any():
        free.append("translation in x")
    if not fixed_y.any():
        free.append("translation in y")
    return free or ["rotation"]


def unsupported_loads(problem) -> int:
    """How many loaded nodes lie in a part of the non-void domain that the passive void cuts
    off from enough supports to hold it (0 for a well-posed problem: otherwise only the void's
    tiny stiffness carries that load)."""
    labels, n = ndimage.label(~problem.passive_void, structure=_EDGES)
    held = np.zeros(problem.fixed_x.shape, bool)  # nodes of components that supports hold
    for label in range(1, n + 1):
        nodes = element_nodes(labels == label)
        if not free_rigid_motions(problem.fixed_x & nodes, problem.fixed_y & nodes):
            held |= nodes
    return int(np.count_nonzero(_loaded_nodes(problem) & ~held))
