"""Tests of the Q4 finite elements in ``topovae.solvers._fe`` against independent facts.

- the element stiffness against top88's published closed form and a Gauss-quadrature derivation;
- DOF / element numbering against top88's MATLAB construction and the grid geometry;
- displacement and traction patch tests (a Q4 mesh reproduces any linear displacement field);
- a slender solid cantilever against Timoshenko beam theory;
- the free-DOF assembly of `FEModel` against a plain SciPy assembly, SuperLU against CHOLMOD.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from topovae.solvers import (
    E0,
    EMIN,
    KE,
    NU,
    FEModel,
    Problem,
    ProblemError,
    cholmod_available,
    compliance,
    edof_matrix,
    element_stiffness,
    preset,
)
from topovae.solvers._fe import nested_dissection, simp_modulus, to_field, to_vector

SOLVERS = [
    "superlu",
    pytest.param(
        "cholmod", marks=pytest.mark.skipif(not cholmod_available(), reason="needs cvxopt")
    ),
]


# -- helpers -------------------------------------------------------------------------------------
def top88_ke(nu: float) -> np.ndarray:
    """KE exactly as printed in top88 (Andreassen et al. 2011), lines 5-12."""
    a11 = np.array([[12, 3, -6, -3], [3, 12, 3, 0], [-6, 3, 12, -3], [-3, 0, -3, 12]])
    a12 = np.array([[-6, -3, 0, 3], [-3, -6, -3, -6], [0, -3, -6, 3], [3, -6, 3, -6]])
    b11 = np.array([[-4, 3, -2, 9], [3, -4, -9, 4], [-2, -9, -4, -3], [9, 4, -3, -4]])
    b12 = np.array([[2, -3, 4, -9], [-3, 2, 9, -2], [4, 9, 2, 3], [-9, -2, 3, 2]])
    a = np.block([[a11, a12], [a12.T, a11]])
    b = np.block([[b11, b12], [b12.T, b11]])
    return 1 / (1 - nu**2) / 24 * (a + nu * b)


def plane_stress_d(nu: float, e: float = 1.0) -> np.ndarray:
    return e / (1 - nu**2) * np.array([[1, nu, 0], [nu, 1, 0], [0, 0, (1 - nu) / 2]])


def quadrature_ke(nu: float) -> np.ndarray:
    """int B^T D B over the unit square, 2x2 Gauss, nodes LL, LR, UR, UL (x right, y up)."""
    xy = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], float)
    d = plane_stress_d(nu)
    g = 0.5 + np.array([-0.5, 0.5]) / np.sqrt(3)
    ke = np.zeros((8, 8))
    for x, y in itertools.product(g, g):
        # bilinear shape functions N_a = (1 - |x - x_a|)(1 - |y - y_a|) on the unit square
        dndx = np.array([(2 * xa - 1) * (1 - abs(y - ya)) for xa, ya in xy])
        dndy = np.array([(1 - abs(x - xa)) * (2 * ya - 1) for xa, ya in xy])
        b = np.zeros((3, 8))
        b[0, 0::2] = dndx
        b[1, 1::2] = dndy
        b[2, 0::2] = dndy
        b[2, 1::2] = dndx
        ke += 0.25 * b.T @ d @ b
    return ke


def node_xy(nelx: int, nely: int) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates (x right, y up, unit elements, origin bottom-left) of nodes in top88 order."""
    n = np.arange((nelx + 1) * (nely + 1))
    return (n // (nely + 1)).astype(float), (nely - n % (nely + 1)).astype(float)


def assemble(nelx: int, nely: int, young: np.ndarray | None = None) -> sp.csc_matrix:
    """Full (ndof x ndof) stiffness by the textbook COO assembly of KE over edof_matrix."""
    edof = edof_matrix(nelx, nely)
    young = np.ones(nelx * nely) if young is None else young
    rows = np.repeat(edof, 8, axis=1).ravel()
    cols = np.tile(edof, (1, 8)).ravel()
    vals = (young[:, None, None] * KE[None]).ravel()
    ndof = 2 * (nelx + 1) * (nely + 1)
    return sp.coo_matrix((vals, (rows, cols)), shape=(ndof, ndof)).tocsc()


def reference_solve(problem: Problem, young: np.ndarray) -> np.ndarray:
    """(ndof, ncases) displacements by SciPy's spsolve on K[free][:, free]."""
    k = assemble(problem.nelx, problem.nely, young)
    free = np.flatnonzero(~problem.fixed_dofs())
    f = problem.force_matrix()
    u = np.zeros_like(f)
    sol = spla.spsolve(k[free][:, free], f[free])
    u[free] = sol.reshape(free.size, -1)
    return u


# -- element stiffness ---------------------------------------------------------------------------
@pytest.mark.parametrize("nu", [0.0, 0.25, NU, 0.45])
def test_ke_equals_top88_formula(nu: float) -> None:
    np.testing.assert_allclose(element_stiffness(nu), top88_ke(nu), rtol=0, atol=1e-14)


def test_ke_default_is_nu_0_3_and_matches_quadrature() -> None:
    assert NU == 0.3
    np.testing.assert_allclose(KE, top88_ke(0.3), rtol=0, atol=1e-14)
    # independent derivation: plane stress, E = 1, unit square, node order LL, LR, UR, UL
    np.testing.assert_allclose(KE, quadrature_ke(0.3), rtol=0, atol=1e-14)


def test_ke_symmetric_psd_with_exactly_the_three_rigid_modes() -> None:
    np.testing.assert_array_equal(KE, KE.T)
    eig = np.linalg.eigvalsh(KE)
    assert np.sum(np.abs(eig) < 1e-12) == 3
    assert eig.min() > -1e-12
    assert np.sort(eig)[3] > 0.1
    # the null space is the plane's rigid motions (x right, y up; nodes LL, LR, UR, UL)
    x = np.array([0.0, 1, 1, 0])
    y = np.array([0.0, 0, 1, 1])
    modes = np.zeros((8, 3))
    modes[0::2, 0] = 1  # translation x
    modes[1::2, 1] = 1  # translation y
    modes[0::2, 2], modes[1::2, 2] = -y, x  # rotation about the origin
    np.testing.assert_allclose(KE @ modes, 0, atol=1e-14)


# -- numbering -----------------------------------------------------------------------------------
def top88_edof(nelx: int, nely: int) -> np.ndarray:
    """top88 lines 13-15, transcribed literally (1-based, column-major reshapes), then 0-based."""
    nodenrs = np.arange(1, (1 + nelx) * (1 + nely) + 1).reshape((1 + nely, 1 + nelx), order="F")
    edofvec = (2 * nodenrs[:-1, :-1] + 1).reshape(-1, order="F")
    offsets = np.array([0, 1, 2 * nely + 2, 2 * nely + 3, 2 * nely, 2 * nely + 1, -2, -1])
    return edofvec[:, None] + offsets[None, :] - 1


@pytest.mark.parametrize(("nelx", "nely"), [(1, 1), (3, 2), (2, 5), (7, 4)])
def test_edof_matrix_matches_top88_and_geometry(nelx: int, nely: int) -> None:
    edof = edof_matrix(nelx, nely)
    np.testing.assert_array_equal(edof, top88_edof(nelx, nely))
    np.testing.assert_array_equal(edof[:, 1::2], edof[:, 0::2] + 1)  # (x, y) pairs of a node
    x, y = node_xy(nelx, nely)
    nodes = edof[:, 0::2] // 2
    for j in range(nelx):
        for i in range(nely):
            e = j * nely + i  # column j, row i (top to bottom)
            bottom = nely - i - 1
            expected = [(j, bottom), (j + 1, bottom), (j + 1, bottom + 1), (j, bottom + 1)]
            np.testing.assert_array_equal(np.stack([x, y], 1)[nodes[e]], expected)


def test_to_vector_to_field_order() -> None:
    nely, nelx = 3, 5
    field = np.arange(nely * nelx, dtype=float).reshape(nely, nelx)
    v = to_vector(field)
    for i, j in itertools.product(range(nely), range(nelx)):
        assert v[j * nely + i] == field[i, j]
    np.testing.assert_array_equal(to_field(v, nely, nelx), field)


# -- patch tests ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("nelx", "nely", "seed"), [(6, 4, 0), (5, 7, 1), (1, 3, 2)])
def test_displacement_patch_test(nelx: int, nely: int, seed: int) -> None:
    """Prescribe a general linear field on the boundary; the interior reproduces it, and the
    energy is the plane-stress energy density of the uniform strain times the area."""
    rng = np.random.default_rng(seed)
    a = rng.normal(size=3)  # u = a0 + a1 x + a2 y
    b = rng.normal(size=3)  # v = b0 + b1 x + b2 y
    x, y = node_xy(nelx, nely)
    exact = np.empty(2 * x.size)
    exact[0::2] = a[0] + a[1] * x + a[2] * y
    exact[1::2] = b[0] + b[1] * x + b[2] * y
    k = assemble(nelx, nely)
    boundary_node = (x == 0) | (x == nelx) | (y == 0) | (y == nely)
    bnd = np.repeat(boundary_node, 2)
    u = exact.copy()
    inner = np.flatnonzero(~bnd)
    if inner.size:
        u[inner] = 0.0
        rhs = -(k[inner][:, np.flatnonzero(bnd)] @ exact[bnd])
        u[inner] = spla.spsolve(k[inner][:, inner], rhs)
    np.testing.assert_allclose(u, exact, rtol=0, atol=1e-10)
    # K u vanishes on every interior DOF (no body force), and the energy is exact
    np.testing.assert_allclose((k @ exact)[inner], 0, atol=1e-12)
    eps = np.array([a[1], b[2], a[2] + b[1]])
    energy = eps @ plane_stress_d(NU) @ eps * nelx * nely
    np.testing.assert_allclose(exact @ (k @ exact), energy, rtol=1e-12)


def uniaxial_problem(nelx: int, nely: int, sigma: float, direction: str) -> Problem:
    """Solid rectangle on rollers, uniform tension sigma on the opposite edge (consistent
    nodal loads: sigma * h per node, half at the corners)."""
    nodes = (nely + 1, nelx + 1)
    fx, fy = np.zeros(nodes, bool), np.zeros(nodes, bool)
    loads = np.zeros((1, 2, *nodes))
    if direction == "x":
        fx[:, 0] = True  # roller along the left edge
        fy[nely, 0] = True  # bottom-left node pinned
        w = np.full(nely + 1, sigma)
        w[[0, -1]] /= 2
        loads[0, 0, :, nelx] = w  # pull the right edge to the right
    else:
        fy[nely, :] = True  # roller along the bottom edge (row nely is the bottom)
        fx[nely, 0] = True
        w = np.full(nelx + 1, sigma)
        w[[0, -1]] /= 2
        loads[0, 1, 0, :] = w  # pull the top edge (row 0) upwards: fy > 0 is up
    return Problem(nelx, nely, 0.5, fx, fy, loads)


@pytest.mark.parametrize("linear_solver", SOLVERS)
@pytest.mark.parametrize("direction", ["x", "y"])
def test_traction_patch_test(direction: str, linear_solver: str) -> None:
    """Uniaxial tension: u = sigma x / E, v = -nu sigma y / E (or transposed) exactly, and the
    compliance is sigma^2 * W * L / E (plane stress, E = 1, thickness 1)."""
    nelx, nely, sigma = 9, 5, 0.7
    p = uniaxial_problem(nelx, nely, sigma, direction).with_settings(linear_solver=linear_solver)
    fe = FEModel(p)
    assert fe.linear_solver_name == linear_solver
    u = fe.solve(np.full(nelx * nely, E0))[:, 0]
    x, y = node_xy(nelx, nely)
    if direction == "x":
        ux, uy = sigma * x / E0, -NU * sigma * y / E0
    else:
        ux, uy = -NU * sigma * x / E0, sigma * y / E0
    np.testing.assert_allclose(u[0::2], ux, rtol=0, atol=1e-12)
    np.testing.assert_allclose(u[1::2], uy, rtol=0, atol=1e-12)
    expected = sigma**2 * nelx * nely / E0
    np.testing.assert_allclose(fe.compliance(u[:, None]), expected, rtol=1e-12)
    # the public scorer on the full-solid design: E = Emin + 1 * (E0 - Emin) = E0
    np.testing.assert_allclose(compliance(np.ones((nely, nelx)), p), expected, rtol=1e-8)


# -- beam theory ---------------------------------------------------------------------------------
def cantilever_compliance(length: int, depth: int) -> float:
    """Solid cantilever, left edge clamped, unit tip load spread uniformly over the right edge."""
    nodes = (depth + 1, length + 1)
    fixed = np.zeros(nodes, bool)
    fixed[:, 0] = True
    loads = np.zeros((1, 2, *nodes))
    w = np.full(depth + 1, 1.0 / depth)
    w[[0, -1]] /= 2
    loads[0, 1, :, length] = -w
    p = Problem(length, depth, 0.5, fixed, fixed, loads)
    return compliance(np.ones((depth, length)), p)


def timoshenko_compliance(length: float, depth: float, nu: float = NU) -> float:
    """P * tip deflection for P = 1, E = 1, unit thickness: L^3 / (3 E I) + L / (kappa G A)."""
    i = depth**3 / 12
    g = 1 / (2 * (1 + nu))
    return length**3 / (3 * i) + length / (5 / 6 * g * depth)


def test_slender_cantilever_against_timoshenko() -> None:
    """L/H = 20. Bilinear Q4 elements in bending carry parasitic shear ("shear locking"), so the
    mesh is too stiff: with 8 square elements over the depth the compliance is ~0.9 % below
    beam theory, and the error falls ~4x per uniform refinement (O(h^2)). Richardson
    extrapolation of the two finer meshes lands within 0.2 % of Timoshenko (the remainder is
    the clamped root's Poisson restraint and the end load's distribution)."""
    c = [cantilever_compliance(20 * h, h) for h in (2, 4, 8)]
    ref = timoshenko_compliance(160, 8)  # all three beams: L^3 / (3 E I) = 32000
    assert timoshenko_compliance(40, 2) == pytest.approx(ref)
    err = [1 - ci / ref for ci in c]
    assert 0 < err[2] < 0.02  # stiffer than beam theory, but by less than 2 %
    assert err[0] > err[1] > err[2]
    assert err[0] / err[1] > 3 and err[1] / err[2] > 3  # ~O(h^2) convergence
    extrapolated = c[2] + (c[2] - c[1]) / 3
    assert extrapolated == pytest.approx(ref, rel=5e-3)


# -- assembly and linear solvers ---------------------------------------------------------------
def random_case(seed: int) -> tuple[Problem, np.ndarray]:
    """Two-load problem with passive regions and random SIMP moduli (contrast 1e3)."""
    rng = np.random.default_rng(seed)
    p = preset("two-load", 24, 12, 0.4)
    solid = np.zeros(p.shape, bool)
    solid[5:7, 20:] = True
    void = np.zeros(p.shape, bool)
    void[:3, 8:12] = True
    p = p.replace(passive_solid=solid, passive_void=void)
    return p, simp_modulus(rng.uniform(0.1, 1.0, p.nelx * p.nely), 3.0)


@pytest.mark.parametrize("linear_solver", SOLVERS)
def test_fe_model_matches_reference_assembly(linear_solver: str) -> None:
    p, young = random_case(0)
    fe = FEModel(p, linear_solver)
    u = fe.solve(young)
    assert u.shape == (p.ndof, 2)
    ref = reference_solve(p, young)
    np.testing.assert_allclose(u, ref, rtol=0, atol=1e-10 * np.abs(ref).max())
    assert np.all(u[p.fixed_dofs()] == 0)
    # compliance f^T u equals the energy sum_e E_e u_e^T k0 u_e
    c = fe.compliance(u)
    assert c == pytest.approx(young @ fe.element_energy(u), rel=1e-10)
    assert c == pytest.approx(float(np.sum(p.force_matrix() * ref)), rel=1e-10)


@pytest.mark.skipif(not cholmod_available(), reason="needs cvxopt")
def test_superlu_and_cholmod_agree() -> None:
    for seed in (1, 2):
        p, young = random_case(seed)
        u1 = FEModel(p, "superlu").solve(young)
        u2 = FEModel(p, "cholmod").solve(young)
        assert np.linalg.norm(u1 - u2) <= 1e-10 * np.linalg.norm(u1)
    # and refactorising the same model with new values (pattern reused) stays exact
    p, young = random_case(3)
    fe1, fe2 = FEModel(p, "superlu"), FEModel(p, "cholmod")
    for seed in (4, 5):
        young = simp_modulus(np.random.default_rng(seed).uniform(0.1, 1, young.size), 3.0)
        u1, u2 = fe1.solve(young), fe2.solve(young)
        assert np.linalg.norm(u1 - u2) <= 1e-10 * np.linalg.norm(u1)
        ref = reference_solve(p, young)
        assert np.linalg.norm(u2 - ref) <= 1e-10 * np.linalg.norm(ref)


@pytest.mark.parametrize("linear_solver", SOLVERS)
def test_factor_reuse_solves_to_its_tolerance_or_refactorises(linear_solver: str) -> None:
    """reuse_tol: a small change of the moduli is solved by CG on the old factor, to a residual
    within reuse_tol ||f|| of the textbook assembly's; a large one refactorises and is then
    exactly the solve of a fresh model."""
    p, young = random_case(6)
    f = p.force_matrix()
    free = ~p.fixed_dofs()
    fe = FEModel(p, linear_solver, reuse_tol=1e-8)
    fe.solve(young)
    assert (fe.factorizations, fe.reuses, fe.last_solve_exact) == (1, 0, True)
    near = young * (1 + 1e-3 * np.random.default_rng(7).uniform(-1, 1, young.size))
    u = fe.solve(near)
    assert (fe.factorizations, fe.reuses, fe.last_solve_exact) == (1, 1, False)
    residual = (assemble(p.nelx, p.nely, near) @ u - f)[free]
    assert np.all(np.linalg.norm(residual, axis=0) <= 1e-8 * np.linalg.norm(f[free], axis=0))
    ref = reference_solve(p, near)
    assert 1e-14 < np.linalg.norm(u - ref) <= 1e-6 * np.linalg.norm(ref)  # inexact, but close
    far = simp_modulus(np.random.default_rng(8).uniform(0.1, 1.0, young.size), 3.0)
    u = fe.solve(far)  # the moduli change by up to 1000x: two CG iterations are not enough
    assert (fe.factorizations, fe.reuses, fe.last_solve_exact) == (2, 1, True)
    np.testing.assert_array_equal(u, FEModel(p, linear_solver).solve(far))
    u = fe.solve(near, exact=True)  # exact: always a factorisation
    assert (fe.factorizations, fe.reuses, fe.last_solve_exact) == (3, 1, True)
    np.testing.assert_array_equal(u, FEModel(p, linear_solver).solve(near))


def test_failed_reuse_tries_back_off_and_a_success_resets_them() -> None:
    """After n >= 2 failed tries in a row the next 2^(n-2) solves refactorise untried; a
    successful try starts the count again."""
    p, young = random_case(6)
    fe = FEModel(p, reuse_tol=1e-8)
    rng = np.random.default_rng(3)
    fe.solve(young)  # nothing to reuse yet
    tried = []
    for k in range(2, 14):  # every new design is far from the last: every try fails
        before = fe.tries
        fe.solve(simp_modulus(rng.uniform(0.1, 1.0, young.size), 3.0))
        if fe.tries > before:
            tried.append(k)
    assert tried == [2, 3, 5, 8, 13]  # skips of 0, 1, 2, 4 solves
    assert fe.reuses == 0 and fe.factorizations == 13
    last = simp_modulus(rng.uniform(0.1, 1.0, young.size), 3.0)
    for _ in range(8):  # the fifth failure in a row skips the next 8 solves
        fe.solve(last)
    assert (fe.reuses, fe.factorizations) == (0, 21)
    fe.solve(last)  # then it tries again, and the unchanged design is reused
    assert (fe.reuses, fe.factorizations) == (1, 21)
    before = fe.tries
    fe.solve(simp_modulus(rng.uniform(0.1, 1.0, young.size), 3.0))
    assert fe.tries == before + 1  # tried at once again


def test_factor_reuse_is_off_by_default_and_checked() -> None:
    p, young = random_case(9)
    fe = FEModel(p)
    for scale in (1.0, 1.001):
        fe.solve(young * scale)
    assert (fe.factorizations, fe.reuses) == (2, 0)
    for bad in (-1e-3, 1.0, float("nan")):
        with pytest.raises(ProblemError, match="reuse_tol"):
            FEModel(p, reuse_tol=bad)


def test_auto_reuse_is_on_from_ten_thousand_free_dofs() -> None:
    """reuse_tol=None (SIMPSettings' default): 1e-6 where a factorisation costs clearly
    more than a try, 0 on small grids (top88's 60x20 factorises every iteration)."""
    from topovae.solvers._fe import REUSE_AUTO_TOL, REUSE_MIN_DOFS

    small, large = preset("mbb", 60, 20), preset("mbb", 150, 50)
    assert FEModel(small, reuse_tol=None).free.size < REUSE_MIN_DOFS
    assert FEModel(large, reuse_tol=None).free.size >= REUSE_MIN_DOFS
    assert FEModel(small, reuse_tol=None).reuse_tol == 0.0
    assert FEModel(large, reuse_tol=None).reuse_tol == REUSE_AUTO_TOL == 1e-6
    assert FEModel(large, reuse_tol=0.0).reuse_tol == 0.0


def test_y_axis_points_up() -> None:
    """MBB: a downward load (fy < 0) at the top-left node moves that node down."""
    p = preset("mbb", 12, 4, 0.5)
    u = FEModel(p).solve(np.ones(48))[:, 0]
    assert u[1] < 0  # DOF 1: y of node 0, the top-left node
    x, y = node_xy(12, 4)
    assert (x[0], y[0]) == (0, 4)


# -- nested dissection ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("rows", "cols"),
    [
        *itertools.product([1, 2, 3, 4, 5, 7, 16, 17], [1, 2, 3, 5, 8, 9, 33]),
        (1, 100),
        (100, 1),
        (21, 61),
        (61, 21),
        (101, 301),
    ],
)
def test_nested_dissection_is_a_permutation(rows: int, cols: int) -> None:
    order = nested_dissection(rows, cols)
    assert order.shape == (rows * cols,)
    np.testing.assert_array_equal(np.sort(order), np.arange(rows * cols))


# -- the public scorer ---------------------------------------------------------------------------
def test_compliance_of_a_0_1_design_is_independent_of_penal() -> None:
    p = preset("cantilever", 20, 10, 0.5)
    design = (np.random.default_rng(0).random(p.shape) < 0.6).astype(float)
    design[:, -3:] = 1.0
    c = [compliance(design, p, penal=q) for q in (1.0, 3.0, 4.5)]
    assert c[0] == c[1] == c[2]
    assert c[1] == compliance(design, p)  # default: the problem's penal (3)


def test_compliance_scales_with_uniform_modulus() -> None:
    """A uniform grey design x has modulus E(x) = Emin + x^p (E0 - Emin) and compliance
    c_solid * E0 / E(x)."""
    p = preset("mbb", 16, 8, 0.5)
    solid = compliance(np.ones(p.shape), p)
    for penal in (1.0, 3.0):
        e = EMIN + 0.5**penal * (E0 - EMIN)
        grey = compliance(np.full(p.shape, 0.5), p, penal=penal)
        assert grey == pytest.approx(solid * E0 / e, rel=1e-9)


@pytest.mark.parametrize(
    "bad",
    [np.ones((5, 12)), np.ones((4, 12)) * 1.5, -np.ones((4, 12)), np.full((4, 12), np.nan)],
)
def test_compliance_rejects_bad_densities(bad: np.ndarray) -> None:
    with pytest.raises(ValueError, match="density"):
        compliance(bad, preset("mbb", 12, 4, 0.5))
