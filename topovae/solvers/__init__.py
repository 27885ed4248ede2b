"""SIMP minimum-compliance topology optimization on 2D structured grids.

from topovae.solvers import preset, solve, compliance
result = solve(preset("mbb", 60, 20, 0.5, filter="sensitivity", rmin=2.4))
result.compliance, result.iterations, result.density   # 216.81..., 106, (20, 60) array
find_alternatives(problem, k=6)   # up to 6 distinct near-optimal designs, best first
choose_backend(problem)   # the route solve(backend="auto") takes: "direct" or "torch"
"""

from ._alternatives import (
    DISTINCT,
    AlternativeSearch,
    distinct,
    find_alternatives,
    iou_distance,
    pairwise_distances,
    random_start,
    solid,
)
from ._backend import AUTO_TORCH_MIN_ELEMENTS, BACKENDS, choose_backend
from ._deflation import Deflation
from ._fe import E0, EMIN, KE, NU, FEModel, edof_matrix, element_stiffness
from ._fields import full_material_fields
from ._filters import filter_matrix, heaviside
from ._linear import cholmod_available
from ._mma import MMA
from ._presets import PRESETS, preset
from ._problem import (
    FILTERS,
    LINEAR_SOLVERS,
    OPTIMIZERS,
    Problem,
    ProblemError,
    SIMPSettings,
    check_problem,
)
from ._simp import DesignMap, IterationInfo, SolveResult, compliance, oc_update, solve

__all__ = [
    "AUTO_TORCH_MIN_ELEMENTS",
    "BACKENDS",
    "DISTINCT",
    "E0",
    "EMIN",
    "FILTERS",
    "KE",
    "LINEAR_SOLVERS",
    "MMA",
    "NU",
    "OPTIMIZERS",
    "PRESETS",
    "AlternativeSearch",
    "Deflation",
    "DesignMap",
    "FEModel",
    "IterationInfo",
    "Problem",
    "ProblemError",
    "SIMPSettings",
    "SolveResult",
    "check_problem",
    "cholmod_available",
    "choose_backend",
    "compliance",
    "distinct",
    "edof_matrix",
    "element_stiffness",
    "filter_matrix",
    "find_alternatives",
    "full_material_fields",
    "heaviside",
    "iou_distance",
    "oc_update",
    "pairwise_distances",
    "preset",
    "random_start",
    "solid",
    "solve",
]
