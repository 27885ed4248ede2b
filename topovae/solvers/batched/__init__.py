"""Batched, matrix-free finite elements and SIMP in PyTorch (CPU or CUDA).

Imported on demand (it loads torch):

    from topovae.solvers.batched import compliance, solve_batch, BatchedFE, MultigridPCG

See `_multigrid` for the operator, the multigrid V-cycle and PCG, and `_simp` for the
differentiable compliance and the batched OC loop.
"""

from ._multigrid import GridHierarchy, MultigridPCG, apply_elements, element_energy
from ._simp import (
    BatchedFE,
    ConvFilter,
    ProblemBatch,
    compliance,
    grid_hierarchy,
    physical_density,
    resolve_device,
    solve_batch,
    torch_threads,
)

__all__ = [
    "BatchedFE",
    "ConvFilter",
    "GridHierarchy",
    "MultigridPCG",
    "ProblemBatch",
    "apply_elements",
    "compliance",
    "element_energy",
    "grid_hierarchy",
    "physical_density",
    "resolve_device",
    "solve_batch",
    "torch_threads",
]
