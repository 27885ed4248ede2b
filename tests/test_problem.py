"""Tests of the `Problem` value: validation, top88 DOF conventions, presets and serialisation."""

from __future__ import annotations

import dataclasses
import io
import itertools
import json
import math
import re

import numpy as np
import pytest

from topovae.solvers import (
    FILTERS,
    KE,
    LINEAR_SOLVERS,
    OPTIMIZERS,
    PRESETS,
    Problem,
    ProblemError,
    SIMPSettings,
    edof_matrix,
    preset,
)

NELX, NELY = 6, 4
NODES = (NELY + 1, NELX + 1)
ELEMS = (NELY, NELX)


def mbb_args(**changes: object) -> dict:
    """Keyword arguments of a valid 6x4 half-MBB problem, with some replaced."""
    fx, fy = np.zeros(NODES, bool), np.zeros(NODES, bool)
    fx[:, 0] = True
    fy[NELY, NELX] = True
    loads = np.zeros((1, 2, *NODES))
    loads[0, 1, 0, 0] = -1.0
    args = {
        "nelx": NELX,
        "nely": NELY,
        "volfrac": 0.5,
        "fixed_x": fx,
        "fixed_y": fy,
        "loads": loads,
    }
    args.update(changes)
    return args


def raises(match: str):
    return pytest.raises(ProblemError, match=re.escape(match))


def mask(*index: object, shape: tuple[int, int] = ELEMS) -> np.ndarray:
    m = np.zeros(shape, bool)
    m[index] = True
    return m


# -- scalars -------------------------------------------------------------------------------------
@pytest.mark.parametrize("volfrac", [0, 1, -0.2, 1.5, 1.0, 0.0])
def test_volfrac_outside_open_unit_interval(volfrac: float) -> None:
    with raises(f"volfrac must be in (0, 1), got {volfrac}"):
        Problem(**mbb_args(volfrac=volfrac))


@pytest.mark.parametrize("volfrac", [math.nan, math.inf, -math.inf, None, "half"])
def test_volfrac_not_a_finite_number(volfrac: object) -> None:
    with pytest.raises(ProblemError, match=r"volfrac must be (a number|finite), got ") as info:
        Problem(**mbb_args(volfrac=volfrac))
    assert str(info.value).endswith(repr(volfrac))
    with pytest.raises(ValueError, match=re.escape(repr(volfrac))):
        Problem(**mbb_args(volfrac=volfrac))


@pytest.mark.parametrize("name", ["nelx", "nely"])
@pytest.mark.parametrize("value", [0, -3, 2.5, 6.0, True, None])
def test_grid_size_must_be_a_positive_integer(name: str, value: object) -> None:
    with raises(f"{name} must be a positive integer, got {value!r}"):
        Problem(**mbb_args(**{name: value}))


@pytest.mark.parametrize(("nelx", "nely"), [(0, 20), (60, -1), (2.5, 3)])
def test_preset_grid_size(nelx: object, nely: object) -> None:
    with pytest.raises(ProblemError, match="must be an integer >= 1"):
        preset("mbb", nelx, nely)


def test_preset_minimum_grid() -> None:
    with raises("nelx must be an integer >= 3, got 2"):
        preset("l-bracket", 2, 5)
    with raises("nely must be an integer >= 2, got 1"):
        preset("bridge", 5, 1)


def test_numpy_integer_grid_is_accepted() -> None:
    p = Problem(**mbb_args(nelx=np.int64(NELX), nely=np.int32(NELY)))
    assert type(p.nelx) is int and type(p.nely) is int
    assert p.shape == ELEMS and p.ndof == 2 * 7 * 5


# -- supports ------------------------------------------------------------------------------------
def supports(fixed_x: list[tuple[int, int]], fixed_y: list[tuple[int, int]]) -> dict:
    """Support arrays from lists of (row, col) nodes."""
    fx, fy = np.zeros(NODES, bool), np.zeros(NODES, bool)
    for i, j in fixed_x:
        fx[i, j] = True
    for i, j in fixed_y:
        fy[i, j] = True
    return {"fixed_x": fx, "fixed_y": fy}


def test_no_supports() -> None:
    with raises("no supports"):
        Problem(**mbb_args(**supports([], [])))


LEFT = [(i, 0) for i in range(NELY + 1)]
BOTTOM = [(NELY, j) for j in range(NELX + 1)]
BL, BR, TL = (NELY, 0), (NELY, NELX), (0, 0)

# Sets of supports that leave an (infinitesimal) rigid-body motion free, and what is free.
RIGID_FREE = {
    "x on the left edge only": (LEFT, [], "translation in y"),
    "y on the bottom edge only": ([], BOTTOM, "translation in x"),
    "y on a vertical line only": ([], LEFT, "translation in x"),
    "x at one node only": ([BL], [], "translation in y"),
    "one pinned node": ([BL], [BL], "rotation"),
    # v fixed along x = 0 and u at one node: rotation about that node is free
    "y on the left edge, x at one node": ([TL], LEFT, "rotation"),
    # u fixed along y = 0 and v at one node: rotation about that node is free
    "x on the bottom edge, y at one node": (BOTTOM, [BR], "rotation"),
    # two y supports on one vertical line + one x support: rotation about (0, y of the x node)
    "two y on a vertical line + one x": ([(2, 3)], [TL, BL], "rotation"),
    "pinned + x roller on the same horizontal line": ([BL, BR], [BL], "rotation"),
}
RIGID_FIXED = {
    "mbb": (LEFT, [BR]),
    "pinned + y roller": ([BL], [BL, BR]),
    "pinned + x roller": ([BL, TL], [BL]),
    "clamped edge": (LEFT, LEFT),
    "x at two heights + y at one node": ([TL, BL], [(2, 4)]),
    "two pinned corners": ([BL, BR], [BL, BR]),
    "y on the bottom edge + x at one node": ([(2, 3)], BOTTOM),
}


@pytest.mark.parametrize("case", RIGID_FREE)
def test_supports_leaving_a_rigid_body_motion_free(case: str) -> None:
    fixed_x, fixed_y, free = RIGID_FREE[case]
    loads = np.zeros((1, 2, *NODES))
    loads[0, :, 2, 5] = 1.0  # node (2, 5) is never fixed in these cases
    with raises(f"the supports leave a rigid-body motion free ({free}"):
        Problem(**mbb_args(loads=loads, **supports(fixed_x, fixed_y)))


@pytest.mark.parametrize("case", RIGID_FIXED)
def test_supports_that_fix_all_rigid_body_motions(case: str) -> None:
    fixed_x, fixed_y = RIGID_FIXED[case]
    loads = np.zeros((1, 2, *NODES))
    loads[0, :, 1, 5] = 1.0
    p = Problem(**mbb_args(loads=loads, **supports(fixed_x, fixed_y)))
    assert p.fixed_dofs().sum() == len(fixed_x) + len(fixed_y)


def stiffness_is_singular(nelx: int, nely: int, fixed: np.ndarray) -> bool:
    """Solid-body stiffness on the free DOFs (dense); singular iff a rigid motion is free."""
    ndof = 2 * (nelx + 1) * (nely + 1)
    k = np.zeros((ndof, ndof))
    for dofs in edof_matrix(nelx, nely):
        k[np.ix_(dofs, dofs)] += KE
    free = ~fixed
    eig = np.linalg.eigvalsh(k[np.ix_(free, free)])
    return bool(eig[0] < 1e-10 * eig[-1])


def test_rigid_body_check_agrees_with_the_stiffness_matrix() -> None:
    """On a 2x2 grid, for many random support sets: ProblemError iff K_ff is singular."""
    rng = np.random.default_rng(0)
    nelx = nely = 2
    nodes = (nely + 1, nelx + 1)
    ndof = 2 * 9
    outcomes = set()
    for _ in range(300):
        fixed = np.zeros(ndof, bool)
        fixed[rng.choice(ndof, size=rng.integers(1, 6), replace=False)] = True
        fx = fixed[0::2].reshape(nodes, order="F")  # top88 order: column-major nodes
        fy = fixed[1::2].reshape(nodes, order="F")
        f = np.zeros(ndof)
        f[np.flatnonzero(~fixed)[0]] = 1.0
        loads = np.stack([f[0::2].reshape(nodes, order="F"), f[1::2].reshape(nodes, order="F")])
        singular = stiffness_is_singular(nelx, nely, fixed)
        try:
            p = Problem(nelx, nely, 0.5, fx, fy, loads)
        except ProblemError as e:
            assert "rigid-body" in str(e)
            assert singular, f"rejected a well-supported problem: {np.flatnonzero(fixed)}"
            outcomes.add("rejected")
        else:
            np.testing.assert_array_equal(p.fixed_dofs(), fixed)
            assert not singular, f"accepted a mechanism: {np.flatnonzero(fixed)}"
            outcomes.add("accepted")
    assert outcomes == {"rejected", "accepted"}


# -- loads ---------------------------------------------------------------------------------------
def test_load_on_fixed_dofs_only() -> None:
    loads = np.zeros((1, 2, *NODES))
    loads[0, 0, 1, 0] = 1.0  # x force on the left edge, where x is fixed
    loads[0, 1, NELY, NELX] = -1.0  # y force on the roller
    with raises("load case 0 acts only on fixed DOFs"):
        Problem(**mbb_args(loads=loads))
    two = np.zeros((2, 2, *NODES))
    two[0, 1, 0, 0] = -1.0
    two[1] = loads[0]
    with raises("load case 1 acts only on fixed DOFs"):
        Problem(**mbb_args(loads=two))


def test_zero_load() -> None:
    with raises("load case 0 is zero"):
        Problem(**mbb_args(loads=np.zeros((1, 2, *NODES))))
    two = np.zeros((2, 2, *NODES))
    two[0, 1, 0, 0] = -1.0
    with raises("load case 1 is zero"):
        Problem(**mbb_args(loads=two))


def test_no_load_case_at_all() -> None:
    """loads of shape (0, 2, nely+1, nelx+1) has no load case: nothing to optimise."""
    with pytest.raises(ProblemError, match="load"):
        Problem(**mbb_args(loads=np.zeros((0, 2, *NODES))))


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_loads(bad: float) -> None:
    loads = mbb_args()["loads"].copy()
    loads[0, 0, 2, 3] = bad
    with raises("loads contains NaN or infinite values"):
        Problem(**mbb_args(loads=loads))


def test_single_case_loads_may_drop_the_case_axis() -> None:
    loads = mbb_args()["loads"]
    p = Problem(**mbb_args(loads=loads[0]))
    assert p.ncases == 1 and p.loads.shape == (1, 2, *NODES)
    np.testing.assert_array_equal(p.loads, loads)


# -- shapes and dtypes ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "value", "shape"),
    [
        ("fixed_x", np.ones(ELEMS, bool), NODES),
        ("fixed_y", np.ones((NELX + 1, NELY + 1), bool), NODES),
        ("loads", np.ones((1, 2, *ELEMS)), (1, 2, *NODES)),
        ("loads", np.ones((1, 3, *NODES)), (1, 2, *NODES)),
        ("loads", np.ones((2, *NODES)).T, (1, 2, *NODES)),
        ("loads", np.ones((1, 1, 2, *NODES)), (1, 2, *NODES)),
        ("loads", np.ones(7), (1, 2, *NODES)),
        ("passive_solid", np.zeros(NODES, bool), ELEMS),
        ("passive_void", np.zeros((NELY,), bool), ELEMS),
    ],
)
def test_wrong_array_shapes(name: str, value: np.ndarray, shape: tuple[int, ...]) -> None:
    got = (1, *value.shape) if name == "loads" and value.ndim == 3 else value.shape
    with raises(f"{name} must have shape {shape}, got {got}"):
        Problem(**mbb_args(**{name: value}))


def test_ragged_loads() -> None:
    with pytest.raises(ProblemError, match="loads"):
        Problem(**mbb_args(loads=[[1.0, 2.0], [3.0]]))


def test_masks_must_be_boolean_and_numeric() -> None:
    fx = mbb_args()["fixed_x"].astype(int)
    fx[0, 0] = 2
    with raises("fixed_x must be a boolean mask (values 0/1)"):
        Problem(**mbb_args(fixed_x=fx))
    with raises("passive_void must be a boolean mask"):
        Problem(**mbb_args(passive_void=np.full(ELEMS, 0.5)))
    with raises("fixed_y must be numeric or boolean"):
        Problem(**mbb_args(fixed_y=np.full(NODES, "a")))
    with raises("passive_solid contains NaN"):
        Problem(**mbb_args(passive_solid=np.full(ELEMS, np.nan)))
    # 0/1 integers and floats are fine and become bool
    p = Problem(**mbb_args(fixed_x=mbb_args()["fixed_x"].astype(float), passive_void=mask(0, 3)))
    assert p.fixed_x.dtype == bool and p.passive_void.dtype == bool
    assert p.passive_solid.dtype == bool and not p.passive_solid.any()


# -- passive masks -------------------------------------------------------------------------------
def test_passive_masks_overlap() -> None:
    with raises("passive_solid and passive_void overlap"):
        Problem(**mbb_args(passive_solid=mask(1, 1), passive_void=mask(slice(0, 2), 1)))


def test_passive_masks_cover_everything() -> None:
    solid = np.zeros(ELEMS, bool)
    solid[:2] = True  # 12 of 24 elements = volfrac
    with raises("the passive masks cover every element"):
        Problem(**mbb_args(passive_solid=solid, passive_void=~solid))
    with raises("the passive masks cover every element"):
        Problem(**mbb_args(volfrac=0.01, passive_void=np.ones(ELEMS, bool)))


def test_passive_solid_exceeding_volfrac() -> None:
    solid = np.zeros(ELEMS, bool)
    solid[:2] = True
    solid[2, 0] = True  # 13 of 24 > 0.5
    with raises("the passive solid region alone fills 0.5417 of the domain, more than volfrac"):
        Problem(**mbb_args(passive_solid=solid))
    solid[2, 0] = False  # exactly volfrac: allowed
    Problem(**mbb_args(passive_solid=solid))


def test_passive_void_leaving_too_little() -> None:
    void = np.ones(ELEMS, bool)  # keep a path from the load (top left) to the roller
    void[:, 0] = void[-1, :] = False  # left column and bottom row: 9 elements
    void[0, 1] = void[1, 1] = False  # leaves 11 of 24 < 0.5
    with raises("volfrac = 0.5 cannot be met: the passive void leaves only 0.4583"):
        Problem(**mbb_args(passive_void=void))
    void[2, 1] = False  # leaves exactly 12: allowed
    Problem(**mbb_args(passive_void=void))


# -- settings ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("rmin", 0.99, "rmin must be >= 1 (in elements), got 0.99"),
        ("rmin", 0, "rmin must be >= 1"),
        ("rmin", math.nan, "rmin must be finite"),
        ("penal", 0.5, "penal must be in [1, 20], got 0.5"),
        ("penal", 1e12, "penal must be in [1, 20], got 1000000000000.0"),
        ("move", 0, "move must be in (0, 1], got 0"),
        ("move", 1.5, "move must be in (0, 1]"),
        ("tol", 0.0, "tol must be > 0"),
        ("max_iter", 0, "max_iter must be a positive integer, got 0"),
        ("max_iter", 2.5, "max_iter must be a positive integer, got 2.5"),
        ("beta_every", True, "beta_every must be a positive integer, got True"),
        ("beta_init", 0, "beta_init must be > 0"),
        ("beta_max", 0.5, "beta_max must be >= beta_init (1.0), got 0.5"),
        ("eta", 1.0, "eta must be in (0, 1), got 1.0"),
        ("filter", "gaussian", "unknown filter 'gaussian'; choose one of: " + ", ".join(FILTERS)),
        ("optimizer", "sgd", "unknown optimizer 'sgd'; choose one of: auto, oc, mma"),
        ("linear_solver", "umfpack", "unknown linear solver 'umfpack'; choose one of: "),
    ],
)
def test_invalid_settings(field: str, value: object, message: str) -> None:
    with raises(message):
        SIMPSettings(**{field: value})
    with raises(message):
        Problem(**mbb_args()).with_settings(**{field: value})
    with raises(message):
        preset("mbb", 12, 4, **{field: value})


def test_choices_are_listed() -> None:
    assert FILTERS == ("sensitivity", "density", "heaviside")
    assert OPTIMIZERS == ("auto", "oc", "mma")
    assert LINEAR_SOLVERS == ("auto", "cholmod", "superlu")
    with raises("choose one of: auto, cholmod, superlu"):
        SIMPSettings(linear_solver="umfpack")


def test_unknown_settings_names() -> None:
    with raises("unknown SIMP settings: foo"):
        preset("mbb", foo=1)
    with raises("unknown SIMP settings: bar, foo"):
        Problem(**mbb_args()).with_settings(foo=1, bar=2)
    with raises("unknown SIMP settings: foo"):
        SIMPSettings.from_dict({"foo": 1, "rmin": 2.0})
    with raises("settings must be a SIMPSettings"):
        Problem(**mbb_args(settings={"rmin": 2.0}))


def test_with_settings_and_replace_validate_and_copy() -> None:
    p = Problem(**mbb_args())
    q = p.with_settings(filter="heaviside", rmin=2.4)
    assert (q.settings.filter, q.settings.rmin) == ("heaviside", 2.4)
    assert p.settings == SIMPSettings()
    with raises("volfrac must be in (0, 1)"):
        p.replace(volfrac=2.0)


# -- top88 conventions ---------------------------------------------------------------------------
def test_mbb_preset_matches_top88_dofs() -> None:
    """top88: fixeddofs = union(1:2:2*(nely+1), 2*(nelx+1)*(nely+1)); F(2, 1) = -1 (1-based)."""
    nelx, nely = 60, 20
    p = preset("mbb", nelx, nely, 0.5)
    fixed = np.union1d(np.arange(1, 2 * (nely + 1) + 1, 2), [2 * (nelx + 1) * (nely + 1)]) - 1
    np.testing.assert_array_equal(np.flatnonzero(p.fixed_dofs()), fixed)
    f = p.force_matrix()
    assert f.shape == (2 * 61 * 21, 1)
    assert f[1, 0] == -1 and np.count_nonzero(f) == 1


def test_two_load_preset_matches_top88_section_5_2() -> None:
    """F = sparse([2*(nely+1)*(nelx+1), 2*nelx*(nely+1)+2], [1 2], [1 -1]); fixeddofs =
    1:2*(nely+1) (1-based)."""
    nelx, nely = 30, 10
    p = preset("two-load", nelx, nely, 0.4)
    assert p.ncases == 2
    f = p.force_matrix()
    expected = np.zeros_like(f)
    expected[2 * (nely + 1) * (nelx + 1) - 1, 0] = 1
    expected[2 * nelx * (nely + 1) + 2 - 1, 1] = -1
    np.testing.assert_array_equal(f, expected)
    np.testing.assert_array_equal(np.flatnonzero(p.fixed_dofs()), np.arange(2 * (nely + 1)))


# -- presets -------------------------------------------------------------------------------------
def test_unknown_preset_lists_the_names() -> None:
    with pytest.raises(ProblemError) as info:
        preset("nope")
    message = str(info.value)
    assert "'nope'" in message
    for name in PRESETS:
        assert name in message


@pytest.mark.parametrize("name", PRESETS)
def test_presets_build_with_defaults(name: str) -> None:
    p = preset(name)
    assert p.name == name
    assert PRESETS[name].description
    assert f"{p.nelx}x{p.nely}" in PRESETS[name].description
    assert f"vf {p.volfrac}" in PRESETS[name].description
    q = preset(name, 24, 12, 0.45, rmin=2.0)
    assert (q.nelx, q.nely, q.volfrac, q.settings.rmin) == (24, 12, 0.45, 2.0)


# -- serialisation and immutability --------------------------------------------------------------
def assert_same_problem(a: Problem, b: Problem) -> None:
    assert a.metadata() == b.metadata()
    arrays_a, arrays_b = a.to_arrays(), b.to_arrays()
    assert arrays_a.keys() == arrays_b.keys()
    for k in arrays_a:
        assert arrays_a[k].dtype == arrays_b[k].dtype, k
        np.testing.assert_array_equal(arrays_a[k], arrays_b[k], err_msg=k)
    assert a.settings == b.settings
    assert repr(a) == repr(b)


ROUND_TRIP = [
    *[(name, {}) for name in PRESETS],
    ("mbb", {"filter": "heaviside", "rmin": 2.4, "optimizer": "mma", "max_iter": 77}),
    ("two-load", {"linear_solver": "superlu", "penal": 3.5, "eta": 0.4, "beta_max": 16}),
    ("bridge", {"nelx": 17, "nely": 9, "volfrac": 0.37123456789, "tol": 1e-3}),
]


@pytest.mark.parametrize(("name", "settings"), ROUND_TRIP)
def test_round_trip(name: str, settings: dict, tmp_path) -> None:
    p = preset(name, **settings)
    meta = json.dumps(p.metadata())
    assert_same_problem(Problem.from_arrays(p.to_arrays(), meta), p)
    assert_same_problem(Problem.from_arrays(p.to_arrays(), json.loads(meta)), p)
    # through an .npz file, as a data set would store it
    buf = io.BytesIO()
    np.savez(buf, **p.to_arrays())
    buf.seek(0)
    with np.load(buf) as stored:
        assert_same_problem(Problem.from_arrays(dict(stored), meta), p)
    if hasattr(Problem, "save"):
        p.save(tmp_path / "p.npz")
        assert_same_problem(Problem.load(tmp_path / "p.npz"), p)


def test_from_arrays_needs_the_required_arrays() -> None:
    p = preset("mbb", 12, 4)
    arrays = p.to_arrays()
    del arrays["loads"]
    with raises("missing problem arrays: loads"):
        Problem.from_arrays(arrays, p.metadata())
    arrays = {k: v for k, v in p.to_arrays().items() if not k.startswith("passive")}
    assert_same_problem(Problem.from_arrays(arrays, p.metadata()), p)


@pytest.mark.parametrize("name", ["l-bracket", "bridge"])
def test_arrays_are_read_only_copies(name: str) -> None:
    fx, fy = np.zeros(NODES, bool), np.zeros(NODES, bool)
    fx[:, 0] = fy[:, 0] = True
    loads = np.zeros((1, 2, *NODES))
    loads[0, 1, 2, NELX] = -1.0
    p = Problem(NELX, NELY, 0.5, fx, fy, loads)
    fx[:] = False
    loads[:] = 0.0
    assert p.fixed_x[:, 0].all() and p.loads[0, 1, 2, NELX] == -1.0  # inputs were copied
    for problem in (p, preset(name, 20, 10)):
        for key, array in problem.to_arrays().items():
            assert not array.flags.writeable, key
            with pytest.raises(ValueError, match="read-only"):
                array[(0,) * array.ndim] = 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.volfrac = 0.3  # type: ignore[misc]


def test_passive_masks_of_presets() -> None:
    lb = preset("l-bracket", 10, 10, 0.4)
    expected = np.zeros((10, 10), bool)
    expected[:6, 4:] = True  # the upper-right 60 % x 60 % block
    np.testing.assert_array_equal(lb.passive_void, expected)
    br = preset("bridge", 12, 6, 0.3)
    np.testing.assert_array_equal(br.passive_solid, mask(0, slice(None), shape=(6, 12)))
    np.testing.assert_allclose(br.loads.sum(), -1.0)  # total load 1, downward
    for name, (nx, ny) in itertools.product(PRESETS, [(12, 6)]):
        p = preset(name, nx, ny)
        assert not (p.passive_solid & p.passive_void).any()


# -- load paths through the passive void ----------------------------------------------------------
def test_void_enclosing_a_load_is_refused() -> None:
    void = np.zeros(ELEMS, bool)
    void[1, :2] = True  # a wall under the top-left load, from the left edge...
    void[0, 1] = True  # ...closing it in: only element (0, 0) is left around the load
    with raises("the passive void cuts 1 loaded node(s) off"):
        Problem(**mbb_args(passive_void=void))


def test_corner_contact_is_a_hinge_not_a_load_path() -> None:
    # the load's element (0, 0) touches the rest only at a corner: it can rotate about it
    void = np.zeros(ELEMS, bool)
    void[0, 1] = void[1, 0] = True
    fx = np.zeros(NODES, bool)
    fx[2:, 0] = True  # the left edge below the hinge holds x; the roller holds y
    with raises("the passive void cuts 1 loaded node(s) off"):
        Problem(**mbb_args(passive_void=void, fixed_x=fx))
    void[1, 0] = False  # an edge contact is a connection
    Problem(**mbb_args(passive_void=void, fixed_x=fx))


def test_supports_cut_off_by_the_void_do_not_count() -> None:
    # a void column splits the beam: the loaded left half keeps only its x-fixed edge
    void = np.zeros(ELEMS, bool)
    void[:, 3] = True
    with raises("the passive void cuts 1 loaded node(s) off"):
        Problem(**mbb_args(passive_void=void, volfrac=0.3))


@pytest.mark.parametrize("name", ["mbb", "cantilever"])
def test_a_grid_beyond_the_machines_memory_is_refused_before_its_arrays_exist(name):
    from topovae.solvers import preset

    with pytest.raises(ProblemError, match=r"a 100000x100000 grid .* GiB to solve; this machine"):
        preset(name, 100_000, 100_000)  # its boolean support masks alone would take 20 GB
