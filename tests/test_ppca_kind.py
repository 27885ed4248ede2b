"""Probabilistic PCA as a model kind (`train --model ppca`): fitted in closed form into a
checkpoint, its posterior and likelihood the `PPCA` fit's exact ones, and every workflow
command on it."""

import numpy as np
import pytest
import torch
from conftest import TINY, assert_one_line_error, run_every_workflow

from topovae.datasets import TopologyDataset
from topovae.models import PPCA, PPCAModel, VAEConfig, fit_ppca, load, read_checkpoint


def test_the_model_is_the_closed_form_fit_with_its_exact_posterior_and_likelihood(data):
    train = TopologyDataset(data, "train", in_memory=True, fields=False)
    cfg = VAEConfig(kind="ppca", height=TINY, width=TINY, latent_dim=3)
    model = fit_ppca(cfg, train)
    x = torch.stack([train[i]["density"] for i in range(len(train))]).double()
    ref = PPCA.fit(x.flatten(1).numpy(), 3)
    np.testing.assert_allclose(model.W.numpy(), ref.W, atol=1e-10)
    mean, cov = ref.posterior(x.flatten(1).numpy())
    mu, logvar = model.encode(x)
    np.testing.assert_allclose(mu.numpy(), mean, atol=1e-8)
    assert np.allclose(cov, np.diag(np.diag(cov)), atol=1e-12)  # orthogonal columns of W
    np.testing.assert_allclose(np.exp(logvar[0].numpy()), np.diag(cov), rtol=1e-10)
    np.testing.assert_allclose(
        model.exact_log_likelihood(x).numpy(), ref.log_likelihood(x.flatten(1).numpy())
    )
    # the decoder mean, clipped into (0, 1), as the densities the workflows judge
    z = torch.randn(4, 3, dtype=torch.float64)
    dens = torch.sigmoid(model.decode(z))[:, 0].flatten(1).numpy()
    np.testing.assert_allclose(dens, np.clip(ref.decode(z.numpy()), 1e-4, 1 - 1e-4), rtol=1e-9)


def test_train_fits_a_ppca_and_every_workflow_uses_it(run, data, tmp_path):
    r = run("train", data, "--model", "ppca", "--latent-dim", 3, "--quiet", "--out", "p")
    assert r.exit_code == 0, r.output
    ckpt = tmp_path / "p" / "best.pt"
    saved = read_checkpoint(ckpt)
    assert saved["model_config"]["kind"] == "ppca" and saved["metrics"][0]["val_nll"] > 0
    model = load(ckpt)
    assert isinstance(model, PPCAModel) and model.config.latent_dim == 3

    _, report = run_every_workflow(
        run, ckpt, data, tmp_path, conditional=False, evaluate_args=("--nll", 4, "--factors")
    )
    lik = report["likelihood"]
    assert lik["exact"] and lik["designs"] == 3
    test = TopologyDataset(data, "test", in_memory=True, fields=False)
    x = torch.stack([test[i]["density"] for i in range(3)])
    assert lik["nll_nats"] == pytest.approx(float(-model.exact_log_likelihood(x).mean()))
    assert "exact" in (tmp_path / "e" / "report.md").read_text()
    assert_one_line_error(
        run("train", data, "--model", "ppca", "--latent-dim", 3, "--out", "p"), "already holds"
    )
    assert_one_line_error(
        run("train", data, "--model", "ppca", "--compliance-weight", 5, "--out", "q"), "ppca"
    )
