"""Dihedral augmentation: the transformed problem's SIMP design is the transformed design (same
compliance, same iterations), FE compliance is invariant, the batch version agrees with the
condition images built from the transformed problem, and the group facts hold."""

from functools import cache

import numpy as np
import pytest
import torch

from topovae.datasets._augment import (
    augment_batch,
    inverse,
    random_codes,
    transform_design,
    transform_problem,
    transforms,
)
from topovae.datasets._store import FIELDS
from topovae.datasets._torch import BASE_CHANNELS, problem_condition
from topovae.solvers import Problem, compliance, preset, solve

CHANNELS = BASE_CHANNELS + FIELDS
DENSITY_ATOL = 1e-8  # observed <= 3e-10 (heaviside + MMA), <= 6e-13 (OC)
COMPLIANCE_RTOL = 1e-10  # observed <= 2e-12


def oblique(n: int = 24, m: int | None = None, **settings) -> Problem:
    """A problem without any symmetry whose loads have x and y parts of different signs, so a
    wrong sign or a missing swap in the force mapping changes the answer (a global sign flip of
    a load case would not: compliance is quadratic in the load)."""
    nelx, nely = n, n if m is None else m
    fixed_x = np.zeros((nely + 1, nelx + 1), bool)
    fixed_y = np.zeros_like(fixed_x)
    fixed_x[: nely // 2 + 1, 0] = True  # upper half of the left edge, x only
    fixed_x[nely, nelx] = True  # and the bottom-right corner (valid with x, y swapped, too)
    fixed_y[nely, : nelx // 4 + 1] = True  # left quarter of the bottom edge, y only
    loads = np.zeros((2, 2, nely + 1, nelx + 1))
    loads[0, :, nely // 3, nelx] = (0.6, -0.8)  # pulls right and down on the right edge
    loads[0, :, 0, nelx // 2] = (-0.3, 0.2)  # pushes left and up at the top
    loads[1, :, nely, 3 * nelx // 4] = (-0.5, 0.7)  # second case: on the bottom edge
    solid = np.zeros((nely, nelx), bool)
    solid[nely // 3 - 1 : nely // 3 + 1, nelx - 2 :] = True  # pad under the load
    void = np.zeros((nely, nelx), bool)
    void[nely // 2 : nely // 2 + 3, nelx // 2 : nelx // 2 + 5] = True
    return Problem(
        nelx, nely, 0.4, fixed_x, fixed_y, loads, passive_solid=solid, passive_void=void,
        name="oblique",
    ).with_settings(**settings)  # fmt: skip


# (name, builder) -> a Problem; small grids, every filter kind (heaviside with MMA, shortened)
SQUARE = {
    "mbb": lambda: preset("mbb", 24, 24, 0.5),
    "cantilever-sens": lambda: preset("cantilever", 24, 24, 0.4, filter="sensitivity", rmin=2.0),
    "l-bracket-heaviside": lambda: preset(
        "l-bracket", 24, 24, 0.4, filter="heaviside", max_iter=24, beta_every=8
    ),
    "oblique": lambda: oblique(24, filter="density", rmin=1.8, max_iter=40),
}
WIDE = {  # 30 x 20: the flips keep the shape, the quarter turns make a 20 x 30 problem
    "mbb": lambda: preset("mbb", 30, 20, 0.5, max_iter=60),
    "cantilever": lambda: preset("cantilever", 30, 20, 0.4, filter="sensitivity", rmin=2.0),
    "oblique": lambda: oblique(30, 20, max_iter=40),
}


@cache
def solved(grid: str, name: str):
    problem = (SQUARE if grid == "square" else WIDE)[name]()
    return problem, solve(problem)


def assert_same_problem(p: Problem, q: Problem) -> None:
    assert (p.nelx, p.nely) == (q.nelx, q.nely)
    for key, a in p.to_arrays().items():
        np.testing.assert_array_equal(a, q.to_arrays()[key], err_msg=key)


# -- physics ---------------------------------------------------------------------------------


@pytest.mark.parametrize("code", range(8))
@pytest.mark.parametrize(
    ("grid", "name"), [("square", n) for n in SQUARE] + [("wide", n) for n in WIDE]
)
def test_simp_commutes_with_transform(grid, name, code):
    problem, result = solved(grid, name)
    moved = transform_problem(problem, code)
    r = solve(moved)
    expected = transform_design(result.density, code)
    assert r.density.shape == expected.shape == moved.shape
    assert np.abs(r.density - expected).max() < DENSITY_ATOL
    assert r.compliance == pytest.approx(result.compliance, rel=COMPLIANCE_RTOL)
    assert r.iterations == result.iterations
    assert r.converged == result.converged


@pytest.mark.parametrize("code", range(8))
@pytest.mark.parametrize("name", ["mbb", "l-bracket-heaviside", "oblique"])
def test_compliance_of_a_fixed_design_is_invariant(name, code):
    problem = SQUARE[name]()
    rho = np.random.default_rng(7).uniform(0.05, 1.0, problem.shape)  # no symmetry at all
    c = compliance(rho, problem)
    c_moved = compliance(transform_design(rho, code), transform_problem(problem, code))
    assert c_moved == pytest.approx(c, rel=COMPLIANCE_RTOL)
    if code != 0:  # and the test can tell: the unmoved design scores differently
        assert compliance(rho, transform_problem(problem, code)) != pytest.approx(c, rel=1e-3)


def test_wrong_force_mapping_changes_compliance():
    """The oblique problem detects the natural mistakes, so the tests above would catch them."""
    problem = oblique(24)
    rho = np.random.default_rng(1).uniform(0.05, 1.0, problem.shape)
    moved = transform_problem(problem, 4)
    c = compliance(transform_design(rho, 4), moved)
    wrongs = [
        moved.replace(loads=moved.loads[:, ::-1]),  # (fy, fx): a mirror, not a turn
        moved.replace(loads=moved.loads * [[[[1.0]], [[-1.0]]]]),  # (-fy, -fx): the transpose's
        moved.replace(fixed_x=moved.fixed_y, fixed_y=moved.fixed_x),  # fixity not swapped
    ]
    for wrong in wrongs:
        assert compliance(transform_design(rho, 4), wrong) != pytest.approx(c, rel=1e-3)


# -- the table, from hand-derived facts ---------------------------------------------------------

H = 24
# mbb on 24x24: unit downward load at the top-left node, x fixed on the left edge, y fixed at the
# bottom-right node. code -> (loaded node, (fx, fy)), worked out by turning / mirroring a picture.
MBB_LOAD = {
    0: ((0, 0), (0, -1)),
    1: ((0, H), (0, -1)),  # mirrored left-right: top-right, still down
    2: ((H, 0), (0, 1)),  # mirrored top-bottom: bottom-left, now up
    3: ((H, H), (0, 1)),  # half turn: bottom-right, up
    4: ((H, 0), (1, 0)),  # quarter turn CCW: top-left -> bottom-left, down -> right
    5: ((0, H), (-1, 0)),  # quarter turn CW: top-left -> top-right, down -> left
    6: ((0, 0), (1, 0)),  # mirror in the main diagonal: stays, down (rows+) -> right (cols+)
    7: ((H, H), (-1, 0)),  # mirror in the anti-diagonal: bottom-right, down -> left
}


@pytest.mark.parametrize("code", range(8))
def test_mbb_load_and_supports_land_where_the_picture_says(code):
    p = transform_problem(preset("mbb", H, H, 0.5), code)
    node, force = MBB_LOAD[code]
    expected = np.zeros((2, H + 1, H + 1))
    expected[:, node[0], node[1]] = force
    np.testing.assert_array_equal(p.loads[0], expected)
    # the symmetry edge (x fixed on the left column) and the roller (y fixed at bottom-right)
    edge = np.zeros((H + 1, H + 1), bool)
    edge[:, 0] = True
    roller = np.zeros_like(edge)
    roller[H, H] = True
    ex, ey = (edge, roller) if code < 4 else (roller, edge)  # a quarter turn swaps x and y
    np.testing.assert_array_equal(p.fixed_x, transform_design(ex, code))
    np.testing.assert_array_equal(p.fixed_y, transform_design(ey, code))
    if code == 4:  # spelled out: the left edge lies at the bottom, holding y; the roller top-right
        assert p.fixed_y[H].all() and p.fixed_y.sum() == H + 1
        assert p.fixed_x[0, H] and p.fixed_x.sum() == 1


def test_transform_design_matches_numpy():
    a = np.arange(12.0).reshape(3, 4)
    expected = [
        a, a[:, ::-1], a[::-1], np.rot90(a, 2), np.rot90(a, 1), np.rot90(a, -1), a.T,
        np.rot90(a, 2).T,
    ]  # fmt: skip
    for code, e in enumerate(expected):
        np.testing.assert_array_equal(transform_design(a, code), e)
    np.testing.assert_array_equal(transform_design(np.array([[1, 2], [3, 4]]), 4), [[2, 4], [1, 3]])
    b = np.random.default_rng(0).normal(size=(2, 5, 5))  # leading axes are carried along
    assert len({transform_design(b, k).tobytes() for k in range(8)}) == 8
    np.testing.assert_array_equal(transform_design(b, 4)[1], np.rot90(b[1]))


def test_transform_problem_keeps_settings_and_names():
    p = SQUARE["l-bracket-heaviside"]()
    q = transform_problem(p, 6)
    assert q.settings == p.settings and q.volfrac == p.volfrac and q.ncases == p.ncases
    assert q.name == "l-bracket+transpose"
    assert transform_problem(p, 0) is p
    wide = transform_problem(WIDE["oblique"](), 5)
    assert (wide.nelx, wide.nely, wide.ncases) == (20, 30, 2)
    with pytest.raises(ValueError, match=r"0\.\.7"):
        transform_problem(p, 8)


# -- group facts ----------------------------------------------------------------------------


def test_group_facts():
    a = np.random.default_rng(3).normal(size=(6, 6))
    once = transform_design(a, 1)
    assert not np.array_equal(once, a)
    np.testing.assert_array_equal(transform_design(once, 1), a)
    turned = a
    for k in range(4):
        turned = transform_design(turned, 4)
        assert np.array_equal(turned, a) == (k == 3)
    np.testing.assert_array_equal(transform_design(transform_design(a, 4), 5), a)
    np.testing.assert_array_equal(
        transform_design(transform_design(a, 4), 4), transform_design(a, 3)
    )
    for code in range(8):
        np.testing.assert_array_equal(transform_design(transform_design(a, code), inverse(code)), a)
    # the same on problems (vectors and fixity included)
    p = oblique(12)
    assert_same_problem(transform_problem(transform_problem(p, 1), 1), p)
    q = p
    for _ in range(4):
        q = transform_problem(q, 4)
    assert_same_problem(q, p)
    assert_same_problem(transform_problem(transform_problem(p, 4), 5), p)
    assert_same_problem(transform_problem(transform_problem(p, 4), 4), transform_problem(p, 3))
    for code in range(8):
        assert_same_problem(transform_problem(transform_problem(p, code), inverse(code)), p)


def test_transforms():
    assert transforms(20, 30) == (0, 1, 2, 3)
    assert transforms(30, 20) == (0, 1, 2, 3)
    assert transforms(24, 24) == tuple(range(8))


# -- batches ----------------------------------------------------------------------------------


def _batch(problems, codes, rng, fields=True):
    """(x, c, x_expected, c_expected): numpy-built originals and their transformed versions."""
    xs, cs, xe, ce = [], [], [], []
    for p, code in zip(problems, codes, strict=True):
        x = rng.uniform(0, 1, p.shape)
        xs.append(x[None])
        xe.append(transform_design(x, code)[None])
        cs.append(problem_condition(p, fields=fields))
        ce.append(problem_condition(transform_problem(p, code), fields=fields))
    t = lambda a: torch.from_numpy(np.stack(a).astype(np.float32))  # noqa: E731
    return t(xs), t(cs), t(xe), t(ce)


def test_augment_batch_agrees_with_transformed_problems():
    n = 12
    makers = [
        lambda: preset("mbb", n, n, 0.5),
        lambda: preset("cantilever", n, n, 0.4),
        lambda: preset("l-bracket", n, n, 0.4),
        lambda: oblique(n),
    ]
    codes = [0, 1, 2, 3, 4, 5, 6, 7, 5, 7, 4, 6, 1, 3, 0, 2]  # every code, mixed, twice
    problems = [makers[k % 4]() for k in range(len(codes))]
    x, c, x_exp, c_exp = _batch(problems, codes, np.random.default_rng(0))
    x_out, c_out = augment_batch(x, c, torch.tensor(codes), CHANNELS)
    assert x_out.shape == x.shape and c_out.shape == c.shape
    torch.testing.assert_close(x_out, x_exp, rtol=0, atol=0)  # pure moves: exact
    # node averages summed in another order and FE fields on the moved grid: float32 round-off
    torch.testing.assert_close(c_out, c_exp, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(c_out[4:8], c[4:8], atol=1e-3)  # ... and the test can tell
    # base channels only, and no condition at all
    _, c2 = augment_batch(x, c[:, : len(BASE_CHANNELS)], torch.tensor(codes), BASE_CHANNELS)
    torch.testing.assert_close(c2, c_exp[:, : len(BASE_CHANNELS)], rtol=1e-5, atol=1e-6)
    x3, c3 = augment_batch(x, None, torch.tensor(codes), CHANNELS)
    assert c3 is None
    torch.testing.assert_close(x3, x_exp, rtol=0, atol=0)


def test_augment_batch_on_a_wide_grid():
    problems = [preset("mbb", 15, 10, 0.5), oblique(15, 10), preset("michell", 15, 10, 0.3)] * 2
    codes = [3, 1, 2, 0, 2, 1]
    x, c, x_exp, c_exp = _batch(problems, codes, np.random.default_rng(1))
    x_out, c_out = augment_batch(x, c, torch.tensor(codes, dtype=torch.int32), CHANNELS)
    torch.testing.assert_close(x_out, x_exp, rtol=0, atol=0)
    torch.testing.assert_close(c_out, c_exp, rtol=1e-5, atol=1e-6)


def test_augment_batch_refuses_bad_input():
    x = torch.zeros(2, 1, 10, 15)
    c = torch.zeros(2, len(CHANNELS), 10, 15)
    with pytest.raises(ValueError, match="square grid"):
        augment_batch(x, c, torch.tensor([0, 4]), CHANNELS)
    with pytest.raises(ValueError, match="square grid"):
        augment_batch(x, None, torch.tensor([7, 1]), CHANNELS)
    with pytest.raises(ValueError, match=r"0\.\.7"):
        augment_batch(x, c, torch.tensor([0, 8]), CHANNELS)
    with pytest.raises(ValueError, match="shape"):
        augment_batch(x, c, torch.tensor([0, 1, 2]), CHANNELS)
    with pytest.raises(ValueError, match="channels"):
        augment_batch(x, c, torch.tensor([0, 1]), BASE_CHANNELS)
    sq = torch.zeros(2, 1, 6, 6)
    with pytest.raises(ValueError, match="unknown condition channel"):
        augment_batch(sq, torch.zeros(2, 2, 6, 6), torch.tensor([0, 1]), ("fx", "speed"))
    with pytest.raises(ValueError, match="only one of them"):
        augment_batch(sq, torch.zeros(2, 2, 6, 6), torch.tensor([0, 4]), ("fx", "volfrac"))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_augment_batch_on_cuda_matches_cpu():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(64, 1, 16, 16, generator=g)
    c = torch.rand(64, len(CHANNELS), 16, 16, generator=g)
    codes = random_codes(64, 16, 16, g)
    x_cpu, c_cpu = augment_batch(x, c, codes, CHANNELS)
    x_gpu, c_gpu = augment_batch(x.cuda(), c.cuda(), codes.cuda(), CHANNELS)
    assert x_gpu.is_cuda and c_gpu.is_cuda
    torch.testing.assert_close(x_gpu.cpu(), x_cpu, rtol=0, atol=0)
    torch.testing.assert_close(c_gpu.cpu(), c_cpu, rtol=0, atol=0)


def test_random_codes():
    a = random_codes(4000, 16, 16, torch.Generator().manual_seed(5))
    b = random_codes(4000, 16, 16, torch.Generator().manual_seed(5))
    other = random_codes(4000, 16, 16, torch.Generator().manual_seed(6))
    assert a.dtype == torch.long and a.shape == (4000,)
    assert torch.equal(a, b) and not torch.equal(a, other)
    counts = torch.bincount(a, minlength=8)
    assert counts.shape == (8,) and counts.min() > 400 and counts.max() < 600  # 500 expected
    wide = random_codes(4000, 20, 30, torch.Generator().manual_seed(5))
    assert set(wide.tolist()) == {0, 1, 2, 3}
    assert random_codes(3, 8, 8, torch.Generator().manual_seed(0), device="cpu").shape == (3,)
