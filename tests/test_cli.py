"""The `topovae` command line, driven by click's CliRunner in a temporary folder."""

import json

import numpy as np
import pytest
from conftest import assert_one_line_error

from topovae.solvers import PRESETS, preset


def test_list_presets_one_line_each(run):
    result = run("solve", "--list")
    assert result.exit_code == 0
    lines = result.output.strip().splitlines()
    assert [ln.split()[0] for ln in lines] == list(PRESETS)


def test_solve_mbb_writes_json_and_png(run, tmp_path):
    result = run(
        "solve", "--problem", "mbb", "--nelx", 60, "--nely", 20, "--volfrac", 0.5,
        "--filter", "sensitivity", "--rmin", 2.4, "--out", "mbb.png", "--json", "mbb.json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "mbb.json").read_text())
    assert summary["compliance"] == pytest.approx(216.81366, rel=1e-4)  # top88, published
    assert summary["iterations"] == 106
    assert summary["converged"] is True
    assert summary["volume"] == pytest.approx(0.5, abs=1e-3)
    assert summary["linear_solver"] in ("cholmod", "superlu")
    assert summary["seconds_per_iteration"] > 0
    assert (tmp_path / "mbb.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_solve_options_reach_the_solver(run, tmp_path):
    result = run(
        "solve", "-q", "--problem", "cantilever", "--nelx", 24, "--nely", 12, "--penal", 2.5,
        "--rmin", 1.8, "--optimizer", "mma", "--max-iter", 7, "--tol", 1e-9,
        "--linear-solver", "superlu", "--reuse-tol", 1e-4, "--json", "c.json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "c.json").read_text())
    assert summary["iterations"] == 7 and summary["converged"] is False
    assert summary["linear_solver"] == "superlu"
    settings = summary["problem"]["settings"]
    assert (settings["penal"], settings["rmin"], settings["optimizer"]) == (2.5, 1.8, "mma")
    assert settings["reuse_tol"] == 1e-4
    assert f"{summary['factorizations']} factorisations" in result.output


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--volfrac", 1.5], ["volfrac", "1.5"]),
        (["--volfrac", 0], ["volfrac"]),
        (["--volfrac", "nan"], ["volfrac"]),
        (["--nelx", 0], ["nelx", "0"]),
        (["--nely", -4], ["nely", "-4"]),
        (["--rmin", 0.5], ["rmin", "0.5"]),
        (["--problem", "bogus"], ["bogus", "mbb"]),
        (["--filter", "gauss"], ["gauss", "sensitivity, density, heaviside"]),
        (["--optimizer", "sgd"], ["sgd", "oc, mma"]),
        (["--linear-solver", "umfpack"], ["umfpack"]),
        (["--max-iter", 0], ["max_iter"]),
        (["--reuse-tol", -1e-6], ["reuse_tol", "-1e-06", "[0, 1)"]),
        (["--reuse-tol", 1], ["reuse_tol", "[0, 1)"]),
        (["--out", "missing/dir/x.png"], ["missing/dir"]),
        (["--json", "missing/x.json"], ["missing"]),
        (["--problem-file", "nothere.npz"], ["nothere.npz", "does not exist"]),
    ],
)
def test_bad_options_give_one_line_and_exit_2(run, args, fragments):
    assert_one_line_error(run("solve", "-q", *args), *fragments)


def _save(tmp_path, name, **arrays):
    """A problem file with some arrays replaced (bypassing validation, as a user's file might)."""
    p = preset("cantilever", 12, 6, 0.4)
    a = {**p.to_arrays(), **arrays}
    path = tmp_path / name
    np.savez(path, meta=np.array(json.dumps(p.metadata())), **a)
    return path


def _bad_problem_files(tmp_path):
    nodes, elems = (7, 13), (6, 12)
    no_fix = np.zeros(nodes, bool)
    one_pin = no_fix.copy()
    one_pin[3, 0] = True
    loads_nan = np.zeros((1, 2, *nodes))
    loads_nan[0, 1, 3, 12] = np.nan
    loads_fixed = np.zeros((1, 2, *nodes))
    loads_fixed[0, 1, 2, 0] = -1.0  # the left edge is clamped
    all_void = np.ones(elems, bool)
    solid_half = np.zeros(elems, bool)
    solid_half[:, :7] = True
    return [
        (_save(tmp_path, "nosup.npz", fixed_x=no_fix, fixed_y=no_fix), ["no supports"]),
        (_save(tmp_path, "pin.npz", fixed_x=one_pin, fixed_y=one_pin), ["rigid-body", "rotation"]),
        (_save(tmp_path, "nan.npz", loads=loads_nan), ["loads", "NaN"]),
        (_save(tmp_path, "zero.npz", loads=np.zeros((1, 2, *nodes))), ["zero"]),
        (_save(tmp_path, "onfixed.npz", loads=loads_fixed), ["fixed DOFs"]),
        (_save(tmp_path, "allvoid.npz", passive_void=all_void), ["no design domain"]),
        (_save(tmp_path, "solid.npz", passive_solid=solid_half), ["passive solid", "volfrac"]),
    ]


def test_bad_problem_files_give_one_line_and_exit_2(run, tmp_path):
    for path, fragments in _bad_problem_files(tmp_path):
        assert_one_line_error(run("solve", "-q", "--problem-file", path), *fragments)
    (tmp_path / "junk.npz").write_text("not a zip")
    assert_one_line_error(run("solve", "-q", "--problem-file", "junk.npz"), "junk.npz")


def test_problem_file_round_trip_solves_the_same(run, tmp_path):
    p = preset("mbb", 30, 10, 0.5)
    p.save(tmp_path / "mbb.npz")
    a = run("solve", "-q", "--problem-file", "mbb.npz", "--json", "a.json")
    b = run("solve", "-q", "--problem", "mbb", "--nelx", 30, "--nely", 10, "--json", "b.json")
    assert a.exit_code == 0 and b.exit_code == 0, a.output + b.output
    ja, jb = (json.loads((tmp_path / f).read_text()) for f in ("a.json", "b.json"))
    assert ja["compliance"] == jb["compliance"] and ja["iterations"] == jb["iterations"]


def test_torch_backend_matches_direct(run, tmp_path):
    common = ["solve", "-q", "--problem", "cantilever", "--nelx", 24, "--nely", 12]
    a = run(*common, "--json", "direct.json")
    b = run(*common, "--backend", "torch", "--device", "cpu", "--json", "torch.json")
    assert a.exit_code == 0 and b.exit_code == 0, a.output + b.output
    ja, jb = (json.loads((tmp_path / f).read_text()) for f in ("direct.json", "torch.json"))
    assert jb["linear_solver"].startswith("mg-pcg (torch cpu")
    assert jb["compliance"] == pytest.approx(ja["compliance"], rel=1e-3)
    assert abs(jb["iterations"] - ja["iterations"]) <= 3


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--backend", "jax"], ["jax", "direct, torch"]),
        (["--backend", "torch", "--device", "tpu"], ["tpu", "auto, cpu, cuda"]),
        (["--backend", "torch", "--filter", "heaviside"], ["heaviside"]),
        (["--backend", "torch", "--optimizer", "mma"], ["MMA"]),
    ],
)
def test_bad_backend_options(run, args, fragments):
    assert_one_line_error(run("solve", "-q", "--nelx", 12, "--nely", 6, *args), *fragments)
