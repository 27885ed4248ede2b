"""The nearest-training-design yardstick (`topovae.models.NearestDesign`, `evaluate("nearest")`)."""

import numpy as np
import pytest
import torch
from conftest import assert_one_line_error

from topovae.datasets import TopologyDataset, import_arrays
from topovae.models import ConfigError, NearestDesign
from topovae.workflows import WorkflowError, evaluate


def test_a_training_condition_finds_its_own_design_first():
    g = torch.Generator().manual_seed(0)
    conditions = torch.rand(6, 3, 4, 5, generator=g)
    designs = torch.rand(6, 4, 5, generator=g)
    nearest = NearestDesign(conditions, designs)
    for i in range(6):
        assert nearest.nearest(conditions[i], 1)[0] == i
        np.testing.assert_array_equal(nearest.designs(conditions[i], 1)[0], designs[i].double())
    # the order is by distance: a point between designs 2 and 4, nearer 2
    query = 0.7 * conditions[2] + 0.3 * conditions[4]
    assert list(nearest.nearest(query, 2)) == [2, 4]
    assert len(nearest.nearest(query, 100)) == 6  # k beyond N gives all of them


def test_every_channel_counts_alike_whatever_its_units():
    """Channel 0 in large units would decide alone without the standardisation."""
    conditions = torch.zeros(2, 2, 1, 1)
    conditions[:, 0, 0, 0] = torch.tensor([0.0, 1000.0])  # design 0 low, design 1 high in ch 0
    conditions[:, 1, 0, 0] = torch.tensor([1.0, 0.0])  # and the reverse in channel 1
    nearest = NearestDesign(conditions, torch.zeros(2, 1, 1))
    query = torch.tensor([[[600.0]], [[1.0]]])  # 0.6 of the way in ch 0, at design 0 in ch 1
    assert nearest.nearest(query, 1)[0] == 0
    assert NearestDesign(conditions, torch.zeros(2, 1, 1), channels=[0]).nearest(query, 1)[0] == 1
    raw = NearestDesign(conditions, torch.zeros(2, 1, 1), standardise=False)
    assert raw.nearest(query, 1)[0] == 1  # in raw units channel 0 decides alone


def test_nearest_design_refuses_what_it_cannot_use(data):
    with pytest.raises(ConfigError, match=r"conditions \(N, C, H, W\) and designs"):
        NearestDesign(torch.zeros(3, 4, 4), torch.zeros(3, 4, 4))
    nearest = NearestDesign(torch.zeros(2, 3, 4, 4), torch.zeros(2, 4, 4))
    with pytest.raises(ConfigError, match=r"must be \(3, H, W\)"):
        nearest.nearest(torch.zeros(2, 4, 4), 1)
    with pytest.raises(ConfigError, match="no strain_energy, von_mises channel"):
        NearestDesign.fit(TopologyDataset(data, "train", in_memory=True))


def test_evaluate_nearest_on_the_training_split_returns_each_problems_own_design(data):
    """On the training split every problem's nearest training design is its own SIMP design:
    compliance error ~0 (the design placed on the volume fraction, densities clipped at 1e-4)."""
    r = evaluate("nearest", data, "train", k=2, polish=0, limit=4)
    assert r["model"]["kind"] == "nearest" and r["problems"] == 4
    assert r["metrics"]["first"]["ce_median"] < 1e-3
    assert r["novelty"]["simp_mean"] == 0
    held_out = evaluate("nearest", data, "test", k=2, polish=0, limit=4)
    assert held_out["metrics"]["first"]["ce_median"] > r["metrics"]["first"]["ce_median"]


@pytest.mark.parametrize("kw, flag", [({"nll": 5}, "--nll"), ({"factors": True}, "--factors"),
                                      ({"drop": ("loads",)}, "--drop"),
                                      ({"temperature": 2.0}, "--temperature")])  # fmt: skip
def test_evaluate_nearest_refuses_a_models_options(data, kw, flag):
    with pytest.raises(WorkflowError, match=f"{flag} needs a trained model"):
        evaluate("nearest", data, "test", k=1, polish=0, **kw)


def test_cli_evaluate_nearest(data, run, tmp_path):
    result = run("evaluate", "nearest", data, "-k", 2, "--polish", 0, "--limit", 2, "--out", "r",
                 "-q")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "first: CE" in result.output and (tmp_path / "r" / "report.json").exists()
    np.save(tmp_path / "d.npy", np.random.default_rng(0).random((6, 12, 12)))
    import_arrays(tmp_path / "d.npy", tmp_path / "imported.h5")
    result = run("evaluate", "nearest", "imported.h5", "--out", "r2", "-q")
    assert_one_line_error(result, "imported.h5", "holds designs without problems",
                          "the nearest training design needs their conditions")  # fmt: skip
