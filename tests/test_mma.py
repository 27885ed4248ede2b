"""Tests of the NumPy MMA implementation in ``topovae.solvers._mma``."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from scipy.optimize import minimize

from topovae.solvers._mma import MMA, mmasub, subsolv

OUT_NAMES = ("xmma", "ymma", "zmma", "lam", "xsi", "eta", "mu", "zet", "s", "low", "upp")


def _random_problem(rng: np.random.Generator, m: int, n: int) -> tuple[Callable, ...]:
    """A smooth random problem: objective f0, gradient, constraints f (m,), Jacobian (m, n)."""
    w = rng.uniform(0.5, 2.0, n)
    t = rng.uniform(-1.0, 2.0, n)
    A = rng.normal(size=(m, n))
    B = rng.uniform(0.1, 1.0, (m, n))
    r = rng.uniform(0.5, 2.0, m)

    def f0(x: np.ndarray) -> float:
        return float(np.sum(w * (x - t) ** 2) + np.sum(np.sin(x)))

    def df0(x: np.ndarray) -> np.ndarray:
        return 2.0 * w * (x - t) + np.cos(x)

    def f(x: np.ndarray) -> np.ndarray:
        return A @ x + B @ (x**2) - r

    def df(x: np.ndarray) -> np.ndarray:
        return A + 2.0 * B * x[None, :]

    return f0, df0, f, df


@pytest.mark.parametrize(
    ("m", "n", "seed", "kwargs"),
    [
        (1, 1, 0, {}),
        (1, 8, 1, {}),
        (2, 15, 2, {"move": 0.2}),
        (4, 40, 3, {"move": 0.3, "asyinit": 0.3, "asyincr": 1.1, "asydecr": 0.6}),
        (3, 3, 4, {}),  # m >= n: the (n+1) x (n+1) Newton system
        (6, 2, 5, {"move": 0.1, "albefa": 0.2, "raa0": 1e-4}),
    ],
)
def test_mmasub_matches_mmapy(m: int, n: int, seed: int, kwargs: dict) -> None:
    mmapy = pytest.importorskip("mmapy")
    rng = np.random.default_rng(seed)
    f0, df0, f, df = _random_problem(rng, m, n)
    xmin = rng.uniform(-1.5, -0.5, n)
    xmax = rng.uniform(1.5, 2.5, n)
    x = rng.uniform(-0.5, 1.5, n)
    xold1, xold2 = x.copy(), x.copy()
    low, upp = xmin.copy(), xmax.copy()
    a0, a, c, d = 1.0, np.zeros(m), np.full(m, 1000.0), np.ones(m)
    if seed % 2:  # also exercise a_i > 0 and non-default c, d
        a, c, d = rng.uniform(0.0, 1.0, m), np.full(m, 100.0), rng.uniform(0.0, 2.0, m)

    def col(v: np.ndarray) -> np.ndarray:
        return np.asarray(v, dtype=float).reshape(-1, 1)

    for it in range(1, 7):  # iterations 1, 2 (asymptote init) and 3+ (asymptote update)
        args = (x, xmin, xmax, xold1, xold2, f0(x), df0(x), f(x), df(x), low, upp, a0, a, c, d)
        ours = mmasub(m, n, it, *args, **kwargs)
        ref = mmapy.mmasub(
            m,
            n,
            it,
            col(x),
            col(xmin),
            col(xmax),
            col(xold1),
            col(xold2),
            f0(x),
            col(df0(x)),
            col(f(x)),
            df(x),
            col(low),
            col(upp),
            a0,
            col(a),
            col(c),
            col(d),
            **kwargs,
        )
        assert len(ours) == len(ref) == len(OUT_NAMES)
        for name, o, r in zip(OUT_NAMES, ours, ref, strict=True):
            o, r = np.ravel(o), np.ravel(r)
            assert o.shape == r.shape, name
            rtol = 1e-8 if name in ("xmma", "low", "upp") else 1e-6
            np.testing.assert_allclose(o, r, rtol=rtol, atol=rtol, err_msg=f"{name}, it={it}")
        assert ours[0].shape == (n,)
        assert ours[3].shape == (m,)
        xold2, xold1, x = xold1, x, ours[0]
        low, upp = ours[9], ours[10]
    assert it >= 3


def _subproblem_kkt_residual(m: int, n: int, seed: int) -> float:
    """Solve a random MMA subproblem and return the max KKT residual of its optimum."""
    rng = np.random.default_rng(seed)
    low, upp = np.full(n, -1.0), np.full(n, 2.0)
    alfa, beta = np.full(n, -0.8), np.full(n, 1.8)
    p0, q0 = rng.uniform(0.01, 1.0, n), rng.uniform(0.01, 1.0, n)
    P, Q = rng.uniform(0.0, 1.0, (m, n)), rng.uniform(0.0, 1.0, (m, n))
    a0, a = 1.0, rng.uniform(0.0, 0.5, m)
    c, d = np.full(m, 50.0), np.ones(m)
    x0 = np.full(n, 0.5)
    b = P @ (1.0 / (upp - x0)) + Q @ (1.0 / (x0 - low)) - rng.uniform(-0.2, 0.2, m)
    x, y, z, lam, xsi, eta, mu, zet, s = subsolv(
        m, n, 1e-7, low, upp, alfa, beta, p0, q0, P, Q, a0, a, b, c, d
    )
    assert np.all(x >= alfa) and np.all(x <= beta)
    for v in (y, lam, xsi, eta, mu, s):
        assert np.all(v >= 0.0)
    assert z >= 0.0 and zet >= 0.0
    ux, xl = upp - x, x - low
    dpsi = (p0 + lam @ P) / ux**2 - (q0 + lam @ Q) / xl**2
    g = P @ (1.0 / ux) + Q @ (1.0 / xl)
    res = [
        dpsi - xsi + eta,
        c + d * y - mu - lam,
        [a0 - zet - a @ lam],
        g - a * z - y + s - b,
        xsi * (x - alfa),
        eta * (beta - x),
        mu * y,
        [zet * z],
        lam * s,
    ]
    return max(float(np.max(np.abs(r))) for r in res)


@pytest.mark.parametrize(("m", "n"), [(1, 50), (3, 20), (4, 4), (8, 3)])
def test_subsolv_satisfies_kkt(m: int, n: int) -> None:
    # Covers both the (m+1)- and the (n+1)-sized Newton systems without mmapy.
    assert _subproblem_kkt_residual(m, n, seed=10 * m + n) < 1e-6


def _toy_f(x: np.ndarray) -> np.ndarray:
    return np.array(
        [
            (x[0] - 5) ** 2 + (x[1] - 2) ** 2 + (x[2] - 1) ** 2 - 9.0,
            (x[0] - 3) ** 2 + (x[1] - 4) ** 2 + (x[2] - 3) ** 2 - 9.0,
        ]
    )


def _toy_df(x: np.ndarray) -> np.ndarray:
    return 2.0 * np.array(
        [[x[0] - 5, x[1] - 2, x[2] - 1], [x[0] - 3, x[1] - 4, x[2] - 3]],
    )


def test_svanberg_toy_problem() -> None:
    # Svanberg (2007), toy problem: min x1^2 + x2^2 + x3^2 s.t. two spheres of radius 3,
    # 0 <= x <= 5, x0 = (4, 3, 2), a0 = 1, a = 0, c = 1000, d = 1.
    opt = MMA(3, 2, xmin=0.0, xmax=5.0, a0=1.0, a=np.zeros(2), c=np.full(2, 1000.0), d=1.0)
    x = np.array([4.0, 3.0, 2.0])
    for _ in range(100):
        x_new = opt.update(x, float(x @ x), 2.0 * x, _toy_f(x), _toy_df(x))
        step = np.max(np.abs(x_new - x))
        x = x_new
        if step < 1e-10:
            break
    assert step < 1e-8

    ref = minimize(
        lambda v: v @ v,
        [4.0, 3.0, 2.0],
        jac=lambda v: 2.0 * v,
        method="SLSQP",
        bounds=[(0.0, 5.0)] * 3,
        constraints=[{"type": "ineq", "fun": lambda v: -_toy_f(v), "jac": lambda v: -_toy_df(v)}],
        options={"ftol": 1e-12, "maxiter": 500},
    )
    assert ref.success, ref.message
    np.testing.assert_allclose(x, ref.x, atol=1e-4)
    np.testing.assert_allclose(x, [2.0175, 1.7800, 1.2375], atol=1e-4)
    assert abs(x @ x - ref.fun) < 1e-4

    # KKT at the MMA solution: both constraints active, lam > 0, stationarity.
    lam = opt.lam
    np.testing.assert_allclose(_toy_f(x), 0.0, atol=1e-6)
    assert np.all(lam > 0.0)
    np.testing.assert_allclose(2.0 * x + _toy_df(x).T @ lam, 0.0, atol=1e-5)


def test_mma_respects_updated_bounds() -> None:
    # Per-iteration move limits as in topology optimization: bounds change between calls.
    n, m = 30, 1
    rng = np.random.default_rng(7)
    t = rng.uniform(-0.5, 1.5, n)
    x = np.full(n, 0.5)
    opt = MMA(n, m, xmin=np.zeros(n), xmax=np.ones(n))
    for _ in range(40):
        lo, hi = np.maximum(0.0, x - 0.05), np.minimum(1.0, x + 0.05)
        opt.xmin, opt.xmax = lo, hi
        fval = np.array([x.mean() - 0.4])
        x_new = opt.update(
            x, float(np.sum((x - t) ** 2)), 2.0 * (x - t), fval, np.full((1, n), 1 / n)
        )
        assert x_new.shape == (n,)
        assert np.all(x_new >= lo) and np.all(x_new <= hi)
        x = x_new
    assert x.mean() <= 0.4 + 1e-6
    # Scalar bounds are accepted as well.
    lo, hi = float(x.min()), float(x.min()) + 0.01
    opt.xmin, opt.xmax = lo, hi
    fval = np.array([x.mean() - 0.4])
    with pytest.raises(ValueError):  # x outside the new box
        opt.update(x, 0.0, 2.0 * (x - t), fval, np.full((1, n), 1 / n))
    x = np.clip(x, lo, hi)
    x = opt.update(x, 0.0, 2.0 * (x - t), fval, np.full((1, n), 1 / n))
    assert np.all(x >= lo) and np.all(x <= hi)


def test_mma_large_n_analytic_optimum() -> None:
    # min sum_j w_j (x_j - t_j)^2 / 2  s.t.  sum_j x_j <= V,  0 <= x <= 1.
    # With an interior optimum: x_j = t_j - lam / w_j, lam = (sum t - V) / sum(1 / w).
    n = 5000
    rng = np.random.default_rng(3)
    w = rng.uniform(1.0, 2.0, n)
    t = rng.uniform(0.4, 0.8, n)
    V = t.sum() - 0.1 * np.sum(1.0 / w)
    lam_exact = (t.sum() - V) / np.sum(1.0 / w)
    x_exact = t - lam_exact / w
    assert np.all((x_exact > 0.0) & (x_exact < 1.0))

    # Scale the constraint to O(1): f1 = (sum x - V) / n.
    opt = MMA(n, 1, xmin=0.0, xmax=1.0, move=0.2)
    x = np.full(n, 0.5)
    dfdx = np.full((1, n), 1.0 / n)
    for _ in range(60):
        x_new = opt.update(
            x, float(0.5 * w @ (x - t) ** 2), w * (x - t), np.array([(x.sum() - V) / n]), dfdx
        )
        step = np.max(np.abs(x_new - x))
        x = x_new
        if step < 1e-9:
            break
    np.testing.assert_allclose(x, x_exact, atol=1e-6)
    np.testing.assert_allclose(opt.lam[0] / n, lam_exact, rtol=1e-4)


def test_mma_rejects_unknown_parameter() -> None:
    with pytest.raises(TypeError):
        MMA(2, 1, 0.0, 1.0, asyinitt=0.3)
