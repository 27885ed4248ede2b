"""Disentanglement against known factors: the mutual information gap on hand-made latents with
known answers, and the factors topovae's problems carry."""

import numpy as np
import pytest

from topovae.solvers import preset
from topovae.workflows._factors import (
    design_factors,
    discretise,
    entropy,
    factor_information,
    mutual_information,
)
from topovae.workflows._latent import WorkflowError


def test_mutual_information_of_hand_made_samples():
    a = np.array([0, 0, 1, 1])
    b = np.array([0, 1, 0, 1])
    assert entropy(a) == pytest.approx(np.log(2))
    assert mutual_information(a, a) == pytest.approx(np.log(2))
    assert mutual_information(a, b) == pytest.approx(0.0, abs=1e-15)  # independent
    assert mutual_information(a, 1 - a) == pytest.approx(np.log(2))  # a function of a


@pytest.fixture(scope="module")
def two_factors():
    """A full factorial design (every pair of values equally often): empirically independent."""
    k = np.arange(4500)
    return {"size": (k % 5).astype(float), "kind": (k // 5 % 3).astype(float)}


def test_mig_is_one_when_each_factor_has_a_dimension_of_its_own(two_factors):
    f = two_factors
    z = np.stack([f["size"] * 0.3 - 1, np.zeros(4500), f["kind"]], axis=1)
    r = factor_information(z, f)
    assert r["mig"] == pytest.approx(1.0)
    assert r["best_dim"] == {"size": 0, "kind": 2}
    np.testing.assert_allclose(np.asarray(r["mi"])[:, 1], 0.0)


def test_mig_is_zero_for_a_factor_two_dimensions_share_and_small_for_noise(two_factors):
    f = two_factors
    shared = factor_information(np.stack([f["size"], f["size"], f["kind"]], 1), f)
    assert shared["gap"]["size"] == pytest.approx(0.0) and shared["gap"]["kind"] == pytest.approx(1)
    assert shared["mig"] == pytest.approx(0.5)
    noise = factor_information(np.random.default_rng(1).normal(size=(4500, 6)), f)
    assert noise["mig"] < 0.02


def test_discretise_keeps_few_values_and_bins_many():
    assert list(discretise(np.array([3.0, 1.0, 3.0]), 10, quantile=True)) == [1, 0, 1]
    codes = discretise(np.linspace(0, 1, 1000), 10, quantile=True)
    assert set(codes) == set(range(10)) and np.all(np.bincount(codes) == 100)


def test_design_factors_of_known_problems():
    mbb = preset("mbb", 30, 10, 0.5)  # one downward load at the top-left corner, y up
    cant = preset("cantilever", 30, 10, 0.4)
    f = design_factors([mbb, cant])
    assert f["volfrac"].tolist() == [0.5, 0.4]
    assert f["load_angle"][0] == pytest.approx(-90.0) and f["load_x"][0] == pytest.approx(0.0)
    assert f["load_x"][1] == pytest.approx(1.0)  # the cantilever's load is on its free end
    assert f["supports"][0] != f["supports"][1] and f["passive"].tolist() == [0, 0]


def test_factor_information_refuses_bad_input(two_factors):
    with pytest.raises(WorkflowError, match="latents"):
        factor_information(np.ones(5), two_factors)
    with pytest.raises(WorkflowError, match="no factor varies"):
        factor_information(np.ones((4, 2)), {"c": np.zeros(4)})
