"""`topovae import images|arrays`, ill-posed samples in `info` and `topovae clean`.

Images are drawn with Pillow in tmp_path (40x20 pictures of filled rectangles, imported on a
20x10 grid, so each element is the average of a 2x2 pixel block); arrays are problems of the
"mixed" distribution on 12x12 with random densities. Every refusal is one line ``Error: ...``,
exit code 2, and leaves no output file.
"""

import sys

import h5py
import numpy as np
import pytest
import torch
from conftest import assert_one_line_error

from topovae.datasets import (
    DatasetError,
    TopologyDataset,
    clean_dataset,
    distribution,
    generate,
    has_problems,
    ill_posed_samples,
    import_arrays,
    import_images,
    import_info,
    read_header,
    sample_problem,
)
from topovae.datasets._torch import condition_channels
from topovae.solvers import ProblemError

Image = pytest.importorskip("PIL.Image")
ImageDraw = pytest.importorskip("PIL.ImageDraw")

# name -> the black rectangle (x0, y0, x1, y1, inclusive pixels) of a 40x20 white picture
PICTURES = {
    "beam_vf0.35.png": (0, 0, 9, 19),
    "arch_vf0.5.png": (4, 2, 24, 13),  # odd edges: half-filled elements
    "frame_vf0.42.png": (11, 5, 39, 19),
}
GRID = (20, 10)
TRAIN = ["--epochs", 1, "--batch-size", 4, "--latent-dim", 2, "--base-width", 4, "--depth", 1,
         "--device", "cpu", "-q"]  # fmt: skip


def picture(box, size=(40, 20)) -> np.ndarray:
    """(h, w) uint8: white with a black rectangle."""
    im = Image.new("L", size, 255)
    ImageDraw.Draw(im).rectangle(box, fill=0)
    return np.asarray(im)


def expected_density(pixels: np.ndarray, grid=GRID) -> np.ndarray:
    """Dark = material, averaged over each element's pixel block (what an area resize gives)."""
    nelx, nely = grid
    h, w = pixels.shape
    blocks = pixels.reshape(nely, h // nely, nelx, w // nelx).astype(np.float64) / 255.0
    return 1.0 - blocks.mean(axis=(1, 3))


@pytest.fixture
def pictures(tmp_path):
    folder = tmp_path / "pics"
    folder.mkdir()
    for name, box in PICTURES.items():
        Image.fromarray(picture(box)).save(folder / name)
    (folder / "notes.txt").write_text("not an image: ignored")
    return folder


def problems(n=10, size=12):
    dist = distribution("mixed", size, size)
    return [sample_problem(dist, 0, i) for i in range(n)]


def problem_arrays(n=10, size=12, seed=0) -> dict[str, np.ndarray]:
    ps = problems(n, size)
    rng = np.random.default_rng(seed)
    return {
        "designs": rng.random((n, size, size)).astype(np.float32),
        "volfrac": np.array([p.volfrac for p in ps]),
        "loads": np.stack([p.loads[0] for p in ps]),
        "fixed_x": np.stack([p.fixed_x for p in ps]),
        "fixed_y": np.stack([p.fixed_y for p in ps]),
        "passive_solid": np.stack([p.passive_solid for p in ps]),
        "passive_void": np.stack([p.passive_void for p in ps]),
    }


# -- images --------------------------------------------------------------------------------------
def test_images_round_trip_with_labels_from_the_names(run, pictures, tmp_path):
    result = run("import", "images", pictures, "--size", "20x10", "--out", "d.h5",
                 "--pattern", r"vf([0-9.]+)")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.output.startswith("d.h5: 3 designs (20x10) imported from")
    path = tmp_path / "d.h5"
    header = read_header(path)
    assert header["n"] == 3 and header["distribution"].shape == (10, 20)
    assert not has_problems(path)
    names = sorted(PICTURES)  # sorted by name: arch, beam, frame
    ds = TopologyDataset(path, split="all")
    assert len(ds) == 3 and not ds.has_problems
    for k, name in enumerate(names):
        item = ds[k]
        np.testing.assert_allclose(
            item["density"][0].numpy(), expected_density(picture(PICTURES[name])), atol=1e-5
        )
        label = float(name.split("vf")[1].removesuffix(".png"))
        assert item["volfrac"].item() == pytest.approx(label)
        assert item["condition"].shape == (7, 10, 20)
        assert item["condition"][0].eq(item["volfrac"]).all()  # the label, the rest zero
        assert not item["condition"][1:].any()
    with pytest.raises(ProblemError, match="without problems"):
        ds.problem(0)
    with h5py.File(path, "r") as f:
        assert [n.decode() for n in f["imported/name"][:]] == names
        assert f["index"][:].tolist() == [0, 1, 2]
        assert "result/compliance" not in f and "problem/fixed_x" not in f
    meta = import_info(path)
    assert meta["kind"] == "images" and meta["count"] == 3 and meta["pattern"] == r"vf([0-9.]+)"
    assert meta["source"] == str(pictures.resolve()) and meta["date"][:2] == "20"
    info = run("info", "d.h5")
    assert info.exit_code == 0, info.output
    assert "imported 3 designs from images" in info.output
    assert r"pattern 'vf([0-9.]+)'" in info.output and "a cvae cannot" in info.output
    assert "volume fraction: mean 0.423" in info.output and "ill-posed" not in info.output
    shown = run("show", "d.h5", "--out", "d.png")
    assert shown.exit_code == 0 and (tmp_path / "d.png").stat().st_size > 0, shown.output
    assert not list(tmp_path.glob("d.h5.tmp-*"))


def test_images_default_labels_invert_transparency_jpeg_and_16_bit(tmp_path):
    folder = tmp_path / "pics"
    folder.mkdir()
    box = PICTURES["arch_vf0.5.png"]
    pixels = picture(box)
    rgba = np.zeros((20, 40, 4), np.uint8)  # transparent everywhere but the rectangle
    rgba[pixels == 0] = (0, 0, 0, 255)
    Image.fromarray(rgba).save(folder / "a.png")
    Image.fromarray(pixels).convert("RGB").save(folder / "b.jpg", quality=95)
    Image.fromarray(pixels.astype(np.uint16) * 257).save(folder / "c.png")  # 16-bit grey
    want = expected_density(pixels)
    summary = import_images(folder, tmp_path / "d.h5", size=GRID)
    assert summary == {"samples": 3, "size": GRID, "labels": "mean density", "problems": False}
    with h5py.File(tmp_path / "d.h5", "r") as f:
        density, vf = f["density"][:], f["problem/volfrac"][:]
    np.testing.assert_allclose(density[0], want, atol=1e-5)
    np.testing.assert_allclose(density[1], want, atol=0.1)  # JPEG artefacts
    np.testing.assert_allclose(density[2], want, atol=1e-4)
    np.testing.assert_allclose(vf, density.mean(axis=(1, 2)), rtol=1e-6)
    import_images(folder, tmp_path / "d.h5", size=GRID, invert=True, overwrite=True)
    with h5py.File(tmp_path / "d.h5", "r") as f:
        np.testing.assert_allclose(f["density"][0], 1 - want, atol=1e-5)
    assert import_info(tmp_path / "d.h5")["invert"] is True


def test_an_image_import_trains_a_vae_and_refuses_a_cvae(run, tmp_path):
    folder = tmp_path / "pics"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(20):  # a validation split of 2 (the active units need a variance)
        x0, x1 = sorted(rng.integers(0, 40, 2))
        Image.fromarray(picture((int(x0), 0, int(x1), 19))).save(folder / f"d{i:02d}.png")
    assert run("import", "images", folder, "--size", "20x10", "--out", "d.h5").exit_code == 0
    result = run("train", "d.h5", "--model", "vae", *TRAIN, "--out", "run")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("run: epoch 1, val loss ")
    assert (tmp_path / "run" / "best.pt").exists()
    result = run("train", "d.h5", "--model", "cvae", *TRAIN, "--out", "run2")
    assert_one_line_error(result, "d.h5", "no problem conditions", "cvae")


# -- arrays --------------------------------------------------------------------------------------
def test_arrays_round_trip_equals_the_arrays(run, tmp_path):
    arrays = problem_arrays(20)
    np.savez(tmp_path / "a.npz", **arrays)
    result = run("import", "arrays", "a.npz", "--out", "a.h5")
    assert result.exit_code == 0, result.output
    assert "20 designs (12x12)" in result.output and "a cvae too" in result.output
    ds = TopologyDataset(tmp_path / "a.h5", split="all")
    assert len(ds) == 20 and ds.has_problems
    for k in range(20):
        item = ds[k]
        i = int(item["index"])
        assert i == k
        np.testing.assert_array_equal(item["density"][0].numpy(), arrays["designs"][i])
        want = condition_channels(
            arrays["volfrac"][i], arrays["loads"][i], arrays["fixed_x"][i], arrays["fixed_y"][i],
            arrays["passive_solid"][i], arrays["passive_void"][i],
        )  # fmt: skip
        np.testing.assert_array_equal(item["condition"].numpy(), want)
        p = ds.problem(k)
        np.testing.assert_array_equal(p.loads[0], arrays["loads"][i])
        np.testing.assert_array_equal(p.fixed_x, arrays["fixed_x"][i])
        assert p.volfrac == pytest.approx(arrays["volfrac"][i])
    meta = import_info(tmp_path / "a.h5")
    assert meta["kind"] == "arrays" and meta["problems"] and meta["count"] == 20
    assert meta["source"] == str((tmp_path / "a.npz").resolve())
    info = run("info", "a.h5")
    assert info.exit_code == 0, info.output
    assert "imported 20 designs from arrays" in info.output
    assert "ill-posed samples: 0 of 20" in info.output and "SIMP:" in info.output
    assert run("show", "a.h5", "-n", 4, "--out", "a.png").exit_code == 0
    result = run("train", "a.h5", "--model", "cvae", *TRAIN, "--out", "run")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "run" / "best.pt").exists()


def test_arrays_variants_designs_only_one_load_case_axis_and_keyword_arrays(tmp_path):
    arrays = problem_arrays(4)
    # designs only (a .npy): like images, no problems, labels the mean density
    np.save(tmp_path / "d.npy", arrays["designs"])
    s = import_arrays(tmp_path / "d.npy", tmp_path / "d.h5")
    assert s["samples"] == 4 and not s["problems"] and not has_problems(tmp_path / "d.h5")
    with h5py.File(tmp_path / "d.h5", "r") as f:
        np.testing.assert_allclose(
            f["problem/volfrac"][:], arrays["designs"].mean(axis=(1, 2)), rtol=1e-6
        )
    # loads with a load-case axis of 1, masks as 0/1 integers, no passive masks, as arguments
    s = import_arrays(
        arrays["designs"], tmp_path / "k.h5", loads=arrays["loads"][:, None],
        fixed_x=arrays["fixed_x"].astype(np.int8), fixed_y=arrays["fixed_y"].astype(np.int8),
        volfrac=arrays["volfrac"],
    )  # fmt: skip
    assert s["problems"] and s["samples"] == 4
    with h5py.File(tmp_path / "k.h5", "r") as f:
        np.testing.assert_array_equal(f["problem/loads"][:], arrays["loads"])
        assert f["problem/fixed_x"].dtype == bool
        np.testing.assert_array_equal(f["problem/fixed_x"][:], arrays["fixed_x"])
        assert not f["problem/passive_solid"][:].any()


def test_ill_posed_arrays_are_refused_or_skipped(run, tmp_path):
    arrays = problem_arrays(6)
    arrays["fixed_x"][2] = arrays["fixed_y"][2] = False  # no supports
    np.savez(tmp_path / "a.npz", **arrays)
    assert_one_line_error(run("import", "arrays", "a.npz", "--out", "a.h5"),
                          "sample 2 is ill-posed", "no supports", "--skip-ill-posed")  # fmt: skip
    assert not (tmp_path / "a.h5").exists()
    result = run("import", "arrays", "a.npz", "--out", "a.h5", "--skip-ill-posed")
    assert result.exit_code == 0, result.output
    assert "5 designs" in result.output and "1 ill-posed left out" in result.output
    with h5py.File(tmp_path / "a.h5", "r") as f:
        assert f["index"][:].tolist() == [0, 1, 3, 4, 5]
        np.testing.assert_array_equal(f["density"][:], arrays["designs"][[0, 1, 3, 4, 5]])
    assert import_info(tmp_path / "a.h5")["skipped_ill_posed"] == 1


# -- refusals ------------------------------------------------------------------------------------
def _pics(tmp_path, names=("a_vf0.3.png",), size=(40, 20)):
    folder = tmp_path / "pics"
    folder.mkdir(exist_ok=True)
    for name in names:
        Image.new("L", size, 255).save(folder / name)
    return folder


def _npz(tmp_path, **changes):
    arrays = problem_arrays(4)
    for k, v in changes.items():
        if v is None:
            arrays.pop(k)
        else:
            arrays[k] = v(arrays) if callable(v) else v
    np.savez(tmp_path / "a.npz", **arrays)
    return tmp_path / "a.npz"


def _value(a, key, where, v):
    a = a[key].copy()
    a[where] = v
    return a


def _bad_image(tmp_path):
    folder = _pics(tmp_path, ["a.png"])
    (folder / "b.png").write_bytes(b"not a png at all")
    return folder


def _truncated_image(tmp_path):
    """A PNG whose header reads but whose pixels do not: refused mid-import."""
    folder = _pics(tmp_path, ["a.png"])
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (200, 400), np.uint8)).save(folder / "b.png")
    data = (folder / "b.png").read_bytes()
    (folder / "b.png").write_bytes(data[: len(data) // 2])
    return folder


def _other_shape(tmp_path):
    _pics(tmp_path, ["a.png"])
    return _pics(tmp_path, ["b.png"], (30, 30))


def _empty(tmp_path):
    folder = tmp_path / "pics"
    folder.mkdir()
    (folder / "readme.txt").write_text("no pictures")
    return folder


IMAGE_CASES = {
    "empty folder": (_empty, [], ["holds no images", ".png"]),
    "missing folder": (lambda t: t / "nowhere", [], ["nowhere", "does not exist"]),
    "unreadable image": (_bad_image, [], ["cannot read image 'b.png'"]),
    "truncated image": (_truncated_image, [], ["cannot read image 'b.png'"]),
    "no match": (
        lambda t: _pics(t, ["a_vf0.3.png", "b.png"]), ["--pattern", r"vf([0-9.]+)"],
        ["file 'b.png' does not match --pattern"],
    ),
    "not a regex": (_pics, ["--pattern", "vf(["], ["--pattern 'vf(['", "not a regular"]),
    "no group": (_pics, ["--pattern", "vf"], ["has 0 groups", "exactly one"]),
    "not a number": (
        lambda t: _pics(t, ["a_vf0.3.5.png"]), ["--pattern", r"vf([0-9.]+)"],
        ["file 'a_vf0.3.5.png'", "'0.3.5', not a number"],
    ),
    "label above 1": (
        lambda t: _pics(t, ["a_vf35.png"]), ["--pattern", r"vf([0-9.]+)"],
        ["volume fraction 35", "outside [0, 1]"],
    ),
    "other shape": (_other_shape, [], ["image 'b.png' is 30x30", "--stretch"]),
}  # fmt: skip


@pytest.mark.parametrize("case", IMAGE_CASES)
def test_bad_image_inputs_give_one_line_and_no_file(run, tmp_path, case):
    make, extra, fragments = IMAGE_CASES[case]
    folder = make(tmp_path)
    result = run("import", "images", folder, "--size", "20x10", "--out", "d.h5", *extra)
    assert_one_line_error(result, *fragments)
    assert not (tmp_path / "d.h5").exists()
    assert not list(tmp_path.glob("d.h5.tmp-*"))


ARRAY_CASES = {
    "outside [0, 1]": (
        {"designs": lambda a: _value(a, "designs", (1, 3, 4), 1.5)},
        ["designs[1] has the value 1.5 at row 3, column 4", "[0, 1]"],
    ),
    "not finite": ({"designs": lambda a: _value(a, "designs", (0, 0, 0), np.nan)},
                   ["designs[0, 0, 0] is nan", "finite"]),
    "mismatched N": ({"fixed_x": lambda a: a["fixed_x"][:3]},
                     ["fixed_x has 3 samples, designs 4"]),
    "wrong load shape": ({"loads": lambda a: a["loads"][:, :, :-1]},
                         ["loads must have shape", "(4, 2, 13, 13)", "(4, 2, 12, 13)"]),
    "two load cases": ({"loads": lambda a: np.stack([a["loads"]] * 2, axis=1)},
                       ["2 load cases", "stores one"]),
    "half a problem": ({"fixed_y": None}, ["without fixed_y", "come together"]),
    "passive alone": ({"loads": None, "fixed_x": None, "fixed_y": None},
                      ["passive_solid needs the problem"]),
    "unknown array": ({"density": lambda a: a["designs"]}, ["unknown array 'density'",
                                                            "allowed: designs"]),
    "no designs": ({"designs": None}, ["no 'designs' array"]),
    "designs not 3-d": ({"designs": lambda a: a["designs"][0]},
                        ["designs must have shape (N, nely, nelx)", "(12, 12)"]),
    "mask not 0/1": ({"fixed_x": lambda a: a["fixed_x"].astype(int) * 2},
                     ["fixed_x[", "is 2", "0/1"]),
    "volfrac above 1": ({"volfrac": lambda a: _value(a, "volfrac", 3, 1.2)},
                        ["volfrac[3] = 1.2", "outside [0, 1]"]),
}  # fmt: skip


@pytest.mark.parametrize("case", ARRAY_CASES)
def test_bad_array_inputs_give_one_line_and_no_file(run, tmp_path, case):
    changes, fragments = ARRAY_CASES[case]
    _npz(tmp_path, **changes)
    assert_one_line_error(run("import", "arrays", "a.npz", "--out", "a.h5"), *fragments)
    assert not (tmp_path / "a.h5").exists()


def test_other_refusals(run, tmp_path, pictures, monkeypatch):
    args = ["import", "images", pictures, "--out", "d.h5"]
    assert_one_line_error(run(*args, "--size", "3x10"), "--size", ">= 4")
    assert_one_line_error(run(*args, "--size", "20x10", "--out", "nowhere/d.h5"), "nowhere")
    assert_one_line_error(run("import", "arrays", "missing.npz", "--out", "a.h5"),
                          "missing.npz", "does not exist")  # fmt: skip
    (tmp_path / "a.txt").write_text("1 2 3")
    assert_one_line_error(run("import", "arrays", "a.txt", "--out", "a.h5"), ".npz")
    (tmp_path / "broken.npz").write_bytes(b"PK broken")
    assert_one_line_error(run("import", "arrays", "broken.npz", "--out", "a.h5"), "cannot read")
    assert not (tmp_path / "d.h5").exists() and not (tmp_path / "a.h5").exists()
    # an existing output: refused and unchanged, replaced with --overwrite
    assert run(*args, "--size", "20x10").exit_code == 0
    before = (tmp_path / "d.h5").read_bytes()
    assert_one_line_error(run(*args, "--size", "20x10"), "'d.h5' exists", "--overwrite")
    assert (tmp_path / "d.h5").read_bytes() == before
    result = run(*args, "--size", "40x20", "--overwrite")
    assert result.exit_code == 0, result.output
    assert read_header(tmp_path / "d.h5")["distribution"].shape == (20, 40)
    # one writer at a time
    from topovae._lock import WriterLock

    lock = WriterLock(tmp_path / ".d.h5.lock", "d.h5", DatasetError).acquire()
    try:
        assert_one_line_error(run(*args, "--size", "20x10", "--overwrite"), "being written by")
    finally:
        lock.release()
    # without Pillow: one line naming the extra
    monkeypatch.setitem(sys.modules, "PIL", None)
    result = run(*args, "--size", "20x10", "--out", "p.h5")
    assert_one_line_error(result, "importing images needs Pillow: pip install 'topovae[images]'")
    assert not (tmp_path / "p.h5").exists()


# -- ill-posed samples: info and clean -----------------------------------------------------------
@pytest.fixture
def older(tmp_path):
    """A generated file whose sample at row 2 lost its supports, as a file made before a
    validation rule existed would hold: (path, the good rows)."""
    path = tmp_path / "old.h5"
    generate(path, distribution("mixed", 12, 12), n=6, seed=0, workers=1, progress=False)
    with h5py.File(path, "r+") as f:
        for k in ("problem/fixed_x", "problem/fixed_y"):
            f[k][2] = np.zeros(f[k].shape[1:], bool)
    return path, [0, 1, 3, 4, 5]


def test_info_counts_ill_posed_samples(run, data, older):
    path, _ = older
    good = run("info", data)
    assert good.exit_code == 0 and "ill-posed samples: 0 of 40" in good.output, good.output
    result = run("info", path)
    assert result.exit_code == 0, result.output
    assert "ill-posed samples: 1 of 6 (index 2;" in result.output
    assert "no supports" in result.output and "topovae clean" in result.output
    assert [(r, i) for r, i, _ in ill_posed_samples(path)] == [(2, 2)]
    shown = run("show", path, "-n", 4, "--out", "s.png")
    assert shown.exit_code == 0, shown.output


def test_clean_drops_exactly_the_ill_posed_samples(run, older, tmp_path):
    path, rows = older
    result = run("clean", path, "--out", "clean.h5")
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "clean.h5: kept 5 samples, dropped 1 ill-posed (index 2)"
    clean = tmp_path / "clean.h5"
    with h5py.File(path, "r") as a, h5py.File(clean, "r") as b:
        keys = []
        a.visititems(lambda k, o: keys.append(k) if isinstance(o, h5py.Dataset) else None)
        assert keys and all(k in b for k in keys)
        for k in keys:
            assert b[k].dtype == a[k].dtype
            np.testing.assert_array_equal(b[k][:], a[k][:][rows], err_msg=k)
        for k in ("distribution", "seed", "n_requested", "fields", "format", "version"):
            assert b.attrs[k] == a.attrs[k]
    assert read_header(clean)["n"] == 5 and ill_posed_samples(clean) == []
    info = run("info", "clean.h5")
    assert "ill-posed samples: 0 of 5" in info.output and "1 ill-posed samples dropped" in (
        info.output
    )
    ds = TopologyDataset(clean, split="all")
    assert [int(ds[k]["index"]) for k in range(len(ds))] == rows
    ds.problem(2)  # every problem valid now
    # refusals: an existing output, the input itself, a file without problems
    assert_one_line_error(run("clean", path, "--out", "clean.h5"), "exists", "--overwrite")
    assert run("clean", path, "--out", "clean.h5", "--overwrite").exit_code == 0
    assert_one_line_error(run("clean", path, "--out", path, "--overwrite"), "the input itself")
    assert_one_line_error(run("clean", "missing.h5", "--out", "c2.h5"), "does not exist")
    np.save(tmp_path / "d.npy", np.zeros((2, 8, 8)))
    import_arrays(tmp_path / "d.npy", tmp_path / "d.h5")
    assert_one_line_error(run("clean", "d.h5", "--out", "c3.h5"), "without problems")
    assert not (tmp_path / "c2.h5").exists() and not (tmp_path / "c3.h5").exists()


def test_clean_library_call_reports_the_dropped_indices(older, tmp_path):
    path, rows = older
    s = clean_dataset(path, tmp_path / "c.h5")
    assert s == {"kept": 5, "dropped": 1, "dropped_indices": [2]}
    with pytest.raises(DatasetError, match="exists"):
        clean_dataset(path, tmp_path / "c.h5")
    d = TopologyDataset(tmp_path / "c.h5", split="all")
    ref = TopologyDataset(path, split="all")
    for k, row in enumerate(rows):
        assert torch.equal(d[k]["density"], ref[row]["density"])


def test_designs_exported_as_png_import_back_within_the_8_bit_rounding(run, data, tmp_path):
    """SIMP designs written as 8-bit greyscale PNGs (dark = material) and imported on their own
    grid come back within half a grey level; their volume fractions (the designs' means) too."""
    ds = TopologyDataset(data, split="all")
    folder = tmp_path / "export"
    folder.mkdir()
    designs = np.stack([ds[k]["density"][0].double().numpy() for k in range(8)])
    for k, d in enumerate(designs):
        Image.fromarray(np.round(255 * (1 - d)).astype(np.uint8)).save(folder / f"d{k}.png")
    h, w = designs.shape[1:]
    result = run("import", "images", folder, "--size", f"{w}x{h}", "--out", "back.h5")
    assert result.exit_code == 0, result.output
    back = TopologyDataset(tmp_path / "back.h5", split="all")
    got = np.stack([back[k]["density"][0].double().numpy() for k in range(len(back))])
    assert got.shape == designs.shape
    assert np.abs(got - designs).max() <= 0.5 / 255 + 1e-6
    assert np.abs(got - designs).max() > 0  # the 8-bit rounding is really there
    np.testing.assert_allclose([back[k]["volfrac"].item() for k in range(8)],
                               designs.mean(axis=(1, 2)), atol=0.5 / 255)  # fmt: skip
