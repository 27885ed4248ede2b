"""Physical fields of the full-material design, used as conditioning channels for models.

Both are per element, on the solid (E = 1 everywhere) domain under the problem's loads, summed
over load cases (energy) or maximised over them (stress).
"""

from __future__ import annotations

import numpy as np

from ._fe import KE, NU, FEModel, to_field
from ._problem import Problem, check_problem

# Strain-displacement matrix of the unit Q4 element at its centre, local DOF order of `_fe`
# (lower-left, lower-right, upper-right, upper-left; x right, y up).
_DNDX = np.array([-0.5, 0.5, 0.5, -0.5])
_DNDY = np.array([-0.5, -0.5, 0.5, 0.5])
B_CENTRE = np.zeros((3, 8))
B_CENTRE[0, 0::2] = _DNDX
B_CENTRE[1, 1::2] = _DNDY
B_CENTRE[2, 0::2] = _DNDY
B_CENTRE[2, 1::2] = _DNDX
D_PLANE_STRESS = np.array([[1, NU, 0], [NU, 1, 0], [0, 0, (1 - NU) / 2]]) / (1 - NU**2)


def full_material_fields(problem: Problem) -> tuple[np.ndarray, np.ndarray]:
    """(strain energy density, von Mises stress at the element centre), each (nely, nelx)."""
    check_problem(problem)
    fe = FEModel(problem)
    u = fe.solve(np.ones(problem.nelx * problem.nely))  # (ndof, ncases)
    ue = u[fe.edof]  # (nele, 8, ncases)
    energy = 0.5 * np.einsum("eac,ab,ebc->e", ue, KE, ue)
    sx, sy, txy = np.einsum("sk,kb,ebc->sec", D_PLANE_STRESS, B_CENTRE, ue)
    vm = np.sqrt(np.maximum(sx**2 - sx * sy + sy**2 + 3 * txy**2, 0)).max(axis=1)
    shape = (problem.nely, problem.nelx)
    return to_field(energy, *shape).copy(), to_field(vm, *shape).copy()
