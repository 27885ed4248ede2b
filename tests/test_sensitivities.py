"""Finite-difference checks of the SIMP sensitivities, the filters and the projection.

`objective(x, fe, design, penal)` returns the compliance and its exact gradient with respect to the
design variables x through the passive masks, the density filter and the Heaviside projection;
with the sensitivity filter x^ = x and the gradient is the raw dc/dx^ (Sigmund's heuristic filter
is applied by the optimiser, not here).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from topovae.solvers import (
    DesignMap,
    FEModel,
    Problem,
    ProblemError,
    filter_matrix,
    heaviside,
    preset,
)
from topovae.solvers._filters import ConeFilter, heaviside_grad
from topovae.solvers._simp import objective

NELX, NELY = 12, 8
PENAL = 3.0
H = 1e-4  # central differences: truncation ~H^2, rounding ~1e-16 c / H, both << 1e-5


def cantilever(kind: str, passive: bool, ncases: int, rmin: float = 2.5) -> Problem:
    """12x8 cantilever (load mid right), optionally with passive solid / void and a second
    load case."""
    p = preset("cantilever", NELX, NELY, 0.5, filter=kind, rmin=rmin)
    if passive:
        solid = np.zeros(p.shape, bool)
        solid[3:5, 9:] = True  # around the load
        solid[0, 0:3] = True  # at the clamped edge
        void = np.zeros(p.shape, bool)
        void[5:8, 4:7] = True
        p = p.replace(passive_solid=solid, passive_void=void)
    if ncases == 2:
        loads = np.zeros((2, 2, NELY + 1, NELX + 1))
        loads[0] = p.loads[0]
        loads[1, 0, 0, NELX] = 0.5  # pull the top-right corner to the right
        loads[1, 1, NELY, 3] = -1.0  # and push a bottom node down
        p = p.replace(loads=loads)
    return p


def design_variables(design: DesignMap, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).uniform(0.2, 0.9, design.active.size)
    return design.fix_passive(x)


def central_difference(f, x: np.ndarray, index: np.ndarray, h: float = H) -> np.ndarray:
    g = np.empty(index.size)
    for k, i in enumerate(index):
        xp, xm = x.copy(), x.copy()
        xp[i] += h
        xm[i] -= h
        g[k] = (f(xp) - f(xm)) / (2 * h)
    return g


def assert_gradient(fd: np.ndarray, exact: np.ndarray, rtol: float = 1e-5) -> None:
    # Entries many orders below the largest one are checked absolutely, at the noise floor of
    # the differences: the FFT filter's round-off (~1e-14 relative) divided by 2H.
    np.testing.assert_allclose(fd, exact, rtol=rtol, atol=1e-8 * np.abs(exact).max())


FILTER_CASES = [
    ("sensitivity", None),
    ("density", None),
    ("heaviside", 1.0),
    ("heaviside", 8.0),
]


@pytest.mark.parametrize("ncases", [1, 2])
@pytest.mark.parametrize("passive", [False, True], ids=["no-passive", "passive"])
@pytest.mark.parametrize(("kind", "beta"), FILTER_CASES, ids=lambda v: str(v))
def test_objective_gradient_by_finite_differences(
    kind: str, beta: float | None, passive: bool, ncases: int
) -> None:
    p = cantilever(kind, passive, ncases)
    fe, design = FEModel(p), DesignMap(p)
    if beta is not None:
        design.beta = beta
    x = design_variables(design, seed=ncases + 2 * passive)
    c, grad, xphys = objective(x, fe, design, PENAL)
    assert c > 0 and xphys.shape == x.shape
    if kind == "sensitivity":
        # x^ = x: only the design domain's variables act (passive entries are overwritten)
        np.testing.assert_array_equal(xphys, x)
        index = np.flatnonzero(design.active)
    else:
        # every variable acts, passive ones too: they feed the filter of their neighbours
        index = np.arange(x.size)
    fd = central_difference(lambda y: objective(y, fe, design, PENAL)[0], x, index)
    assert_gradient(fd, grad[index])
    # a sanity check that the comparison has teeth: compliance decreases with material
    assert np.all(grad[design.active] < 0)


@pytest.mark.parametrize("passive", [False, True], ids=["no-passive", "passive"])
@pytest.mark.parametrize(("kind", "beta"), FILTER_CASES, ids=lambda v: str(v))
def test_volume_gradient_by_finite_differences(kind: str, beta: float | None, passive: bool):
    p = cantilever(kind, passive, 1)
    design = DesignMap(p)
    if beta is not None:
        design.beta = beta
    x = design_variables(design, seed=7)
    design.physical(x)  # chain() and volume_gradient() use the state of the last call
    dv = design.chain(np.ones(x.size))
    dv_cached = design.volume_gradient()
    index = np.flatnonzero(design.active) if kind == "sensitivity" else np.arange(x.size)
    fd = central_difference(lambda y: design.physical(y).sum(), x, index)
    assert_gradient(fd, dv[index])
    assert_gradient(fd, dv_cached[index])
    if kind == "density":
        # the density-filtered volume is linear in x: its gradient is the same everywhere
        design.physical(design_variables(design, seed=8))
        np.testing.assert_allclose(design.chain(np.ones(x.size)), dv, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("passive", [False, True], ids=["no-passive", "passive"])
@pytest.mark.parametrize(("kind", "beta"), FILTER_CASES, ids=lambda v: str(v))
def test_volume_equals_physical_sum(kind: str, beta: float | None, passive: bool) -> None:
    """`volume` (used inside the OC bisection) is sum(x^) for every filter."""
    p = cantilever(kind, passive, 1)
    design = DesignMap(p)
    if beta is not None:
        design.beta = beta
    for seed in range(3):
        x = design_variables(design, seed)  # candidates are passive-fixed, as in the OC update
        assert design.volume(x) == pytest.approx(design.physical(x).sum(), rel=1e-12)


@pytest.mark.parametrize(("kind", "beta"), FILTER_CASES, ids=lambda v: str(v))
def test_volume_of_a_raw_candidate_equals_physical_sum(kind: str, beta: float | None) -> None:
    """`volume(x)` is documented as sum(x^) of a candidate x; x^ holds the passive elements at
    0 / 1 whatever x says there, so the volume must not depend on x's passive entries."""
    p = cantilever(kind, True, 1)
    design = DesignMap(p)
    if beta is not None:
        design.beta = beta
    x = np.random.default_rng(3).uniform(0.2, 0.9, design.active.size)  # not passive-fixed
    assert design.volume(x) == pytest.approx(design.physical(x).sum(), rel=1e-12)


def test_physical_densities_of_each_filter() -> None:
    """x^ = x (sensitivity), H x / Hs (density), the tanh projection of that (heaviside), with
    passive elements at exactly 1 / 0."""
    rng = np.random.default_rng(11)
    for kind in ("sensitivity", "density", "heaviside"):
        p = cantilever(kind, True, 1)
        design = DesignMap(p)
        design.beta = 4.0 if kind == "heaviside" else design.beta
        x = rng.uniform(0, 1, design.active.size)
        xphys = design.physical(x)
        solid, void = design.solid, design.void
        assert np.all(xphys[solid] == 1.0) and np.all(xphys[void] == 0.0)
        assert np.all((xphys >= 0) & (xphys <= 1))
        h, hs = filter_matrix(NELX, NELY, 2.5)
        expected = {"sensitivity": x, "density": h @ x / hs}
        expected["heaviside"] = heaviside(h @ x / hs, 4.0, 0.5)
        act = design.active
        np.testing.assert_allclose(xphys[act], expected[kind][act], rtol=1e-13)


# -- filter matrix -------------------------------------------------------------------------------
def top88_filter(nelx: int, nely: int, rmin: float) -> tuple[np.ndarray, np.ndarray]:
    """top88 lines 25-42 transcribed literally (1-based loops), as a dense matrix."""
    n = nelx * nely
    r = math.ceil(rmin) - 1
    h = np.zeros((n, n))
    for i1 in range(1, nelx + 1):
        for j1 in range(1, nely + 1):
            e1 = (i1 - 1) * nely + j1
            for i2 in range(max(i1 - r, 1), min(i1 + r, nelx) + 1):
                for j2 in range(max(j1 - r, 1), min(j1 + r, nely) + 1):
                    e2 = (i2 - 1) * nely + j2
                    h[e1 - 1, e2 - 1] = max(0, rmin - math.sqrt((i1 - i2) ** 2 + (j1 - j2) ** 2))
    return h, h.sum(axis=1)


@pytest.mark.parametrize(
    ("nelx", "nely", "rmin"), [(7, 5, 1.5), (6, 9, 2.4), (8, 3, 3.0), (4, 4, 1)]
)
def test_filter_matrix_matches_top88(nelx: int, nely: int, rmin: float) -> None:
    h, hs = filter_matrix(nelx, nely, rmin)
    h_ref, hs_ref = top88_filter(nelx, nely, rmin)
    np.testing.assert_allclose(h.toarray(), h_ref, rtol=0, atol=1e-15)
    np.testing.assert_allclose(hs, hs_ref, rtol=1e-15)
    assert (h - h.T).count_nonzero() == 0


def test_filter_weights_of_an_interior_element() -> None:
    """rmin = 1.5: self 1.5, 4 edge neighbours 0.5, 4 corner neighbours 1.5 - sqrt(2)."""
    h, hs = filter_matrix(5, 5, 1.5)
    e = 2 * 5 + 2
    row = h.getrow(e).toarray().ravel()
    assert np.count_nonzero(row) == 9
    assert row[e] == 1.5
    assert sorted(row[[e - 1, e + 1, e - 5, e + 5]]) == [0.5] * 4
    np.testing.assert_allclose(row[[e - 6, e - 4, e + 4, e + 6]], 1.5 - math.sqrt(2))
    assert hs[e] == pytest.approx(3.5 + 4 * (1.5 - math.sqrt(2)))


# -- Heaviside projection ------------------------------------------------------------------------
@pytest.mark.parametrize("beta", [0.5, 1.0, 8.0, 32.0])
@pytest.mark.parametrize("eta", [0.3, 0.5, 0.7])
def test_heaviside_grad_by_finite_differences(beta: float, eta: float) -> None:
    x = np.linspace(0.005, 0.995, 199)
    h = 1e-6
    fd = (heaviside(x + h, beta, eta) - heaviside(x - h, beta, eta)) / (2 * h)
    exact = heaviside_grad(x, beta, eta)
    np.testing.assert_allclose(fd, exact, rtol=1e-6, atol=1e-8 * exact.max())
    assert np.all(exact >= 0)


@pytest.mark.parametrize("beta", [0.5, 1.0, 8.0, 32.0, 512.0])
@pytest.mark.parametrize("eta", [0.3, 0.5, 0.7])
def test_heaviside_values(beta: float, eta: float) -> None:
    assert heaviside(np.array([0.0]), beta, eta)[0] == pytest.approx(0.0, abs=1e-15)
    assert heaviside(np.array([1.0]), beta, eta)[0] == pytest.approx(1.0, abs=1e-15)
    x = np.linspace(0, 1, 101)
    assert np.all(np.diff(heaviside(x, beta, eta)) >= 0)
    if eta == 0.5:
        assert heaviside(np.array([0.5]), beta, eta)[0] == pytest.approx(0.5, abs=1e-15)
        # symmetric about (0.5, 0.5)
        np.testing.assert_allclose(
            heaviside(1 - x, beta, eta), 1 - heaviside(x, beta, eta), rtol=0, atol=1e-15
        )


def test_heaviside_limits() -> None:
    x = np.linspace(0, 1, 101)
    # beta -> 0: the identity (tanh t ~ t)
    np.testing.assert_allclose(heaviside(x, 1e-5, 0.3), x, atol=1e-9)
    # beta -> oo: a step at eta
    y = heaviside(x, 1e4, 0.3)
    np.testing.assert_allclose(y[x < 0.29], 0, atol=1e-12)
    np.testing.assert_allclose(y[x > 0.31], 1, atol=1e-12)


@pytest.mark.parametrize("method", ["fft", "matrix", "auto"])
@pytest.mark.parametrize(("nelx", "nely", "rmin"), [(7, 5, 1.0), (12, 8, 1.5), (30, 9, 4.3)])
def test_cone_filter_equals_the_filter_matrix(nelx: int, nely: int, rmin: float, method) -> None:
    h, _ = filter_matrix(nelx, nely, rmin)
    v = np.random.default_rng(0).uniform(-1, 1, nelx * nely)
    product = ConeFilter(nelx, nely, rmin, method) @ v
    np.testing.assert_allclose(product, h @ v, rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    ("nelx", "nely", "rmin", "method"),
    [(60, 20, 2.4, "matrix"), (64, 64, 2.0, "matrix"), (64, 64, 4.5, "fft"),
     (300, 100, 7.5, "fft")],
)  # fmt: skip
def test_cone_filter_stores_the_matrix_only_for_small_kernels(nelx, nely, rmin, method) -> None:
    f = ConeFilter(nelx, nely, rmin)
    assert f.method == method
    if method == "matrix":
        assert f._matrix.nnz <= 50_000 + 17 * nelx * nely


def test_cone_filter_names_a_bad_method() -> None:
    with pytest.raises(ProblemError, match="method must be 'auto', 'matrix' or 'fft', got 'x'"):
        ConeFilter(8, 4, 1.5, "x")
