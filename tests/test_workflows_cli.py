"""The workflow commands: `topovae explore sample|interpolate|traverse`, `topovae search`,
`topovae evaluate` and `topovae demo`.

Happy paths write their files and figures (checked against the FE solver where they report
compliances); bad input ends with one line ``Error: ...`` and exit code 2. The commands run on a
12x12 dataset of 40 problems and two tiny checkpoints (a CVAE and an unconditional VAE) made once
per session; `demo --quick` runs once per session and several tests read its output.
"""

import json

import h5py
import numpy as np
import pytest
from click.testing import CliRunner
from conftest import METRIC_KEYS, TINY, assert_one_line_error

from topovae.cli import main
from topovae.datasets import TopologyDataset, read_header
from topovae.models import load
from topovae.solvers import compliance, preset, solve

H = W = 12
PNG = b"\x89PNG\r\n\x1a\n"
VARIANTS = ("first", "best", "polished")  # the variants every report has (there may be more)
METHODS = ("random", "cmaes", "gradient")


# -- fixtures and helpers ----------------------------------------------------------------------
@pytest.fixture(scope="session")
def indices(data):
    """The sample indices the dataset file holds."""
    with h5py.File(data, "r") as f:
        return [int(i) for i in f["index"][:]]


@pytest.fixture(scope="session")
def cvae(tiny_checkpoints):
    return tiny_checkpoints["cvae"]


@pytest.fixture(scope="session")
def vae(tiny_checkpoints):
    return tiny_checkpoints["vae"]


@pytest.fixture(scope="session")
def demo(tmp_path_factory):
    """(click result, output folder) of one `topovae demo --quick`."""
    out = tmp_path_factory.mktemp("demo") / "missing" / "run"  # parents are made
    result = CliRunner().invoke(main, ["demo", "--quick", "--out", str(out), "--quiet",
                                       "--device", "cpu"])  # fmt: skip
    return result, out


def ok(result):
    assert result.exit_code == 0, result.output
    return result


def fill(command, **values):
    """The command's arguments as strings, with "{name}" placeholders filled in."""
    return [str(a).format(**values) for a in command]


def is_png(path):
    return path.read_bytes().startswith(PNG)


def check_metrics(metrics):
    assert set(VARIANTS) <= set(metrics)
    for v in VARIANTS:
        missing = set(METRIC_KEYS) - set(metrics[v])
        assert not missing, (v, missing)
        assert all(isinstance(metrics[v][k], float) for k in METRIC_KEYS), metrics[v]


# -- demo -------------------------------------------------------------------------------------
def test_demo_quick_runs_every_step_end_to_end(demo):
    result, out = demo
    ok(result)
    assert "wrote" in result.output and "report.md" in result.output
    for name in ("data.h5", "model/best.pt", "evaluation/report.json", "report.md", "report.html"):
        assert (out / name).is_file(), name
    for name in ("data.png", "evaluation/cases.png", "evaluation/ce.png", "search/curves.png",
                 "search/designs.png", "search/simp.png", "explore/samples.png",
                 "explore/interpolation.png", "alternatives/mbb.png",
                 "alternatives/held_out.png"):  # fmt: skip
        assert is_png(out / name), name
    report = json.loads((out / "report.json").read_text())
    plan = report["plan"]
    header = read_header(out / "data.h5")
    assert header["n"] == plan["n"]
    assert header["fields"] == ("strain_energy", "von_mises")  # stored, not computed in training
    md = (out / "report.md").read_text()
    for alt in report["alternatives"].values():  # the design space, in the report
        assert alt["distinct"] == len(alt["designs"]) >= 1
        assert (out / alt["picture"]).is_file() and alt["picture"] in md
    model = load(out / "model" / "best.pt")
    assert model.config.kind == "cvae"
    assert (model.config.height, model.config.width) == (plan["size"], plan["size"])


def test_demo_report_holds_the_evaluation_metrics(demo):
    result, out = demo
    ok(result)
    report = json.loads((out / "report.json").read_text())
    check_metrics(report["metrics"])
    assert report["metrics"] == report["evaluation"]["metrics"]
    evaluation = json.loads((out / "evaluation" / "report.json").read_text())
    assert evaluation["metrics"] == report["metrics"]
    rows = evaluation["per_problem"]
    assert len(rows) == evaluation["problems"] == report["plan"]["eval_limit"]
    ce = np.array([r["best_ce"] for r in rows])
    assert report["metrics"]["best"]["ce_mean"] == pytest.approx(ce.mean())
    for r in rows:
        assert r["best_compliance_binary"] <= r["first_compliance_binary"]
    html = (out / "report.html").read_text()
    assert html.startswith("<!doctype html>") and "CE mean" in html


def test_demo_report_holds_the_three_searches(demo):
    result, out = demo
    ok(result)
    report = json.loads((out / "report.json").read_text())
    plan, s = report["plan"], report["search"]
    assert s["problem"] == "mbb" and s["simp_compliance"] > 0
    assert set(s["methods"]) == set(METHODS)
    for m, r in s["methods"].items():
        assert r["evaluations"] == plan["budget"], m
        curve = np.array(r["best_so_far"])
        assert len(curve) == plan["budget"] and np.all(np.diff(curve) <= 0)
        assert curve[-1] == pytest.approx(r["compliance"])
        assert r["score"]["ce"] == pytest.approx(r["compliance"] / s["simp_compliance"] - 1)
        assert 1 <= r["polish_iterations"] <= plan["polish"]
        assert set(r["polished_score"]) == set(r["score"])
    md = (out / "report.md").read_text()
    assert all(f"| {m} | {plan['budget']} |" in md for m in METHODS)


def test_demo_refuses_a_file_as_its_output_folder(run, tmp_path):
    (tmp_path / "taken").write_text("a user's file\n")
    assert_one_line_error(run("demo", "--quick", "--out", "taken"), "--out", "taken", "is a file")
    assert (tmp_path / "taken").read_text() == "a user's file\n"


# -- explore ------------------------------------------------------------------------------------
def test_explore_sample_writes_a_scored_grid(run, tmp_path, cvae, vae):
    r = ok(run("explore", "sample", cvae, "--problem", "cantilever", "--volfrac", "0.3", "-n", 3,
               "--device", "cpu", "--out", "s.png"))  # fmt: skip
    assert "s.png" in r.output and is_png(tmp_path / "s.png")
    ok(run("explore", "sample", vae, "-n", 2, "--device", "cpu", "--out", "v.png"))
    assert is_png(tmp_path / "v.png")


def test_explore_sample_with_a_dataset_problem(run, tmp_path, cvae, data, indices):
    ok(run("explore", "sample", cvae, "--data", data, "--index", indices[3], "-n", 2,
           "--device", "cpu", "--out", "d.png"))  # fmt: skip
    assert is_png(tmp_path / "d.png")


@pytest.mark.parametrize("kind", ["cvae", "vae"])
def test_explore_interpolate_between_two_dataset_designs(run, tmp_path, request, data, indices,
                                                         kind):  # fmt: skip
    ckpt = request.getfixturevalue(kind)
    r = ok(run("explore", "interpolate", ckpt, "--data", data, "--from", indices[0], "--to",
               indices[5], "--steps", 3, "--method", "linear", "--device", "cpu",
               "--out", "i.png"))  # fmt: skip
    assert "i.png" in r.output and is_png(tmp_path / "i.png")


def test_explore_traverse_writes_a_grid(run, tmp_path, cvae, data, indices):
    ok(run("explore", "traverse", cvae, "--problem", "l-bracket", "--dim", 1, "--range", -2, 2,
           "--steps", 3, "--device", "cpu", "--out", "t.png"))  # fmt: skip
    assert is_png(tmp_path / "t.png")
    ok(run("explore", "traverse", cvae, "--data", data, "--index", indices[1], "--dim", 3,
           "--steps", 2, "--device", "cpu", "--out", "t2.png"))  # fmt: skip
    assert is_png(tmp_path / "t2.png")


def test_explore_sample_an_unconditional_model_on_a_problem(run, tmp_path, vae):
    ok(run("explore", "sample", vae, "--problem", "cantilever", "-n", 2, "--device", "cpu",
           "--out", "v.png"))  # fmt: skip
    assert is_png(tmp_path / "v.png")


# -- search -------------------------------------------------------------------------------------
def test_search_all_methods_writes_search_json(run, tmp_path, cvae):
    r = ok(run("search", cvae, "--problem", "cantilever", "--method", "all", "--budget", 12,
               "--polish", 2, "--device", "cpu", "--quiet", "--out", "s"))  # fmt: skip
    summary = json.loads((tmp_path / "s" / "search.json").read_text())
    assert summary["problem"] == "cantilever"
    assert set(summary["methods"]) == set(METHODS)
    problem = preset("cantilever", W, H)
    simp = solve(problem)  # the command compares with SIMP on the same problem
    c_ref = compliance(simp.density, problem)
    assert summary["reference_compliance"] == pytest.approx(c_ref, rel=1e-9)
    for m, s in summary["methods"].items():
        assert s["evaluations"] == 12 and len(s["best_so_far"]) == 12, m
        assert 1 <= s["polish_iterations"] <= 2
        assert s["score"]["ce"] == pytest.approx(s["compliance"] / c_ref - 1, rel=1e-9)
        assert s["polished_score"]["volume"] == pytest.approx(problem.volfrac, abs=0.02)
        assert f"{m}: best C = " in r.output
    for name in ("curves.png", "designs.png"):
        assert is_png(tmp_path / "s" / name), name


def test_search_a_dataset_problem_against_its_stored_simp_design(run, tmp_path, cvae, data,
                                                                 indices):  # fmt: skip
    index = indices[7]
    ok(run("search", cvae, "--data", data, "--index", index, "--method", "random",
           "--method", "cmaes", "--budget", 5, "--polish", 0, "--device", "cpu", "--quiet",
           "--out", "s"))  # fmt: skip
    summary = json.loads((tmp_path / "s" / "search.json").read_text())
    assert list(summary["methods"]) == ["random", "cmaes"]
    ds = TopologyDataset(data, "all")
    k = ds.position(index)
    stored = ds[k]["density"][0].numpy().astype(np.float64)
    c_ref = compliance(stored, ds.problem(k))
    assert summary["reference_compliance"] == pytest.approx(c_ref, rel=1e-9)
    for s in summary["methods"].values():
        assert s["evaluations"] == 5 and s["polish_iterations"] is None
        assert s["polished_score"] is None


# -- evaluate -----------------------------------------------------------------------------------
def test_evaluate_writes_the_report(run, tmp_path, cvae, data):
    r = ok(run("evaluate", cvae, data, "--limit", 2, "-k", 2, "--polish", 1, "--device", "cpu",
               "--quiet", "--out", "rep"))  # fmt: skip
    for v in VARIANTS:
        assert f"{v}: CE mean" in r.output
    folder = tmp_path / "rep"
    report = json.loads((folder / "report.json").read_text())
    check_metrics(report["metrics"])
    assert (report["problems"], report["k"], report["polish_iterations"]) == (2, 2, 1)
    assert report["split"] == "test" and set(report["novelty"]) == {"best_mean", "simp_mean"}
    ds = TopologyDataset(data, "test")
    for k, row in enumerate(report["per_problem"]):  # CE against the stored SIMP design
        c_simp = compliance(ds[k]["density"][0].numpy().astype(np.float64), ds.problem(k))
        assert row["simp_compliance"] == pytest.approx(c_simp, rel=1e-8)
    assert (folder / "report.md").read_text().startswith("# Evaluation of a cvae")
    assert (folder / "report.html").is_file()
    assert is_png(folder / "cases.png") and is_png(folder / "ce.png")


def test_evaluate_nll_reports_the_iwae_estimate_beside_the_elbo(run, tmp_path, cvae, data):
    r = ok(run("evaluate", cvae, data, "--limit", 3, "-k", 2, "--polish", 0, "--nll", 20,
               "--device", "cpu", "--quiet", "--out", "rep"))  # fmt: skip
    assert "likelihood: -log p(x | c)" in r.output
    lik = json.loads((tmp_path / "rep" / "report.json").read_text())["likelihood"]
    assert (lik["k"], lik["designs"], lik["likelihood"]) == (20, 3, "bernoulli")
    assert np.isfinite(lik["nll_nats"]) and lik["nll_nats"] > 0
    # log mean exp >= mean of the same weights (Jensen): the bound is above the ELBO's draws
    assert -lik["nll_nats"] >= lik["elbo_nats"]
    assert lik["bits_per_element"] == pytest.approx(lik["nll_nats"] / (TINY * TINY * np.log(2)))
    assert "bits per element" in (tmp_path / "rep" / "report.md").read_text()
    assert json.loads((tmp_path / "rep" / "report.json").read_text())["factors"] is None
    again = ok(run("evaluate", cvae, data, "--limit", 3, "-k", 2, "--polish", 0, "--nll", 20,
                   "--device", "cpu", "--quiet", "--out", "rep2"))  # fmt: skip
    assert again.output.splitlines()[-2] == r.output.splitlines()[-2]  # seeded


def test_evaluate_factors_relates_latent_dimensions_to_the_known_factors(run, tmp_path, vae, data):
    r = ok(run("evaluate", vae, data, "--split", "all", "--limit", 12, "-k", 1, "--polish", 0,
               "--factors", "--device", "cpu", "--quiet", "--out", "rep"))  # fmt: skip
    assert "factors: MIG" in r.output
    fac = json.loads((tmp_path / "rep" / "report.json").read_text())["factors"]
    mi = np.asarray(fac["mi"])
    assert mi.shape == (len(fac["factors"]), 4)  # the tiny vae's latent dimensions
    assert "volfrac" in fac["factors"] and np.all((mi >= 0) & (mi <= 1 + 1e-9))
    gaps = [fac["gap"][n] for n in fac["factors"]]
    assert fac["mig"] == pytest.approx(np.mean(gaps))
    assert is_png(tmp_path / "rep" / "factors.png")
    assert "MIG" in (tmp_path / "rep" / "report.md").read_text()


# -- bad input: one line, exit code 2 ------------------------------------------------------------
def test_evaluate_refuses_a_model_of_another_size_than_the_data(run, cvae, data8):
    assert_one_line_error(run("evaluate", cvae, data8, "--out", "rep"), "12x12", "8x8")


@pytest.mark.parametrize("command", [
    ("search", "{ckpt}", "--budget", 4, "--out", "s"),
    ("explore", "sample", "{ckpt}", "--out", "x.png"),
    ("explore", "traverse", "{ckpt}", "--out", "x.png"),
])  # fmt: skip
def test_a_problem_with_two_load_cases_is_refused(run, cvae, command):
    r = run(*fill(command, ckpt=cvae), "--problem", "two-load", "--device", "cpu")
    assert_one_line_error(r, "one load case", "two-load")


@pytest.mark.parametrize("budget", [0, -4])
def test_search_refuses_a_budget_below_one(run, cvae, budget):
    r = run("search", cvae, "--problem", "cantilever", "--budget", budget, "--out", "s")
    assert_one_line_error(r, "--budget", f"got {budget}")


def test_search_refuses_an_unknown_method(run, cvae):
    r = run("search", cvae, "--problem", "cantilever", "--method", "nope", "--out", "s")
    assert_one_line_error(r, "'nope'", "random, cmaes, gradient")


@pytest.mark.parametrize("command", [
    ("explore", "sample", "{ckpt}", "--out", "x.png"),
    ("explore", "traverse", "{ckpt}", "--out", "x.png"),
    ("search", "{ckpt}", "--out", "s"),
])  # fmt: skip
def test_a_cvae_without_a_problem_is_refused(run, cvae, command):
    assert_one_line_error(run(*fill(command, ckpt=cvae)), "cvae", "--problem")


def test_searching_an_unconditional_model_needs_a_problem(run, vae):
    assert_one_line_error(run("search", vae, "--out", "s"), "give the problem to search for")


@pytest.mark.parametrize("command", [
    ("explore", "sample", "{ckpt}", "--problem", "cantilever", "--out", "x.png"),
    ("explore", "traverse", "{ckpt}", "--problem", "cantilever", "--out", "x.png"),
    ("explore", "interpolate", "{ckpt}", "--data", "{data}", "--from", 0, "--to", 1,
     "--out", "x.png"),
    ("search", "{ckpt}", "--problem", "cantilever", "--out", "s"),
    ("evaluate", "{ckpt}", "{data}", "--out", "rep"),
])  # fmt: skip
def test_a_missing_checkpoint_is_refused(run, data, command):
    r = run(*fill(command, ckpt="missing.pt", data=data))
    assert_one_line_error(r, "missing.pt", "does not exist")


@pytest.mark.parametrize("command", [
    ("explore", "sample", "{ckpt}", "--data", "{data}", "--index", "{bad}", "--out", "x.png"),
    ("explore", "traverse", "{ckpt}", "--data", "{data}", "--index", "{bad}", "--out", "x.png"),
    ("search", "{ckpt}", "--data", "{data}", "--index", "{bad}", "--out", "s"),
    ("explore", "interpolate", "{ckpt}", "--data", "{data}", "--from", "{good}", "--to", "{bad}",
     "--out", "x.png"),
])  # fmt: skip
def test_an_index_not_in_the_dataset_is_refused(run, cvae, data, indices, command):
    bad = max(indices) + 1000
    r = run(*fill(command, ckpt=cvae, data=data, bad=bad, good=indices[0]))
    assert_one_line_error(r, f"--index {bad}", "is not in")


@pytest.mark.parametrize("args, fragments", [
    (("explore", "sample", "{ckpt}", "--data", "{data}", "--out", "x.png"), ["--index"]),
    (("explore", "sample", "{ckpt}", "--problem", "mbb", "--data", "{data}", "--index", 0,
      "--out", "x.png"), ["one of --problem"]),
    (("explore", "sample", "{ckpt}", "--problem", "nope", "--out", "x.png"), ["'nope'"]),
    (("explore", "sample", "{ckpt}", "--problem", "mbb", "--volfrac", 1.5, "--out", "x.png"),
     ["volfrac"]),
    (("explore", "sample", "{ckpt}", "--problem", "mbb", "-n", 0, "--out", "x.png"), ["-n"]),
    (("explore", "sample", "{ckpt}", "--problem", "mbb", "--out", "no/such/x.png"),
     ["--out", "no/such"]),
    (("explore", "traverse", "{ckpt}", "--problem", "mbb", "--dim", 4, "--out", "x.png"),
     ["--dim", "[0, 3]", "got 4"]),
    (("explore", "traverse", "{ckpt}", "--problem", "mbb", "--steps", 1, "--out", "x.png"),
     ["--steps"]),
    (("explore", "interpolate", "{ckpt}", "--data", "{data}", "--from", "{i}", "--to", "{i}",
      "--method", "cubic", "--out", "x.png"), ["'cubic'"]),
    (("search", "{ckpt}", "--problem", "mbb", "--budget", 3, "--polish", -1, "--no-simp",
      "--out", "s"), ["--polish", "-1"]),
    (("evaluate", "{ckpt}", "{data}", "-k", 0, "--out", "rep"), ["-k", "got 0"]),
    (("evaluate", "{ckpt}", "{data}", "--limit", 0, "--out", "rep"), ["--limit"]),
    (("evaluate", "{ckpt}", "{data}", "--nll", -1, "--out", "rep"), ["--nll", "got -1"]),
    (("evaluate", "{ckpt}", "{data}", "--split", "nope", "--out", "rep"), ["'nope'"]),
    (("evaluate", "{ckpt}", "missing.h5", "--out", "rep"), ["missing.h5", "does not exist"]),
    (("evaluate", "{ckpt}", "{data}", "--out", "no/such/rep"), ["--out", "no/such"]),
    (("search", "{ckpt}", "--problem", "mbb", "--budget", 3, "--seed", -1, "--no-simp",
      "--out", "s"), ["--seed", "got -1"]),
    (("evaluate", "{ckpt}", "{data}", "--seed", -1, "--out", "rep"), ["--seed", "got -1"]),
    (("explore", "sample", "{ckpt}", "--problem", "mbb", "--seed", -1, "--out", "x.png"),
     ["--seed", "got -1"]),
])  # fmt: skip
def test_other_bad_input_is_refused_in_one_line(run, cvae, data, indices, args, fragments):
    r = run(*fill(args, ckpt=cvae, data=data, i=indices[0]), "--device", "cpu")
    assert_one_line_error(r, *fragments)
