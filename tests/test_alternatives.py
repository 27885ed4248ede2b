"""Several designs per problem: deflation, the alternative search, the files that hold them,
the diversity metrics and the `alternatives` workflow."""

import h5py
import numpy as np
import pytest
import torch
from conftest import TINY, assert_one_line_error

from topovae.datasets import (
    TopologyDataset,
    alternatives_summary,
    distribution,
    generate,
    read_header,
)
from topovae.solvers import (
    DISTINCT,
    AlternativeSearch,
    Deflation,
    ProblemError,
    distinct,
    find_alternatives,
    iou_distance,
    pairwise_distances,
    preset,
    random_start,
    solid,
    solve,
)
from topovae.solvers._fe import to_vector
from topovae.workflows import WorkflowError, alternatives, coverage, diversity, ged
from topovae.workflows._diversity import coverage_radii


# -- deflation ------------------------------------------------------------------------------------
def test_deflation_gradient_matches_finite_differences():
    rng = np.random.default_rng(0)
    known = rng.uniform(0, 1, (3, 6, 8))
    x = to_vector(known[0] * 0.7 + 0.15)  # near the first design: inside its reach
    defl = Deflation(known, gamma=0.2, delta=2.0)
    assert (defl.distances(x) < 0.2).any()
    grad = defl.gradient(x)
    h = 1e-6
    for e in rng.choice(x.size, 12, replace=False):
        xp, xm = x.copy(), x.copy()
        xp[e] += h
        xm[e] -= h
        fd = (defl.value(xp) - defl.value(xm)) / (2 * h)
        assert grad[e] == pytest.approx(fd, rel=1e-5, abs=1e-10)


def test_deflation_is_largest_on_a_known_design_and_zero_beyond_its_reach():
    known = np.zeros((1, 4, 4))
    defl = Deflation(known, gamma=0.1, delta=3.0)
    assert defl.value(np.zeros(16)) == pytest.approx(3.0 / np.e)  # delta exp(-1)
    far = np.zeros(16)
    far[:2] = 1.0  # mean squared difference 2 / 16 = 0.125 >= gamma
    assert defl.value(far) == 0.0 and not defl.gradient(far).any()


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"designs": np.zeros((1, 4, 4)), "gamma": 0.0}, "gamma must be in (0, 1]"),
        ({"designs": np.zeros((1, 4, 4)), "delta": -1.0}, "delta must be > 0"),
        ({"designs": np.full((1, 4, 4), 2.0)}, "finite values in [0, 1]"),
    ],
)
def test_bad_deflation_is_refused(kwargs, fragment):
    with pytest.raises(ProblemError, match=fragment.replace("(", r"\(").replace("[", r"\[")):
        Deflation(**kwargs)


def test_deflated_solve_leaves_the_known_design():
    problem = preset("mbb", 24, 12, 0.5).with_settings(rmin=1.5)
    base = solve(problem)
    pushed = solve(problem, deflation=Deflation(base.density[None], gamma=0.2, delta=5.0))
    assert iou_distance(solid(pushed.density, problem), solid(base.density, problem)) > 0.1
    with pytest.raises(ProblemError, match="deflation designs must have shape"):
        solve(problem, deflation=Deflation(np.zeros((1, 5, 5))))


# -- the search -----------------------------------------------------------------------------------
def test_random_start_meets_the_volume_and_the_passive_regions():
    problem = preset("l-bracket", 20, 20, 0.4)
    x = random_start(problem, np.random.default_rng(1), 3.0)
    free = ~(problem.passive_solid | problem.passive_void)
    assert x.sum() == pytest.approx(problem.volfrac * x.size, rel=1e-6)
    assert np.all(x[problem.passive_void] == 0) and np.all((x[free] > 0) & (x[free] < 1))


def test_find_alternatives_gives_distinct_designs_within_tol_best_first():
    problem = preset("mbb", 32, 16, 0.5).with_settings(rmin=1.5)
    search = AlternativeSearch(attempts=4, tol=0.10)
    found = find_alternatives(problem, 4, seed=3, search=search)
    again = find_alternatives(problem, 4, seed=3, search=search)
    c = np.array([r.compliance for r in found])
    assert len(found) >= 2, c  # MBB has close local optima (Papadopoulos et al. find two)
    assert np.all(np.diff(c) >= 0) and c[-1] <= 1.10 * c[0]
    d = pairwise_distances(np.stack([solid(r.density, problem) for r in found]))
    assert d[np.triu_indices(len(found), 1)].min() >= DISTINCT
    assert [r.compliance for r in again] == list(c)  # seeded
    for bad, fragment in ((0, "k must be an integer in 1..64"), (2.5, "k must be")):
        with pytest.raises(ProblemError, match=fragment):
            find_alternatives(problem, bad)


# -- the diversity metrics ------------------------------------------------------------------------
def _halves(n=8):
    left, top = np.zeros((n, n)), np.zeros((n, n))
    left[:, : n // 2] = 1
    top[: n // 2] = 1
    return left, top


def test_distances_of_hand_made_designs():
    left, top = _halves()
    # |left & top| = 16, |left | top| = 48: 1 - IoU = 2/3
    assert iou_distance(left > 0, top > 0) == pytest.approx(2 / 3)
    assert iou_distance(left > 0, left > 0) == 0.0
    s = np.stack([left, left, top]) > 0
    assert distinct(s) == [0, 2] and distinct(s, threshold=0.7) == [0]
    assert ged(s[:2], s[:2]) == 0.0  # identical sets
    # S = {left}, Y = {top}: 2 d(S, Y) - 0 - 0
    assert ged(s[:1], s[2:]) == pytest.approx(4 / 3)
    assert coverage(s[:1], s) == pytest.approx(2 / 3)  # top's ball: 2/3 from left, not inside


def test_coverage_is_naeem_k_nearest_neighbour_balls():
    left, top = _halves()
    refs = np.stack([left, top]) > 0  # 2/3 apart: each reference's ball has radius 2/3
    # one sample: left shifted a column, 1 - IoU 1 - 24/40 = 0.4 from left, 2/3 from top
    near_left = np.roll(left, 1, axis=1)
    s = near_left[None] > 0
    assert coverage_radii(refs) == pytest.approx([2 / 3, 2 / 3])
    assert coverage(s, refs) == 0.5  # left is covered (0.4 < 2/3), top is not (2/3, not inside)
    assert coverage(s, refs, DISTINCT) == 0.0  # the same design by the strict definition: none
    assert coverage_radii(refs[:1]) == pytest.approx([DISTINCT])  # a lone reference
    problem = preset("cantilever", 8, 8, 0.5)
    d = diversity(np.stack([near_left]), problem, np.ones(1), best_reference=1.0,
                  references=np.stack([left, top]))  # fmt: skip
    assert (d["coverage"], d["reproduced"]) == (0.5, 0.0)


def test_diversity_counts_distinct_designs_within_the_tolerances():
    problem = preset("cantilever", 8, 8, 0.5)
    left, top = _halves()
    designs = np.stack([left, left, top, 1 - left])
    c = np.array([1.0, 1.01, 1.04, 1.09])  # against a best reference of 1.0
    d = diversity(designs, problem, c, best_reference=1.0, references=np.stack([left, top]))
    assert (d["distinct_5"], d["distinct_10"]) == (2, 3)
    assert d["coverage"] == 1.0 and d["references"] == 2
    same = diversity(np.stack([left, left]), problem, c[:2], best_reference=1.0)
    assert same["pairwise"] == 0.0 and same["distinct_10"] == 1


# -- files with alternatives ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def alt_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("alt") / "alt.h5"
    dist = distribution("topodiff-like", 16, 16)
    generate(path, dist, n=10, seed=1, workers=2, alternatives=3,
             search=AlternativeSearch(attempts=3, tol=0.10), progress=False)  # fmt: skip
    return path


def test_alternatives_share_their_problem_and_stay_in_one_split(alt_file):
    h = read_header(alt_file)
    assert (h["version"], h["alternatives"], h["n_requested"]) == (2, 3, 10)
    with h5py.File(alt_file, "r") as f:
        index, alt = f["index"][:], f["alternative"][:]
        c = f["result/compliance"][:]
        loads = f["problem/loads"][:]
    assert len(index) > 10 and set(index.tolist()) == set(range(10))  # some problems hold more
    for i in range(10):
        rows = np.flatnonzero(index == i)
        assert alt[rows].tolist() == list(range(len(rows)))
        assert np.all(np.diff(c[rows]) >= 0)  # stiffest first
        assert all(np.array_equal(loads[r], loads[rows[0]]) for r in rows)
    splits = {s: TopologyDataset(alt_file, s, fractions=(0.6, 0.2, 0.2)) for s in
              ("train", "val", "test")}  # fmt: skip
    owners = {}
    for name, ds in splits.items():
        for i in set(ds.indices.tolist()):
            assert i not in owners, f"problem {i} in {owners.get(i)} and {name}"
            owners[i] = name
    assert sum(len(ds) for ds in splits.values()) == len(index)
    test = splits["test"]
    k = test.first_designs()[0]
    group = test.group(int(k))
    assert group[0] == k and len(set(test.indices[group].tolist())) == 1
    assert test[int(group[-1])]["alternative"] == len(group) - 1


def test_alternatives_file_resumes_and_summarises(alt_file, tmp_path):
    import shutil

    copy = tmp_path / "alt.h5"
    shutil.copy(alt_file, copy)
    dist = distribution("topodiff-like", 16, 16)
    search = AlternativeSearch(attempts=3, tol=0.10)
    summary = generate(copy, dist, n=12, seed=1, workers=1, alternatives=3, search=search,
                       mode="resume", progress=False)  # fmt: skip
    assert summary["solved"] == 2
    with h5py.File(alt_file, "r") as a, h5py.File(copy, "r") as b:
        n = a["index"].shape[0]
        np.testing.assert_array_equal(a["density"][:], b["density"][:n])
    g = alternatives_summary(copy)
    assert g["problems"] == 12 and g["designs"] == read_header(copy)["n"]
    assert 1 <= g["designs_median"] <= 3 and 0 < g["pairwise_median"] <= 1
    from topovae.datasets import DatasetError

    with pytest.raises(DatasetError, match="other settings"):
        generate(copy, dist, n=12, seed=1, alternatives=2, mode="resume", progress=False)


def test_version_1_files_still_read(tmp_path, data):
    import shutil

    old = tmp_path / "old.h5"
    shutil.copy(data, old)
    with h5py.File(old, "r+") as f:  # what topovae wrote before format version 2
        del f["alternative"]
        for key in ("alternatives", "alternative_search"):
            del f.attrs[key]
        f.attrs["version"] = 1
    h = read_header(old)
    assert (h["version"], h["alternatives"]) == (1, 0)
    new, now = TopologyDataset(data, "test"), TopologyDataset(old, "test")
    np.testing.assert_array_equal(new.rows, now.rows)
    assert now[0]["alternative"] == 0 and len(now.group(0)) == 1


def test_generate_alternatives_cli(run, tmp_path):
    result = run("generate", "-d", "topodiff-like", "--size", "12x12", "-n", "3", "-k", "2",
                 "--attempts", "1", "--workers", "1", "--out", "a.h5", "-q")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "3 problems solved now" in result.output
    info = run("info", "a.h5")
    assert "alternatives: up to 2 distinct designs per problem" in info.output
    assert run("show", "a.h5", "-n", "4", "--out", "a.png").exit_code == 0
    assert_one_line_error(run("generate", "-n", "2", "--attempts", "3", "--out", "b.h5"),
                          "--attempts and --alt-tol need --alternatives")  # fmt: skip
    assert_one_line_error(run("generate", "-n", "2", "-k", "99", "--out", "c.h5"),
                          "--alternatives must be an integer in 0..64")  # fmt: skip
    assert not (tmp_path / "c.h5").exists()


# -- the workflow ---------------------------------------------------------------------------------
def test_alternatives_workflow_returns_distinct_designs_ranked(cvae):
    problem = preset("cantilever", TINY, TINY, 0.4)
    alt = alternatives(cvae, problem, k=4, samples=16, polish=2, seed=0)
    assert 1 <= len(alt.compliance) <= 4 and np.all(np.diff(alt.compliance) >= 0)
    s = np.stack([solid(x, problem) for x in alt.designs])
    d = pairwise_distances(s)
    assert d[np.triu_indices(len(s), 1)].min(initial=1.0) >= DISTINCT
    assert alt.summary()["distinct"] == len(alt.compliance)
    again = alternatives(cvae, problem, k=4, samples=16, polish=2, seed=0)
    np.testing.assert_array_equal(alt.designs, again.designs)


def test_alternatives_temperature_scales_the_prior_samples(cvae):
    """At a temperature near 0 every sample is the prior mean (one design); the latent vectors
    returned are the seed's draws times the temperature."""
    problem = preset("cantilever", TINY, TINY, 0.4)
    cold = alternatives(cvae, problem, k=4, samples=16, polish=0, seed=0, temperature=1e-6)
    assert len(cold.designs) == 1
    assert np.abs(cold.latent).max() <= 1e-5
    draws = torch.randn(16, cvae.config.latent_dim, generator=torch.Generator().manual_seed(0))
    draws[0] = 0.0
    for t in (1.0, 2.0):
        alt = alternatives(cvae, problem, k=4, samples=16, polish=0, seed=0, temperature=t)
        rows = [int(np.argmin(np.abs(t * draws.numpy() - u).sum(1))) for u in alt.latent]
        np.testing.assert_allclose(alt.latent, t * draws.numpy()[rows], rtol=1e-6, atol=1e-7)
    with pytest.raises(WorkflowError, match="--temperature must be a number in"):
        alternatives(cvae, problem, temperature=-1)


def test_deflated_polish_moves_a_second_start_away_from_the_first():
    """Two identical starts: polished plainly they stay one design; under deflation the
    second leaves the first (Deflation's penalty is largest on a known design)."""
    from topovae.workflows._alternatives import _deflated_polish

    problem = preset("mbb", 24, 12, 0.5)
    start = solve(problem.with_settings(max_iter=15)).density
    twice = np.stack([start, start])
    out = _deflated_polish(problem, twice, polish=6)
    assert np.abs(out[1] - out[0]).max() > 0.1
    plain = _deflated_polish(problem, twice[:1], polish=6)  # no known design: no penalty
    np.testing.assert_array_equal(plain[0], out[0])


def test_deflation_hands_out_distinct_designs_from_a_latent_that_holds_one(cvae):
    """At a temperature near 0 every decoded sample is the prior mean: polished plainly one
    design comes back; with deflation (the default) the polish starts again from it and
    returns several distinct ones."""
    problem = preset("cantilever", TINY, TINY, 0.4)
    kw = dict(k=4, samples=16, polish=8, seed=0, temperature=1e-6)
    one = alternatives(cvae, problem, deflate=False, **kw)
    many = alternatives(cvae, problem, **kw)
    assert len(one.designs) == 1 and not one.summary()["deflate"]
    assert len(many.designs) >= 2 and many.summary()["deflate"]
    d = pairwise_distances(np.stack([solid(x, problem) for x in many.designs]))
    assert d[np.triu_indices(len(d), 1)].min() >= DISTINCT
    assert not alternatives(cvae, problem, **{**kw, "polish": 0}).summary()["deflate"]
    with pytest.raises(WorkflowError, match="deflate must be True or False"):
        alternatives(cvae, problem, deflate="yes")


@pytest.mark.parametrize(
    "args, fragment",
    [
        (("-k", "0"), "-k must be an integer in 1..64"),
        (("-k", "8", "--samples", "4"), "--samples must be an integer in 8..4096"),
        (("--polish", "-1"), "--polish (SIMP iterations) must be"),
        (("--tol", "-0.5"), "--tol must be a number in [0, 10]"),
        (("--temperature", "0"), "--temperature must be a number in (0, 10], got 0.0"),
        (("--out", "x.txt"), "--out"),
    ],
)
def test_alternatives_cli_bad_input(run, tiny_checkpoints, args, fragment):
    base = ["alternatives", tiny_checkpoints["cvae"], "--problem", "cantilever"]
    if "--out" not in args:
        base += ["--out", "alt.png"]
    assert_one_line_error(run(*base, *args), fragment)


def test_alternatives_cli(run, tiny_checkpoints, tmp_path):
    result = run("alternatives", tiny_checkpoints["cvae"], "--problem", "cantilever", "-k", "3",
                 "--samples", "8", "--polish", "1", "--out", "alt.png",
                 "--json", "alt.json")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "distinct designs" in result.output
    assert (tmp_path / "alt.png").stat().st_size > 0
    import json

    summary = json.loads((tmp_path / "alt.json").read_text())
    assert summary["distinct"] == len(summary["designs"]) >= 1
