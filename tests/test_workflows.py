"""The workflows library API: the judge, the latent decoder, latent search, exploration and
evaluation (`topovae.workflows`).

The judge is checked on hand-made designs whose answers are known (floating islands, hinges,
bare loads, greyness, volume) and against the FE solver `topovae.solvers.compliance`; the
compliance gradient against finite differences. The model workflows use one 12x12 dataset of 40
problems and two tiny models (a CVAE and an unconditional VAE, latent 4, trained 2 epochs) built
once per session; everything runs on the CPU.
"""

import html
import json

import numpy as np
import pytest
import torch
from conftest import METRIC_KEYS

from topovae.datasets import TopologyDataset
from topovae.solvers import E0, EMIN, Problem, compliance, preset
from topovae.workflows import (
    SCORE_KEYS,
    VARIANTS,
    ComplianceOracle,
    JudgeError,
    LatentDecoder,
    WorkflowError,
    binarize,
    condition_of,
    evaluate,
    greyness,
    interpolate,
    markdown_report,
    prior_samples,
    save_scored_grid,
    score,
    search,
    slerp,
    traverse,
    write_report,
)
from topovae.workflows._latent import GUIDE_STEPS

H = W = 12  # grid of the session dataset and models
LATENT = 4
PNG = b"\x89PNG\r\n\x1a\n"


# -- fixtures and helpers ----------------------------------------------------------------------
@pytest.fixture(scope="session")
def cantilever():
    return preset("cantilever", W, H, 0.4)


def solid_count(problem: Problem) -> int:
    return round(problem.volfrac * problem.nelx * problem.nely)


def exact_volfrac(n_solid: int, nelx: int, nely: int) -> float:
    """The volume fraction whose binarisation keeps exactly ``n_solid`` elements."""
    vf = n_solid / (nelx * nely)
    assert round(vf * nelx * nely) == n_solid
    return vf


def top_k(density: np.ndarray, k: int) -> np.ndarray:
    """0/1 design of the ``k`` highest densities (for densities without ties)."""
    flat = density.ravel()
    assert np.unique(flat).size == flat.size, "top_k needs distinct densities"
    out = np.zeros(flat.size)
    out[np.argsort(-flat)[:k]] = 1.0
    return out.reshape(density.shape)


def cantilever_bar(nelx=12, nely=8):
    """Cantilever design: a solid bar (element rows nely/2 - 1 and nely/2, every column) joining
    the clamped left edge to the load at the middle of the right edge."""
    design = np.zeros((nely, nelx))
    design[nely // 2 - 1 : nely // 2 + 1, :] = 1.0
    return design


def with_volume_of(design: np.ndarray, name: str, **kw) -> Problem:
    """The preset ``name`` on the design's grid with a volume fraction equal to its volume."""
    nely, nelx = design.shape
    return preset(name, nelx, nely, exact_volfrac(int(design.sum()), nelx, nely), **kw)


# -- 1. the judge: binarisation ------------------------------------------------------------------
@pytest.mark.parametrize("name, nelx, nely, vf", [
    ("cantilever", 12, 8, 0.4), ("l-bracket", 10, 10, 0.35), ("bridge", 12, 6, 0.3),
    ("mbb", 9, 5, 0.37),
])  # fmt: skip
def test_binarize_meets_the_volume_fraction_and_keeps_the_highest_densities(name, nelx, nely, vf):
    p = preset(name, nelx, nely, vf)
    rng = np.random.default_rng(3)
    for _ in range(3):
        density = rng.random((nely, nelx))
        b = binarize(density, p)
        assert set(np.unique(b)) <= {0.0, 1.0}
        assert b.mean() == round(vf * nelx * nely) / (nelx * nely)
        assert np.all(b[p.passive_solid] == 1) and np.all(b[p.passive_void] == 0)
        free = ~(p.passive_solid | p.passive_void)
        solid, void = free & (b == 1), free & (b == 0)
        assert density[solid].min() >= density[void].max()  # a threshold, not any k elements


def test_binarize_clips_before_ranking_and_breaks_ties_by_position():
    p = preset("cantilever", 6, 4, 0.25)  # keeps 6 of 24 elements
    b = binarize(np.zeros((4, 6)), p)  # all tied: the first 6 elements in row-major order
    assert b.ravel().tolist() == [1.0] * 6 + [0.0] * 18
    density = np.zeros((4, 6))
    density[3, :] = 5.0  # clipped to 1: still the highest, but so are the 1.0 elements below
    density[2, :] = 1.0
    b = binarize(density, p)
    assert b[2:].sum() == 6 and b[2].sum() == 6  # ties (1 and 5 -> 1) by position: row 2 first


def test_binarize_does_not_depend_on_the_memory_layout_of_the_passive_masks():
    p = preset("cantilever", 6, 4, 0.5)
    transposed = p.replace(passive_solid=np.zeros((6, 4), bool).T)  # same mask, F-ordered
    np.testing.assert_array_equal(transposed.passive_solid, p.passive_solid)
    density = np.random.default_rng(0).random((4, 6))
    np.testing.assert_array_equal(binarize(density, transposed), binarize(density, p))


# -- 1. the judge: floating material, bare loads ---------------------------------------------------
def test_a_separate_island_is_floating_material():
    design = cantilever_bar()  # rows 3-4 of 8, 24 elements
    design[6:8, 5:7] = 1.0  # a 2x2 island below it, one row of void between
    p = with_volume_of(design, "cantilever")
    s = score(design, p)
    assert s["floating"][0] == pytest.approx(4 / 28, abs=1e-15)
    assert s["bare_loads"][0] == 0
    assert s["volume"][0] == pytest.approx(p.volfrac) and s["vfe"][0] < 1e-12

    attached = cantilever_bar()
    attached[5:7, 5:7] = 1.0  # the same island moved up by one row shares an edge with the bar
    assert score(attached, with_volume_of(attached, "cantilever"))["floating"][0] == 0


def test_material_touching_only_a_corner_is_disconnected():
    """MBB: load at the top-left node, left edge on rollers. A 2x2 block in the top-left corner
    carries the load; a 2x2 block meeting it only at a corner node hangs on a hinge."""
    design = np.zeros((4, 8))
    design[0:2, 0:2] = 1.0
    design[2:4, 2:4] = 1.0  # shares node (2, 2) with the block and no edge
    s = score(design, with_volume_of(design, "mbb"))
    assert s["floating"][0] == pytest.approx(0.5)

    edge = np.zeros((4, 8))
    edge[0:2, 0:2] = 1.0
    edge[2:4, 1:3] = 1.0  # shares the edge below element (1, 1)
    assert score(edge, with_volume_of(edge, "mbb"))["floating"][0] == 0


def test_material_that_touches_a_support_but_no_load_is_floating():
    design = np.zeros((8, 12))
    design[0:2, 0:4] = 1.0  # on the clamped left edge, far from the load mid right
    design[3:5, 6:12] = 1.0  # touches the load, not the supports
    s = score(design, with_volume_of(design, "cantilever"))
    assert s["floating"][0] == 1.0  # no component carries the load: everything floats
    assert s["bare_loads"][0] == 0


def test_bare_loads_counts_loaded_nodes_without_solid_around_them():
    p2 = preset("two-load", 10, 6, 0.2)  # loads at the top-right and bottom-right corner nodes
    design = np.zeros((6, 10))
    design[:, 0:2] = 1.0  # 12 elements at the clamped edge: both loads bare
    assert design.sum() == solid_count(p2)
    assert score(design, p2)["bare_loads"][0] == 2
    design[:, 1] = 0.0
    design[0, 4:10] = 1.0  # the top row reaches the top-right corner: one load is covered
    assert design.sum() == solid_count(p2)
    assert score(design, p2)["bare_loads"][0] == 1

    short = cantilever_bar()
    short[:, 11] = 0.0  # the bar stops one element short of the loaded node
    s = score(short, with_volume_of(short, "cantilever"))
    assert s["bare_loads"][0] == 1
    assert s["floating"][0] == 1.0


# -- 1. the judge: compliance --------------------------------------------------------------------
def test_compliance_of_a_full_solid_and_a_uniform_design():
    """Full solid: the FE value. Uniform rho: K scales by E(rho), so C = C_solid / E(rho)."""
    p = preset("cantilever", 12, 6, 0.4)
    c_solid = compliance(np.ones(p.shape), p)
    s = score(np.stack([np.ones(p.shape), np.full(p.shape, 0.5)]), p)
    assert s["compliance"][0] == pytest.approx(c_solid, rel=1e-12)
    e_half = EMIN + 0.5**p.settings.penal * (E0 - EMIN)
    assert s["compliance"][1] == pytest.approx(c_solid / e_half, rel=1e-9)
    assert s["greyness"][0] == 0 and s["greyness"][1] == pytest.approx(1.0)


def test_a_black_and_white_design_at_the_target_volume_is_its_own_binarisation():
    design = cantilever_bar()
    design[0, 0:4] = 1.0
    p = with_volume_of(design, "cantilever")
    s = score(design, p)
    assert s["compliance"][0] == pytest.approx(compliance(design, p), rel=1e-12)
    assert s["compliance_binary"][0] == s["compliance"][0]
    assert s["greyness"][0] == 0


def test_compliance_error_against_a_reference():
    p = preset("cantilever", 12, 8, 0.4)
    rng = np.random.default_rng(7)
    designs = rng.uniform(0.05, 1.0, (2, *p.shape))
    reference = rng.uniform(0.05, 1.0, (2, *p.shape))
    s = score(designs, p, reference=reference)
    k = solid_count(p)
    for j in range(2):
        c, c_ref = compliance(designs[j], p), compliance(reference[j], p)
        assert s["ce"][j] == pytest.approx(c / c_ref - 1, rel=1e-9, abs=1e-12)
        cb = compliance(top_k(designs[j], k), p)
        cb_ref = compliance(top_k(reference[j], k), p)
        assert s["compliance_binary"][j] == pytest.approx(cb, rel=1e-9)
        assert s["ce_binary"][j] == pytest.approx(cb / cb_ref - 1, rel=1e-9, abs=1e-12)
    same = score(designs, p, reference=designs)
    assert np.all(same["ce"] == 0) and np.all(same["ce_binary"] == 0)
    assert np.all(np.isnan(score(designs, p)["ce"]))  # no reference, no CE


def test_compliance_oracle_gradient_matches_central_finite_differences():
    p = preset("cantilever", 8, 5, 0.4)
    rng = np.random.default_rng(11)
    rho = rng.uniform(0.2, 0.9, p.shape)
    oracle = ComplianceOracle()
    c, dc = oracle.gradient(rho[None], [p])
    assert c[0] == pytest.approx(compliance(rho, p), rel=1e-12)
    assert np.all(dc < 0)  # more material is always stiffer
    h = 1e-5
    for flat in rng.choice(rho.size, 5, replace=False):
        i, j = np.unravel_index(flat, rho.shape)
        up, down = rho.copy(), rho.copy()
        up[i, j] += h
        down[i, j] -= h
        fd = (compliance(up, p) - compliance(down, p)) / (2 * h)
        assert dc[0, i, j] == pytest.approx(fd, rel=1e-5), (i, j)


# -- 1. the judge: volume, greyness, passive regions, refusals ------------------------------------
def test_volume_greyness_and_vfe_with_a_passive_solid_deck():
    p = preset("bridge", 12, 6, 0.3)  # the top row is passive solid
    n, deck = 72, 12
    s = score(np.stack([np.full(p.shape, 0.2), np.full(p.shape, 0.5), np.zeros(p.shape)]), p)
    volume = np.array([deck + 0.2 * (n - deck), deck + 0.5 * (n - deck), deck]) / n
    np.testing.assert_allclose(s["volume"], volume, rtol=1e-12)
    np.testing.assert_allclose(s["vfe"], np.abs(volume - 0.3) / 0.3, rtol=1e-12)
    # greyness over the design domain only: the deck is 1 but does not count
    np.testing.assert_allclose(s["greyness"], [4 * 0.2 * 0.8, 1.0, 0.0], rtol=1e-12)
    assert greyness(np.full(p.shape, 0.5), p) == pytest.approx(1.0)


def test_score_broadcasts_one_problem_and_returns_every_key():
    p = preset("cantilever", 8, 4, 0.5)
    designs = np.random.default_rng(0).random((3, 4, 8))
    s = score(designs, p)
    assert set(s) == set(SCORE_KEYS)
    assert all(v.shape == (3,) for v in s.values())
    np.testing.assert_array_equal(s["compliance"], score(designs, [p, p, p])["compliance"])
    assert score(designs[0], p)["compliance"].shape == (1,)


@pytest.mark.parametrize("designs, n_problems, fragment", [
    (np.ones((2, 4, 8)), 3, "one problem each"),
    (np.ones((1, 5, 8)), 1, "cannot be judged"),
    (np.full((1, 4, 8), np.nan), 1, "finite"),
    (np.ones(8), 1, "(B, H, W)"),
])  # fmt: skip
def test_score_refuses_designs_it_cannot_judge(designs, n_problems, fragment):
    p = preset("cantilever", 8, 4, 0.5)
    with pytest.raises(JudgeError) as e:
        score(designs, [p] * n_problems)
    assert fragment in str(e.value)


# -- 2. the latent decoder -------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["cantilever", "l-bracket", "bridge"])
def test_projected_designs_meet_the_volume_fraction(cvae, name):
    p = preset(name, W, H, 0.35)
    dec = LatentDecoder(cvae, p, device="cpu")
    z = torch.randn(5, LATENT, generator=torch.Generator().manual_seed(0)) * 2
    rho = dec.numpy(z, project=True)
    assert rho.shape == (5, H, W) and rho.dtype == np.float64
    np.testing.assert_allclose(rho.mean(axis=(1, 2)), 0.35, atol=1e-6)
    assert np.all(rho[:, p.passive_solid] == 1) and np.all(rho[:, p.passive_void] == 0)
    free = rho[:, ~(p.passive_solid | p.passive_void)]
    assert np.all((free > 0) & (free < 1))
    raw = dec.numpy(z, project=False)  # without the projection the volume is the model's own
    assert np.abs(raw.mean(axis=(1, 2)) - 0.35).max() > 1e-3


@pytest.mark.parametrize("weights", ["positive", "signed"])
def test_projected_designs_are_differentiable_in_z(cvae, cantilever, weights):
    """A directional derivative of sum(w * rho(z)) by autograd equals central differences. With
    positive weights most of it comes from the volume shift: a projection whose shift were held
    fixed in the backward pass would even get its sign wrong."""
    dec = LatentDecoder(cvae, cantilever, device="cpu")
    g = torch.Generator().manual_seed(2)
    z0 = torch.randn(3, LATENT, generator=g)
    v = torch.randn(3, LATENT, generator=g)
    draw = torch.rand if weights == "positive" else torch.randn
    w = draw(3, H, W, generator=g, dtype=torch.float64)

    def f(z):
        return (w * dec.designs(z, project=True)).sum()

    z = z0.clone().requires_grad_(True)
    f(z).backward()
    analytic = float((z.grad * v).sum())
    h = 3e-2  # the model is float32: a step well above its rounding
    with torch.no_grad():
        fd = float(f(z0 + h * v) - f(z0 - h * v)) / (2 * h)
    assert abs(fd) > 1e-3, "the test needs a decoder that depends on z"
    assert analytic == pytest.approx(fd, rel=5e-3)


def test_decoder_refuses_problems_the_model_cannot_use(cvae, vae):
    with pytest.raises(WorkflowError, match="one load case"):
        LatentDecoder(cvae, preset("two-load", W, H, 0.4))
    with pytest.raises(WorkflowError, match="16x12"):
        LatentDecoder(vae, preset("cantilever", 16, 12, 0.4))
    with pytest.raises(WorkflowError, match="cvae"):
        LatentDecoder(cvae, None)
    c = condition_of(cvae, preset("cantilever", W, H, 0.4))
    assert tuple(c.shape) == (cvae.config.cond_channels, H, W)
    assert float(c[0, 0, 0]) == pytest.approx(0.4)  # the volume fraction channel


def test_an_unconditional_model_decodes_without_a_problem(vae):
    dec = LatentDecoder(vae, None, device="cpu")
    rho = dec.numpy(torch.zeros(2, LATENT))
    assert rho.shape == (2, H, W) and np.all((rho >= 0) & (rho <= 1))


# -- 3. latent search ------------------------------------------------------------------------------
def test_gradient_search_lowers_the_compliance(cvae, cantilever):
    r = search(cvae, cantilever, method="gradient", budget=48, starts=4, lr=0.3, device="cpu")
    steps = r.history.reshape(-1, 4)  # one row of 4 starts per Adam step
    assert steps.mean(axis=1)[-1] < steps.mean(axis=1)[0]
    assert r.best_so_far[-1] < r.history[0]


@pytest.mark.parametrize("method, budget", [
    ("random", 1), ("random", 13), ("random", 70),  # random draws batches of at most 64
    ("cmaes", 1), ("cmaes", 13), ("cmaes", 21),  # generations of 8: the budget ends inside one
    ("gradient", 1), ("gradient", 13), ("gradient", 70),  # steps of 8 starts, then the rest
])  # fmt: skip
def test_search_spends_exactly_its_budget(cvae, cantilever, method, budget):
    r = search(cvae, cantilever, method=method, budget=budget, seed=0, device="cpu")
    assert r.evaluations == budget
    assert np.all(np.isfinite(r.history))


def test_search_result_is_the_best_evaluated_design(cvae, cantilever):
    reference = np.full(cantilever.shape, 0.4)
    r = search(cvae, cantilever, method="random", budget=10, seed=1, reference=reference,
               device="cpu")  # fmt: skip
    assert r.compliance == r.history.min() == r.best_so_far[-1]
    assert np.all(np.diff(r.best_so_far) <= 0)
    assert r.density.shape == cantilever.shape and r.z.shape == (LATENT,)
    assert r.density.mean() == pytest.approx(cantilever.volfrac, abs=1e-6)
    assert r.compliance == pytest.approx(compliance(r.density, cantilever), rel=1e-9)
    # the best latent vector decodes to the best design
    again = LatentDecoder(cvae, cantilever, device="cpu").numpy(torch.tensor(r.z[None]), True)
    np.testing.assert_allclose(again[0], r.density, atol=1e-9)
    ce = r.compliance / compliance(reference, cantilever) - 1
    assert r.score["ce"][0] == pytest.approx(ce, rel=1e-9)
    summary = json.loads(json.dumps(r.summary()))
    assert summary["evaluations"] == 10 and summary["polish_iterations"] is None


@pytest.mark.parametrize("method", ["random", "cmaes", "gradient"])
def test_search_is_reproducible_by_seed(cvae, cantilever, method):
    def run(seed):
        return search(cvae, cantilever, method=method, budget=9, seed=seed, starts=3,
                      device="cpu").history  # fmt: skip

    first = run(0)
    np.testing.assert_array_equal(run(0), first)
    assert not np.array_equal(run(1), first)


@pytest.mark.parametrize("budget", [0, -3, 2.5, True, "12"])
def test_search_refuses_a_budget_that_is_not_a_positive_integer(cvae, cantilever, budget):
    with pytest.raises(WorkflowError, match="--budget") as e:
        search(cvae, cantilever, method="random", budget=budget, device="cpu")
    assert f"got {budget!r}" in str(e.value)


def test_search_refuses_unknown_methods_and_bad_options(cvae, cantilever):
    with pytest.raises(WorkflowError, match="'nope'"):
        search(cvae, cantilever, method="nope", budget=4)
    with pytest.raises(WorkflowError, match="-1"):
        search(cvae, cantilever, method="random", budget=4, polish=-1)
    with pytest.raises(WorkflowError, match="--starts"):
        search(cvae, cantilever, method="gradient", budget=4, starts=0)
    with pytest.raises(WorkflowError, match="one load case"):
        search(cvae, preset("two-load", W, H, 0.4), method="random", budget=4)


def test_search_polish_runs_at_most_that_many_simp_iterations(cvae, cantilever):
    r = search(cvae, cantilever, method="cmaes", budget=8, polish=2, device="cpu")
    assert r.polished is not None and 1 <= r.polished.iterations <= 2
    assert set(r.polished_score) == set(SCORE_KEYS)
    c = compliance(r.polished.density, cantilever)
    assert r.polished_score["compliance"][0] == pytest.approx(c, rel=1e-9)
    assert r.polished_score["compliance"][0] == pytest.approx(r.polished.compliance, rel=1e-9)
    assert r.summary()["polish_iterations"] == r.polished.iterations
    assert search(cvae, cantilever, method="random", budget=2).polished is None


# -- 4. explore ------------------------------------------------------------------------------------
def test_prior_samples_shape_range_and_seed(cvae, vae, cantilever):
    a = prior_samples(cvae, 3, cantilever, seed=0, device="cpu")
    assert a.shape == (3, H, W) and np.all((a >= 0) & (a <= 1))
    np.testing.assert_array_equal(prior_samples(cvae, 3, cantilever, seed=0, device="cpu"), a)
    assert not np.array_equal(prior_samples(cvae, 3, cantilever, seed=1, device="cpu"), a)
    assert prior_samples(vae, 2, None, seed=0, device="cpu").shape == (2, H, W)
    with pytest.raises(WorkflowError, match="got 0"):
        prior_samples(cvae, 0, cantilever)


def test_slerp_ends_norms_and_angles():
    g = torch.Generator().manual_seed(0)
    z0, z1 = (
        torch.randn(6, generator=g, dtype=torch.float64),
        torch.randn(6, generator=g, dtype=torch.float64),
    )
    t = torch.linspace(0, 1, 7, dtype=torch.float64)
    path = slerp(z0, z1, t)
    assert path.shape == (7, 6)
    torch.testing.assert_close(path[0], z0)
    torch.testing.assert_close(path[-1], z1)

    z1 = z1 / z1.norm() * z0.norm()  # equal norms: the path stays on their sphere
    path = slerp(z0, z1, t)
    torch.testing.assert_close(path.norm(dim=1), torch.full((7,), float(z0.norm())).double())
    omega = torch.arccos(torch.dot(z0, z1) / z0.norm() ** 2)
    angle = torch.arccos(torch.clamp(path @ z0 / (path.norm(dim=1) * z0.norm()), -1, 1))
    torch.testing.assert_close(angle, t * omega, atol=1e-6, rtol=0)  # constant angular speed

    a, b = torch.tensor([3.0, 0.0]), torch.tensor([0.0, 1.0])  # orthogonal, norms 3 and 1
    half = slerp(a, b, torch.tensor([0.5]))[0]
    torch.testing.assert_close(half, torch.tensor([3.0, 1.0]) * np.sin(np.pi / 4))

    par = slerp(a, 2 * a, torch.tensor([0.0, 0.25, 1.0]))  # parallel: linear
    torch.testing.assert_close(par, torch.stack([a, 1.25 * a, 2 * a]))


@pytest.mark.parametrize("method", ["linear", "slerp"])
def test_interpolation_ends_decode_the_two_encodings(cvae, data, cantilever, method):
    ds = TopologyDataset(data, "test")
    a, b = ds[0]["density"][0].numpy(), ds[1]["density"][0].numpy()
    path = interpolate(cvae, a, b, steps=5, method=method, problem=cantilever, device="cpu")
    assert path.shape == (5, H, W)
    dec = LatentDecoder(cvae, cantilever, device="cpu")
    ends = dec.numpy(dec.encode(np.stack([a, b])))
    np.testing.assert_allclose(path[[0, -1]], ends, atol=1e-6)
    assert not np.allclose(path[2], ends[0], atol=1e-6)

    # each end under its own condition: the path's ends are decoded under those conditions
    ca, cb = ds[0]["condition"].numpy(), ds[1]["condition"].numpy()
    path = interpolate(cvae, a, b, steps=3, method=method, conditions=(ca, cb), device="cpu")
    free = LatentDecoder(cvae, None, device="cpu", explicit_conditions=True)
    for design, cond, end in ((a, ca, 0), (b, cb, -1)):
        c = torch.from_numpy(cond)[None]
        expected = free.numpy(free.encode(design[None], c), c=c)[0]
        np.testing.assert_allclose(path[end], expected, atol=1e-6)


def test_interpolation_refusals(cvae, vae, cantilever):
    x = np.zeros((H, W))
    with pytest.raises(WorkflowError, match="'cubic'"):
        interpolate(vae, x, x, method="cubic")
    with pytest.raises(WorkflowError, match="--steps"):
        interpolate(vae, x, x, steps=1)
    with pytest.raises(WorkflowError, match="cvae"):
        interpolate(cvae, x, x)
    assert interpolate(vae, x, x, steps=3, device="cpu").shape == (3, H, W)


def test_traverse_moves_one_latent_dimension(cvae, cantilever):
    values = np.array([-2.0, 0.0, 2.0])
    out = traverse(cvae, 1, values, cantilever, device="cpu")
    assert out.shape == (3, H, W)
    dec = LatentDecoder(cvae, cantilever, device="cpu")
    z = torch.zeros(3, LATENT)
    z[:, 1] = torch.tensor(values)
    np.testing.assert_allclose(out, dec.numpy(z), atol=1e-7)
    base = np.array([0.5, -1.0, 0.25, 1.5], np.float32)
    out = traverse(cvae, 3, np.array([1.5]), cantilever, base=base, device="cpu")
    np.testing.assert_allclose(out[0], dec.numpy(torch.from_numpy(base[None]))[0], atol=1e-7)


@pytest.mark.parametrize("dim", [-1, LATENT, 10])
def test_traverse_refuses_a_dimension_the_model_lacks(cvae, cantilever, dim):
    with pytest.raises(WorkflowError, match=f"got {dim}") as e:
        traverse(cvae, dim, np.zeros(2), cantilever)
    assert f"[0, {LATENT - 1}]" in str(e.value)


def test_save_scored_grid_writes_a_png_and_returns_the_scores(cvae, cantilever, tmp_path):
    designs = prior_samples(cvae, 2, cantilever, device="cpu")
    path, s = save_scored_grid(designs, cantilever, tmp_path / "g.png", ["a", "b"],
                               reference=np.full(cantilever.shape, 0.4))  # fmt: skip
    assert path.read_bytes().startswith(PNG)
    np.testing.assert_allclose(s["compliance"], [compliance(d, cantilever) for d in designs],
                               rtol=1e-9)  # fmt: skip
    path, s = save_scored_grid(designs, None, tmp_path / "n.png")
    assert s is None and path.read_bytes().startswith(PNG)


# -- 5. evaluate -------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def report(cvae, data):
    return evaluate(cvae, data, "test", k=2, polish=2, limit=3, device="cpu")


def test_evaluate_reports_every_metric_of_every_variant(report):
    assert {"first", "best", "polished"} <= set(VARIANTS) == set(report["metrics"])
    for v in VARIANTS:
        m = report["metrics"][v]
        assert set(METRIC_KEYS) <= set(m), set(METRIC_KEYS) - set(m)
        assert m["n"] == 3
        assert all(m[key] is not None and np.isfinite(m[key]) for key in METRIC_KEYS), (v, m)
        for rate in ("ce_under_1pct", "ce_under_5pct", "pass_rate", "floating_rate",
                     "load_disrespect_rate"):  # fmt: skip
            assert 0 <= m[rate] <= 1
    assert report["problems"] == len(report["per_problem"]) == 3 and report["skipped"] == []
    assert (report["k"], report["polish_iterations"]) == (2, 2)
    assert set(report["novelty"]) == {"best_mean", "simp_mean"}
    assert all(0 <= x <= 1 for x in report["novelty"].values())


def test_evaluate_metrics_summarise_the_per_problem_rows(report):
    rows = report["per_problem"]
    for v in VARIANTS:
        m = report["metrics"][v]
        ce = np.array([r[f"{v}_ce"] for r in rows])
        ceb = np.array([r[f"{v}_ce_binary"] for r in rows])
        assert m["ce_mean"] == pytest.approx(ce.mean())
        assert m["ce_median"] == pytest.approx(np.median(ce))
        assert m["ce_binary_mean"] == pytest.approx(ceb.mean())
        assert m["pass_rate"] == pytest.approx(np.mean(ce < 1))
        assert m["ce_under_5pct"] == pytest.approx(np.mean(ce < 0.05))
        assert m["floating_rate"] == pytest.approx(np.mean([r[f"{v}_floating"] > 0 for r in rows]))
        bare = [r[f"{v}_bare_loads"] > 0 for r in rows]
        assert m["load_disrespect_rate"] == pytest.approx(np.mean(bare))


def test_evaluate_compares_with_the_simp_designs_of_the_split(report, data):
    """The rows' SIMP compliances are the FE compliances of the stored designs, and every CE is
    relative to them; best of k never has a worse binarised compliance than the first sample."""
    ds = TopologyDataset(data, "test")
    for k, row in enumerate(report["per_problem"]):
        assert row["index"] == int(ds[k]["index"])
        p = ds.problem(k)
        simp = ds[k]["density"][0].numpy().astype(np.float64)
        c_simp = compliance(simp, p)
        assert row["simp_compliance"] == pytest.approx(c_simp, rel=1e-8)
        assert row["volfrac"] == pytest.approx(p.volfrac)
        for v in VARIANTS:
            assert row[f"{v}_ce"] == pytest.approx(row[f"{v}_compliance"] / c_simp - 1, rel=1e-8)
        assert row["best_compliance_binary"] <= row["first_compliance_binary"]
        assert row["polished_vfe"] < 0.05  # SIMP's volume constraint
    designs = report["_designs"]
    assert designs["simp"].shape == designs["polished"].shape == (3, H, W)
    for k, row in enumerate(report["per_problem"]):
        c = compliance(designs["polished"][k], ds.problem(k))
        assert row["polished_compliance"] == pytest.approx(c, rel=1e-9)


def test_evaluate_on_training_designs_gives_zero_simp_novelty_and_no_polish_keeps_best(cvae, data):
    r = evaluate(cvae, data, "train", k=1, polish=0, limit=2, device="cpu")
    assert r["novelty"]["simp_mean"] == 0  # each SIMP design is its own nearest training design
    assert r["novelty"]["best_mean"] > 0
    assert r["metrics"]["polished"] == r["metrics"]["best"] == r["metrics"]["first"]


def test_an_unconditional_model_decodes_for_a_problem(vae, cantilever):
    dec = LatentDecoder(vae, cantilever, device="cpu")
    rho = dec.numpy(torch.randn(3, LATENT, generator=torch.Generator().manual_seed(0)), True)
    np.testing.assert_allclose(rho.mean(axis=(1, 2)), cantilever.volfrac, atol=1e-6)


def test_search_an_unconditional_model(vae, cantilever):
    assert search(vae, cantilever, method="random", budget=4, device="cpu").evaluations == 4


def test_evaluate_temperature_scales_the_prior_samples(cvae, data):
    """Near temperature 0 every sample is the prior mean: the k designs are one design (the
    first unguided: guidance would move it away from the others)."""
    cold = evaluate(cvae, data, "test", k=4, polish=0, limit=2, device="cpu", temperature=1e-6,
                    guide=0)  # fmt: skip
    warm = evaluate(cvae, data, "test", k=4, polish=0, limit=2, device="cpu", temperature=3.0,
                    guide=0)  # fmt: skip
    assert cold["temperature"] == 1e-6 and warm["temperature"] == 3.0
    assert cold["diversity"]["pairwise_mean"] == 0.0
    assert warm["diversity"]["pairwise_mean"] > 0.0


def test_guidance_moves_a_floating_design_until_it_is_connected():
    """`guide_away_from_floating` on a decoder made by hand (cantilever, load at the right): u =
    (a, b) -> a bar from the support to the load, an island apart whose logits fall as a grows
    (the background rises towards the bar, so the material the island frees joins the bar).
    From u = 0 the island floats; guidance moves a up until nothing floats; a connected design
    (no island) does not move, nor does anything with 0 steps."""
    from topovae.models import floating_terms
    from topovae.solvers import preset
    from topovae.workflows._latent import guide_away_from_floating

    nelx, nely = 12, 6
    p = preset("cantilever", nelx, nely)
    load_row = int(np.argmax(np.abs(p.loads[0, 1]).max(axis=1)))
    row = min(load_row, nely - 1)
    top = 0 if row > 2 else nely - 1
    rows = torch.arange(nely, dtype=torch.float64)[:, None].expand(nely, nelx)
    background = -4.0 - 0.5 * (rows - row).abs()
    bar = torch.zeros(nely, nelx, dtype=torch.float64)
    bar[row] = 1.0
    island = torch.zeros(nely, nelx, dtype=torch.float64)
    island[top, 4:6] = 1.0
    p = p.replace(volfrac=float((nelx + 2) / (nelx * nely)))

    def decoder(with_island: bool):
        def logits_of(u):
            lg = torch.where(bar > 0, 4.0, background) + 0 * u[:, 1:].sum()
            if with_island:
                lg = torch.where(island > 0, 4.0 - 10.0 * u[0, 0], lg)
            return lg[None].float()

        return logits_of

    zero = torch.zeros(1, 2)
    floats = decoder(True)
    assert float(floating_terms(floats(zero)[:, None], [p])) > 0
    u = guide_away_from_floating(floats, p, zero, steps=100)
    assert float(u[0, 0]) > 0
    assert float(floating_terms(floats(u)[:, None], [p])) == 0.0
    assert torch.equal(guide_away_from_floating(floats, p, zero, steps=0), zero)
    assert torch.equal(guide_away_from_floating(decoder(False), p, zero, steps=100), zero)


def test_evaluate_with_guidance_judges_the_guided_first_design(cvae, data):
    """Guidance (on by default, GUIDE_STEPS) moves only first designs that float: a connected
    one is judged as without it (that guidance connects a floating one is the test above)."""
    plain = evaluate(cvae, data, "test", k=2, polish=0, limit=6, device="cpu", connect=False,
                     guide=0)  # fmt: skip
    guided = evaluate(cvae, data, "test", k=2, polish=0, limit=6, device="cpu", connect=False)
    assert (plain["guide"], guided["guide"]) == (0, GUIDE_STEPS)
    assert guided["problems"] == plain["problems"] == 4  # the whole test split
    floating = 0
    for a, b in zip(plain["per_problem"], guided["per_problem"], strict=True):
        first = [key for key in a if key.startswith("first_")]
        floating += a["first_floating"] > 0
        if a["first_floating"] == 0:  # a connected first design does not move
            assert all(a[key] == b[key] for key in first)
    assert floating > 0  # the tiny model's first designs do float: guidance has work to do
    assert guided["guided"] == floating and plain["guided"] == 0
    assert "guided away" in markdown_report(guided)
    assert "guided away" not in markdown_report(plain)
    assert evaluate(cvae, data, "test", k=2, polish=0, limit=1, mean_first=False)["guide"] == 0
    with pytest.raises(WorkflowError, match="--guide needs a trained model"):
        evaluate("nearest", data, "test", guide=5)
    assert evaluate("nearest", data, "test", k=2, polish=0, limit=1)["guide"] == 0


def test_evaluate_an_unconditional_model(vae, data):
    r = evaluate(vae, data, "val", k=2, polish=0, limit=1, device="cpu")
    assert r["model"]["kind"] == "vae" and r["problems"] == 1


@pytest.mark.parametrize("kw, fragment", [
    ({"k": 0}, "-k"), ({"polish": -1}, "--polish"), ({"limit": 0}, "--limit"),
    ({"split": "nope"}, "nope"), ({"temperature": 0}, "--temperature"),
    ({"guide": -1}, "--guide"), ({"guide": 5, "mean_first": False}, "--random-first"),
])  # fmt: skip
def test_evaluate_refuses_bad_options(cvae, data, kw, fragment):
    with pytest.raises(WorkflowError, match=fragment):
        evaluate(cvae, data, **{"split": "test", **kw})


def test_evaluate_refuses_data_of_another_size(cvae, data8, tmp_path):
    with pytest.raises(WorkflowError, match="12x12") as e:
        evaluate(cvae, data8, "test", k=1, polish=0)
    assert "8x8" in str(e.value)
    with pytest.raises(WorkflowError, match="does not exist"):
        evaluate(cvae, tmp_path / "missing.h5", "test")


def test_write_report_writes_json_markdown_html_and_figures(report, tmp_path):
    paths = write_report(report, tmp_path / "rep")
    folder = tmp_path / "rep"
    public = json.loads((folder / "report.json").read_text())
    assert not any(k.startswith("_") for k in public)
    assert public["metrics"] == report["metrics"]
    assert public["per_problem"] == report["per_problem"]
    for v in VARIANTS:
        assert set(METRIC_KEYS) <= set(public["metrics"][v])
    md = (folder / "report.md").read_text()
    assert "| CE mean |" in md and "![cases.png](cases.png)" in md
    html = (folder / "report.html").read_text()
    assert html.startswith("<!doctype html>") and "<table>" in html and "cases.png" in html
    for name in ("cases.png", "ce.png"):
        assert (folder / name).read_bytes().startswith(PNG), name
    assert {p.name for p in paths.values()} == {
        "report.json",
        "report.md",
        "report.html",
        "cases.png",
        "ce.png",
    }


def test_a_user_given_file_name_shows_as_typed_in_the_html_report(report, tmp_path):
    """A data path with Markdown and HTML in it: no tag, link or emphasis gets made of it."""
    nasty = "runs/<script>alert(1)</script>_*x*_[a](javascript:alert(1))|.h5"
    write_report({**report, "data": nasty}, tmp_path / "rep")
    page = (tmp_path / "rep" / "report.html").read_text()
    assert "<script>" not in page and "<em>" not in page and "<a " not in page
    heading = page.split("<h1>")[1].split("</h1>")[0]
    assert html.unescape(heading).startswith(f"Evaluation of a cvae on {nasty} (")
    assert "<table>" in page and page.count("<tr>") >= 15 and '<img src="cases.png"' in page


def test_md_escape_round_trips_every_ascii_punctuation_character():
    from markdown_it import MarkdownIt

    from topovae.workflows._report import md_escape

    text = "".join(chr(c) for c in range(33, 127) if not chr(c).isalnum()) + " a_b *c* `d`"
    rendered = MarkdownIt("commonmark", {"html": False}).render(md_escape(text))
    assert html.unescape(rendered) == f"<p>{text}</p>\n"
