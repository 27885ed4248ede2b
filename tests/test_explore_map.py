"""The latent map (a dataset split in a latent plane beside the decoded manifold grid) and the
condition sweeps (one latent vector under a range of volume fractions and load directions)."""

import h5py
import numpy as np
import pytest
import torch
from conftest import TINY, assert_one_line_error

from topovae.datasets import TopologyDataset
from topovae.solvers import compliance, preset
from topovae.workflows import (
    WorkflowError,
    condition_sweep,
    latent_map,
    save_latent_map,
    score,
    with_load_angle,
)
from topovae.workflows._explore import parse_range
from topovae.workflows._latent import LatentDecoder

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="session")
def kl_map(cvae, data):
    return latent_map(cvae, data, "test", projection="kl", colour="compliance", grid=3)


def _encodings(model, data, split="test"):
    """Whitened posterior means of the split, computed here one sample at a time."""
    ds = TopologyDataset(data, split)
    dec = LatentDecoder(model, None, "cpu", explicit_conditions=True)
    cond = model.config.conditional
    return ds, np.concatenate([
        dec.encode(ds[k]["density"], ds[k]["condition"][None] if cond else None).double().numpy()
        for k in range(len(ds))
    ])  # fmt: skip


def test_the_kl_plane_shows_the_two_dimensions_with_the_most_kl(cvae, data, kl_map):
    ds, u = _encodings(cvae, data)
    dims = np.argsort(-kl_map["kl_per_dim"], kind="stable")[:2]
    assert (
        kl_map["kl_per_dim"][dims[0]] >= kl_map["kl_per_dim"][dims[1]] >= kl_map["kl_per_dim"].min()
    )
    np.testing.assert_allclose(kl_map["xy"], u[:, dims], rtol=1e-4, atol=1e-5)
    assert kl_map["axes"][0].startswith(f"u{dims[0]} ")
    with h5py.File(data, "r") as f:  # coloured by the SIMP compliance the file stores
        np.testing.assert_array_equal(kl_map["values"], f["result/compliance"][ds.rows])


def test_the_pca_plane_is_the_encodings_principal_plane(cvae, data):
    m = latent_map(cvae, data, "test", projection="pca", grid=2, outliers=0)
    _, u = _encodings(cvae, data)
    xy = m["xy"]
    np.testing.assert_allclose(xy.mean(0), 0.0, atol=1e-6)
    # coordinates in units of each direction's spread: unit variance, uncorrelated
    np.testing.assert_allclose(np.cov(xy.T), np.eye(2), atol=1e-6)
    # the two axes are the encodings' principal directions, found here by an eigensolver
    centred = u - u.mean(0)
    _, vectors = np.linalg.eigh(np.cov(centred.T))
    for k, v in enumerate((vectors[:, -1], vectors[:, -2])):
        assert abs(np.corrcoef(xy[:, k], centred @ v)[0, 1]) == pytest.approx(1.0, abs=1e-3)
    assert m["outliers"] == []


def test_each_tile_is_judged_against_the_samples_simp_design(cvae, data, kl_map):
    ds = TopologyDataset(data, "test")
    grid = kl_map["tiles"].shape[0]
    assert kl_map["tiles"].shape == (grid, grid, TINY, TINY) == (3, 3, TINY, TINY)
    tiles = kl_map["tiles"].reshape(-1, TINY, TINY)
    problem = ds.problem(0)
    simp = ds[0]["density"][0].double().numpy()
    s = score(tiles, problem, np.repeat(simp[None], len(tiles), 0))
    np.testing.assert_allclose(kl_map["tile_scores"]["ce"].ravel(), s["ce"], rtol=1e-9)
    # projected onto the volume fraction, the grid's centre is the prior mean u = 0
    np.testing.assert_allclose(tiles.mean((1, 2)), problem.volfrac, atol=1e-6)
    centre = LatentDecoder(cvae, problem).numpy(torch.zeros(1, 4), project=True)[0]
    np.testing.assert_allclose(kl_map["tiles"][1, 1], centre, atol=1e-5)
    assert not np.allclose(kl_map["tiles"][0, 0], kl_map["tiles"][2, 2])


def test_the_outliers_are_the_encodings_farthest_from_the_prior(cvae, data, kl_map):
    ds, u = _encodings(cvae, data)
    norms = np.linalg.norm(u, axis=1)
    got = [r for _, r, _, _ in kl_map["outliers"]]
    assert len(got) == min(8, len(ds))
    np.testing.assert_allclose(got, np.sort(norms)[::-1][: len(got)], rtol=1e-4)


def test_save_latent_map_writes_the_map_and_the_outliers(kl_map, tmp_path):
    main, outliers = save_latent_map(kl_map, tmp_path / "map.png")
    assert main.read_bytes().startswith(PNG) and outliers.name == "map_outliers.png"
    assert outliers.read_bytes().startswith(PNG)


def test_a_vae_has_a_latent_map_too(vae, data):
    m = latent_map(vae, data, "val", grid=2, colour="kl")
    assert m["xy"].shape == (len(TopologyDataset(data, "val")), 2)
    assert np.all(np.isfinite(m["values"])) and np.all(m["values"] >= 0)


@pytest.mark.parametrize("kw, fragment", [
    ({"projection": "tsne"}, "unknown projection 'tsne'"), ({"colour": "red"}, "unknown colour"),
    ({"grid": 1}, "--grid"), ({"grid": 40}, "--grid"), ({"span": 0.0}, "--span"),
    ({"index": 999}, "--index"), ({"outliers": -1}, "--outliers"),
])  # fmt: skip
def test_latent_map_refuses_bad_options(cvae, data, kw, fragment):
    with pytest.raises(WorkflowError, match=fragment):
        latent_map(cvae, data, **kw)


# -- condition sweeps ----------------------------------------------------------------------------
def test_a_load_turned_half_a_turn_gives_the_same_compliance():
    """Linear elasticity: reversing every load reverses the displacement, C is unchanged; a
    cantilever loaded down is the -90 degree problem."""
    p = preset("cantilever", 24, 12, 0.4)
    rng = np.random.default_rng(0)
    d = rng.uniform(0.2, 1.0, p.shape)
    down = with_load_angle(p, -90.0)
    np.testing.assert_allclose(down.loads, p.loads, atol=1e-15)
    a, b = with_load_angle(p, 30.0), with_load_angle(p, 210.0)
    np.testing.assert_allclose(np.hypot(a.loads[0, 0], a.loads[0, 1]), np.abs(p.loads[0, 1]))
    assert compliance(d, a) == pytest.approx(compliance(d, b), rel=1e-10)
    assert compliance(d, a) != pytest.approx(compliance(d, p), rel=1e-3)


def test_a_sweep_decodes_one_latent_vector_under_every_condition(cvae):
    p = preset("cantilever", TINY, TINY, 0.4)
    vfs, angles = [0.3, 0.5], [-120.0, -90.0, -60.0]
    designs, problems, labels = condition_sweep(cvae, p, vfs, angles)
    assert designs.shape == (6, TINY, TINY) and len(problems) == len(labels) == 6
    assert [q.volfrac for q in problems] == [0.3] * 3 + [0.5] * 3
    np.testing.assert_allclose(designs.mean((1, 2)), [q.volfrac for q in problems], atol=1e-6)
    np.testing.assert_allclose(
        problems[4].loads, with_load_angle(p.replace(volfrac=0.5), -90).loads
    )
    expected = LatentDecoder(cvae, problems[5]).numpy(torch.zeros(1, 4), project=True)[0]
    np.testing.assert_allclose(designs[5], expected, atol=1e-6)
    assert labels[5] == "VF=0.50 -60°"
    assert not np.allclose(designs[0], designs[2])  # the condition changes the design


def test_a_sweep_needs_a_cvae_and_valid_conditions(cvae, vae):
    p = preset("mbb", TINY, TINY, 0.4)
    with pytest.raises(WorkflowError, match="needs a cvae"):
        condition_sweep(vae, p, [0.3])
    with pytest.raises(WorkflowError, match=r"in \(0, 1\), got 1.2"):
        condition_sweep(cvae, p, [0.3, 1.2])


@pytest.mark.parametrize("text, expected", [("0.3:0.6:4", [0.3, 0.4, 0.5, 0.6]), ("0.4", [0.4])])
def test_parse_range(text, expected):
    np.testing.assert_allclose(parse_range(text, "--volfrac"), expected)


@pytest.mark.parametrize("text", ["0.3:0.6", "a:b:3", "0:1:1", "0:1:1000", "nan:1:3", ""])
def test_parse_range_refuses(text):
    with pytest.raises(WorkflowError, match="START:STOP:N"):
        parse_range(text, "--volfrac")


# -- the commands --------------------------------------------------------------------------------
def test_cli_map_and_sweep_write_their_pictures(run, tiny_checkpoints, data, tmp_path):
    r = run("explore", "map", tiny_checkpoints["cvae"], "--data", data, "--grid", "3",
            "--projection", "pca", "--colour", "compliance", "--out", "map.png")  # fmt: skip
    assert r.exit_code == 0, r.output
    assert (tmp_path / "map.png").read_bytes().startswith(PNG)
    assert (tmp_path / "map_outliers.png").read_bytes().startswith(PNG)
    r = run("explore", "sweep", tiny_checkpoints["cvae"], "--problem", "cantilever",
            "--volfrac", "0.3:0.5:2", "--angle", "-120:-60:2", "--out", "sweep.png")  # fmt: skip
    assert r.exit_code == 0, r.output
    assert (tmp_path / "sweep.png").read_bytes().startswith(PNG)


@pytest.mark.parametrize("args, fragment", [
    (("map", "{cvae}", "--data", "{data}", "--projection", "umap", "--out", "m.png"), "'umap'"),
    (("map", "{cvae}", "--data", "{data}", "--grid", "1", "--out", "m.png"), "--grid"),
    (("map", "{cvae}", "--data", "missing.h5", "--out", "m.png"), "missing.h5"),
    (("map", "{cvae}", "--data", "{data}", "--out", "m.txt"), "unknown image type"),
    (("sweep", "{cvae}", "--problem", "mbb", "--volfrac", "0.3:0.6", "--out", "s.png"),
     "START:STOP:N"),
    (("sweep", "{cvae}", "--problem", "mbb", "--volfrac", "0.2:1.2:3", "--out", "s.png"),
     "in (0, 1)"),
    (("sweep", "{cvae}", "--problem", "mbb", "--angle", "x", "--out", "s.png"), "--angle 'x'"),
    (("sweep", "{vae}", "--out", "s.png"), "needs a cvae"),
    (("sweep", "{cvae}", "--out", "s.png"), "give the problem"),
])  # fmt: skip
def test_cli_map_and_sweep_bad_input(run, tiny_checkpoints, data, tmp_path, args, fragment):
    names = {"cvae": tiny_checkpoints["cvae"], "vae": tiny_checkpoints["vae"], "data": data}
    r = run("explore", *[a.format(**names) for a in args])
    assert_one_line_error(r, fragment)
    assert not list(tmp_path.glob("*.png"))


# -- the explorer page command -------------------------------------------------------------------
def test_responsive_dims_are_the_ones_the_design_changes_most_along(cvae):
    from topovae.workflows._explore import responsive_dims

    p = preset("mbb", TINY, TINY, 0.4)
    dec = LatentDecoder(cvae, p)  # the page's designs are projected onto the volume fraction
    e = np.eye(4, dtype=np.float32)
    change = [np.abs(np.subtract(*dec.numpy(torch.from_numpy(np.stack([e[d], -e[d]])), True)))
              .mean() for d in range(4)]  # fmt: skip
    dims = responsive_dims(cvae, p, 2)
    assert sorted(change, reverse=True)[:2] == [change[d] for d in dims]


def test_cli_page_writes_one_self_contained_html_file(run, tiny_checkpoints, tmp_path):
    r = run("explore", "page", tiny_checkpoints["cvae"], "--problem", "mbb", "--grid", "3",
            "--dims", "1,2", "--sweep", "0.3:0.5:3", "--out", "explorer.html")  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "plane u1 x u2, 3x3 designs" in r.output
    page = (tmp_path / "explorer.html").read_text()
    assert 'id="pad"' in page and page.count("data:image/png;base64,") >= 3 + 9
    assert "http://" not in page and "https://" not in page and "<script src" not in page


@pytest.mark.parametrize("args, fragment", [
    (("--dims", "0,0"), "two different dimensions"), (("--dims", "0,9"), "in 0..3"),
    (("--dims", "x"), "--dims 'x'"), (("--sweep", "0.3"), None), (("--grid", "1"), "grid"),
])  # fmt: skip
def test_cli_page_bad_input(run, tiny_checkpoints, tmp_path, args, fragment):
    r = run("explore", "page", tiny_checkpoints["cvae"], "--problem", "mbb", *args,
            "--out", "explorer.html")  # fmt: skip
    if fragment is None:  # one volume fraction is a valid (one-step) sweep
        assert r.exit_code == 0, r.output
        return
    assert_one_line_error(r, fragment)
    assert not (tmp_path / "explorer.html").exists()


def test_cli_page_refuses_a_non_html_name(run, tiny_checkpoints, tmp_path):
    r = run("explore", "page", tiny_checkpoints["cvae"], "--problem", "mbb", "--out", "e.png")
    assert_one_line_error(r, "ending in .html")


@pytest.mark.parametrize("kind", ["vae", "cvae"])
def test_evaluate_factors_of_a_file_without_problems_says_so(request, kind, tmp_path):
    """--factors reads the known factors from the problems; an imported image set has none."""
    from PIL import Image

    from topovae.datasets import import_images
    from topovae.workflows import evaluate

    folder = tmp_path / "pics"
    folder.mkdir()
    for k in range(10):
        Image.fromarray(np.full((TINY, TINY), 25 * k, np.uint8)).save(folder / f"{k}.png")
    import_images(folder, tmp_path / "imported.h5", size=(TINY, TINY))
    with pytest.raises(
        WorkflowError,
        match=r"holds designs without problems \(imported\): "
        r"evaluate judges each design by FE against its problem, and --factors",
    ):
        model = request.getfixturevalue(kind)
        evaluate(model, tmp_path / "imported.h5", "all", k=1, polish=0, factors=True)


def test_a_map_of_a_file_without_simp_results_says_so(vae, tmp_path):
    """An imported image set has designs and volume fractions but no compliance to colour by."""
    from PIL import Image

    folder = tmp_path / "pics"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for k in range(10):
        Image.fromarray(rng.integers(0, 256, (TINY, TINY), np.uint8)).save(folder / f"{k}.png")
    from topovae.datasets import import_images

    import_images(folder, tmp_path / "imported.h5", size=(TINY, TINY))
    with pytest.raises(WorkflowError, match="stores no compliance"):
        latent_map(vae, tmp_path / "imported.h5", "all", colour="compliance", grid=2)
