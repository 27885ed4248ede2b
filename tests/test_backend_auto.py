"""backend="auto": the size-aware choice between the direct and the torch route.

The choosing function is tested directly (no timing here: the thresholds come from
`benchmarks/bench_simp.py --large`); the solves check that auto returns exactly what the chosen
route returns, and bad values end in one clear error.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from conftest import assert_one_line_error

from topovae.solvers import (
    AUTO_TORCH_MIN_ELEMENTS,
    BACKENDS,
    PRESETS,
    ProblemError,
    _backend,
    choose_backend,
    preset,
    solve,
)
from topovae.solvers.batched import solve_batch

SOLVERS = ("auto", "cholmod", "superlu")
SMALL = {"max_iter": 12, "rmin": 1.5}


def _no_torch_lookup(monkeypatch):
    """Make asking for the torch route's device fail: the choice must not need it."""

    def boom(device):
        raise AssertionError("choose_backend resolved a torch device for a small grid")

    monkeypatch.setattr(_backend, "_device_type", boom)


def _all_thresholds(monkeypatch, value):
    for key in list(AUTO_TORCH_MIN_ELEMENTS):
        monkeypatch.setitem(AUTO_TORCH_MIN_ELEMENTS, key, value)


@pytest.mark.parametrize("linear_solver", SOLVERS)
def test_auto_is_direct_on_every_preset_and_dataset_grid(monkeypatch, linear_solver):
    _no_torch_lookup(monkeypatch)
    for name in PRESETS:
        p = preset(name, linear_solver=linear_solver)
        assert choose_backend(p) == "direct", (name, p.nelx, p.nely)
    for nelx, nely in ((60, 20), (64, 64), (32, 32)):
        p = preset("mbb", nelx, nely, linear_solver=linear_solver)
        assert choose_backend(p, "auto", "cpu") == "direct"


def test_shipped_thresholds_stay_above_every_preset():
    largest = max(preset(name).nelx * preset(name).nely for name in PRESETS)
    for key, limit in AUTO_TORCH_MIN_ELEMENTS.items():
        assert limit is None or limit > largest, key


def test_with_cholmod_auto_is_direct_at_every_measured_size():
    """bench_simp --large: CHOLMOD beat the torch route on the CPU up to 1200x400."""
    assert AUTO_TORCH_MIN_ELEMENTS["cpu", "cholmod"] is None
    p = preset("mbb", 1200, 400, linear_solver="cholmod")
    assert choose_backend(p, "auto", "cpu") == "direct"


def test_without_cholmod_auto_takes_torch_from_the_threshold_on():
    limit = AUTO_TORCH_MIN_ELEMENTS["cpu", "superlu"]
    assert limit is not None
    nely = 20
    nelx = math.ceil(limit / nely)
    above = preset("mbb", nelx, nely, linear_solver="superlu")
    below = preset("mbb", nelx - 1, nely, linear_solver="superlu")
    assert above.nelx * above.nely >= limit > below.nelx * below.nely
    assert choose_backend(above, "auto", "cpu") == "torch"
    assert choose_backend(below, "auto", "cpu") == "direct"
    # the torch route cannot run these: auto stays direct
    assert choose_backend(above.with_settings(filter="heaviside"), "auto", "cpu") == "direct"
    assert choose_backend(above.with_settings(optimizer="mma"), "auto", "cpu") == "direct"
    assert choose_backend(above, "auto", "cpu", warm_start=True) == "direct"
    # CHOLMOD's threshold (none) applies when CHOLMOD is the direct solver
    assert choose_backend(above.with_settings(linear_solver="cholmod"), "auto", "cpu") == "direct"


def test_thresholds_are_per_device(monkeypatch):
    p = preset("mbb", 60, 20, linear_solver="superlu")
    monkeypatch.setitem(AUTO_TORCH_MIN_ELEMENTS, ("cpu", "superlu"), None)
    monkeypatch.setitem(AUTO_TORCH_MIN_ELEMENTS, ("cuda", "superlu"), 1000)
    monkeypatch.setattr(_backend, "_device_type", lambda device: device)
    assert choose_backend(p, "auto", "cuda") == "torch"
    assert choose_backend(p, "auto", "cpu") == "direct"


def test_explicit_backends_are_kept():
    p = preset("mbb", 60, 20)
    assert choose_backend(p, "direct") == "direct"
    assert choose_backend(p, "torch") == "torch"


def _same(a, b):
    assert a.linear_solver == b.linear_solver
    assert a.iterations == b.iterations
    assert a.compliance == b.compliance
    np.testing.assert_array_equal(a.density, b.density)
    np.testing.assert_array_equal(a.history["compliance"], b.history["compliance"])


def test_auto_returns_the_direct_result_below_the_threshold():
    p = preset("cantilever", 30, 15, **SMALL)
    auto, direct = solve(p), solve(p, backend="direct")  # auto is the default
    assert auto.linear_solver in ("cholmod", "superlu")
    _same(auto, direct)


def test_auto_returns_the_torch_result_above_the_threshold(monkeypatch):
    _all_thresholds(monkeypatch, 100)
    p = preset("cantilever", 30, 15, **SMALL)
    auto = solve(p, backend="auto", device="cpu")
    assert auto.linear_solver.startswith("mg-pcg (torch cpu")
    _same(auto, solve(p, backend="torch", device="cpu"))
    [batch] = solve_batch([p], device="cpu", threads=1)
    _same(auto, batch)
    # and not the direct route's figures to the last digit: the choice really changed the route
    direct = solve(p, backend="direct")
    assert auto.compliance != direct.compliance
    assert auto.compliance == pytest.approx(direct.compliance, rel=1e-3)


def test_torch_route_calls_back_every_iteration():
    p = preset("mbb", 30, 10, **SMALL)
    seen = []
    r = solve(p, backend="torch", device="cpu", callback=seen.append)
    assert [i.iteration for i in seen] == list(range(1, r.iterations + 1))
    assert [i.compliance for i in seen] == list(r.history["compliance"])
    assert all(i.beta is None for i in seen)


@pytest.mark.parametrize("bad", ["jax", "Direct", "", None, 3])
def test_bad_backend_is_one_clear_error(bad):
    p = preset("mbb", 30, 10)
    message = f"unknown backend {bad!r}; choose one of: auto, direct, torch"
    with pytest.raises(ProblemError) as e:
        solve(p, backend=bad)
    assert str(e.value) == message
    with pytest.raises(ProblemError) as e:
        choose_backend(p, bad)
    assert str(e.value) == message
    assert ", ".join(BACKENDS) == "auto, direct, torch"


def test_bad_device_name_is_refused_on_every_backend():
    p = preset("mbb", 30, 10)
    for backend in BACKENDS:
        with pytest.raises(ProblemError, match="unknown device 'tpu'; choose one of"):
            solve(p, backend=backend, device="tpu")
        with pytest.raises(ProblemError, match=r"device must be a name or a torch\.device, got 0"):
            solve(p, backend=backend, device=0)


def test_a_torch_device_is_taken():
    import torch

    p = preset("mbb", 30, 10, max_iter=3)
    r = solve(p, backend="torch", device=torch.device("cpu"))
    assert r.linear_solver.startswith("mg-pcg (torch cpu")


@pytest.mark.parametrize(
    ("settings", "fragment"),
    [
        ({"filter": "heaviside"}, "heaviside"),
        ({"optimizer": "mma"}, "MMA"),
        ({"reuse_tol": 1e-6}, "reuse_tol"),
    ],
)
def test_torch_backend_refuses_what_it_cannot_run(settings, fragment):
    with pytest.raises(ProblemError, match=fragment):
        solve(preset("mbb", 30, 10, **settings), backend="torch", device="cpu")


def test_torch_backend_refuses_a_warm_start():
    p = preset("mbb", 30, 10)
    with pytest.raises(ProblemError, match="x0"):
        solve(p, backend="torch", device="cpu", x0=np.full(p.shape, 0.5))
    # auto takes the direct route for a warm start, whatever the thresholds
    r = solve(p.with_settings(max_iter=3), x0=np.full(p.shape, 0.5))
    assert r.linear_solver in ("cholmod", "superlu")


# -- the command line ----------------------------------------------------------------------------
@pytest.mark.parametrize("bad", ["jax", "AUTO", "gpu"])
def test_cli_bad_backend_is_one_line_exit_2(run, bad):
    result = run("solve", "-q", "--nelx", 12, "--nely", 6, "--backend", bad)
    assert_one_line_error(result, f"unknown backend '{bad}'", "choose one of: auto, direct, torch")


def test_cli_default_backend_is_auto_and_direct_on_small_grids(run, tmp_path):
    common = ["solve", "-q", "--problem", "mbb", "--nelx", 60, "--nely", 20, "--rmin", 2.4]
    runs = {b: run(*common, "--backend", b, "--json", f"{b}.json") for b in ("auto", "direct")}
    default = run(*common, "--json", "default.json")
    for r in (*runs.values(), default):
        assert r.exit_code == 0, r.output
    j = {k: json.loads((tmp_path / f"{k}.json").read_text()) for k in ("auto", "direct", "default")}
    assert j["default"]["compliance"] == j["auto"]["compliance"] == j["direct"]["compliance"]
    assert j["default"]["iterations"] == j["direct"]["iterations"] == 144  # top88, density 2.4
    assert j["default"]["compliance"] == pytest.approx(233.71457, rel=1e-6)
    assert j["default"]["linear_solver"] == j["direct"]["linear_solver"]


def test_cli_auto_follows_the_threshold(run, tmp_path, monkeypatch):
    _all_thresholds(monkeypatch, 100)
    common = ["solve", "-q", "--problem", "mbb", "--nelx", 30, "--nely", 10, "--max-iter", 8]
    a = run(*common, "--device", "cpu", "--json", "auto.json")
    t = run(*common, "--backend", "torch", "--device", "cpu", "--json", "torch.json")
    assert a.exit_code == 0 and t.exit_code == 0, a.output + t.output
    ja, jt = (json.loads((tmp_path / f).read_text()) for f in ("auto.json", "torch.json"))
    assert ja["linear_solver"].startswith("mg-pcg (torch cpu")
    assert ja["compliance"] == jt["compliance"] and ja["iterations"] == jt["iterations"]
