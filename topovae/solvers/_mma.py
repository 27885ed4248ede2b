"""Method of Moving Asymptotes (MMA) -- a NumPy implementation.

This module implements Svanberg's Method of Moving Asymptotes, the optimizer commonly used for
density-based topology optimization, following

    K. Svanberg, "MMA and GCMMA -- two methods for nonlinear optimization", KTH, Stockholm, 2007.
    (Originally: K. Svanberg, "The method of moving asymptotes -- a new method for structural
    optimization", Int. J. Numer. Meth. Eng. 24 (1987) 359-373.)

It solves problems in Svanberg's standard form

    minimize    f_0(x) + a_0 z + sum_i (c_i y_i + 0.5 d_i y_i^2)
    subject to  f_i(x) - a_i z - y_i <= 0,   i = 1..m
                xmin_j <= x_j <= xmax_j,     j = 1..n
                y_i >= 0, z >= 0

by generating, at each outer iteration, a convex separable approximating subproblem (the "MMA
approximation" of the note) which is solved by the note's primal-dual interior-point Newton
method. Comments below name the steps of the note; equation numbers are not quoted.

Public API
----------
* :func:`mmasub` -- one MMA step (build + solve the subproblem), all arrays 1-D.
* :func:`subsolv` -- the primal-dual solver of the MMA subproblem.
* :class:`MMA` -- a small stateful wrapper keeping the iteration history and asymptotes.

All x-like arrays have shape ``(n,)``, constraint-like arrays shape ``(m,)`` and constraint
gradients shape ``(m, n)``. Only elementwise operations and ``(m+1) x (m+1)`` (or ``(n+1) x
(n+1)`` when ``m >= n``) dense systems are used, so a step with ``n = 10^5`` and ``m = 1`` is
cheap.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .._checks import real_array
from ._problem import ProblemError, _finite_number, physical_memory

__all__ = ["MMA", "mmasub", "subsolv"]

FloatArray = NDArray[np.float64]

#: Smallest barrier parameter of the interior-point subproblem solver (as in the 2007 note).
EPSIMIN = 1e-7


def _vec(v: ArrayLike, size: int, name: str = "value") -> FloatArray:
    """Return ``v`` as a finite float64 1-D array of length ``size`` (scalars are broadcast);
    a ProblemError naming it otherwise."""
    arr = real_array(v, name, ProblemError)
    if not np.isfinite(arr).all():
        raise ProblemError(f"{name} must be finite")
    if arr.ndim == 0:
        return np.full(size, float(arr))
    arr = arr.reshape(-1)
    if arr.size != size:
        raise ProblemError(f"{name} must have {size} entries, got {arr.size}")
    return arr


def mmasub(
    m: int,
    n: int,
    iteration: int,
    xval: ArrayLike,
    xmin: ArrayLike,
    xmax: ArrayLike,
    xold1: ArrayLike,
    xold2: ArrayLike,
    f0val: float,
    df0dx: ArrayLike,
    fval: ArrayLike,
    dfdx: ArrayLike,
    low: ArrayLike,
    upp: ArrayLike,
    a0: float,
    a: ArrayLike,
    c: ArrayLike,
    d: ArrayLike,
    move: float = 0.5,
    asyinit: float = 0.5,
    asydecr: float = 0.7,
    asyincr: float = 1.2,
    asymin: float = 0.01,
    asymax: float = 10.0,
    raa0: float = 1e-5,
    albefa: float = 0.1,
) -> tuple[
    FloatArray,
    FloatArray,
    float,
    FloatArray,
    FloatArray,
    FloatArray,
    FloatArray,
    float,
    FloatArray,
    FloatArray,
    FloatArray,
]:
    """Perform one MMA iteration: build the convex subproblem at ``xval`` and solve it.

    Parameters
    ----------
    m, n : number of general constraints and of design variables.
    iteration : 1-based outer iteration counter (asymptotes are initialised for 1 and 2).
    xval, xmin, xmax : current point and variable bounds, shape ``(n,)`` (bounds may be scalars);
        ``xmin <= xval <= xmax`` is required.
    xold1, xold2 : the points of the previous two iterations, shape ``(n,)`` (only used when
        ``iteration >= 3``).
    f0val : objective value at ``xval`` (not needed by the method; kept for API symmetry).
    df0dx : objective gradient, shape ``(n,)``.
    fval : constraint values ``f_i(xval)``, shape ``(m,)``.
    dfdx : constraint gradients, shape ``(m, n)``.
    low, upp : asymptotes of the previous iteration, shape ``(n,)`` (ignored for
        ``iteration <= 2``).
    a0, a, c, d : the constants of the MMA problem formulation; ``a, c, d`` have shape ``(m,)``.
    move : move limit as a fraction of ``xmax - xmin``.
    asyinit, asydecr, asyincr, asymin, asymax : asymptote initialisation/update parameters.
    raa0 : small positive regularisation of the approximations.
    albefa : keeps the subproblem bounds ``alpha, beta`` away from the asymptotes.

    Returns
    -------
    xmma, ymma, zmma, lam, xsi, eta, mu, zet, s, low, upp
        The subproblem optimum ``x`` (n,), ``y`` (m,), ``z`` (float); its multipliers ``lam``
        (m,), ``xsi`` (n,), ``eta`` (n,), ``mu`` (m,), ``zet`` (float); the constraint slacks
        ``s`` (m,); and the new asymptotes ``low``, ``upp`` (n,).
    """
    del f0val  # the approximation only needs function values of the constraints
    xval = _vec(xval, n)
    xmin = _vec(xmin, n)
    xmax = _vec(xmax, n)
    df0dx = _vec(df0dx, n)
    fval = _vec(fval, m)
    dfdx = np.asarray(dfdx, dtype=np.float64).reshape(m, n)
    a = _vec(a, m)
    c = _vec(c, m)
    d = _vec(d, m)
    dx_range = xmax - xmin

    # --- Moving asymptotes low/upp (the note's asymptote update rules) -------------------
    if iteration <= 2:
        low = xval - asyinit * dx_range
        upp = xval + asyinit * dx_range
    else:
        xold1 = _vec(xold1, n)
        xold2 = _vec(xold2, n)
        low = _vec(low, n)
        upp = _vec(upp, n)
        # Oscillation (sign change) -> contract asymptotes; monotone progress -> expand.
        zzz = (xval - xold1) * (xold1 - xold2)
        gamma = np.ones(n)
        gamma[zzz > 0] = asyincr
        gamma[zzz < 0] = asydecr
        low = xval - gamma * (xold1 - low)
        upp = xval + gamma * (upp - xold1)
        # Keep the asymptote distances within [asymin, asymax] * (xmax - xmin).
        low = np.minimum(np.maximum(low, xval - asymax * dx_range), xval - asymin * dx_range)
        upp = np.maximum(np.minimum(upp, xval + asymax * dx_range), xval + asymin * dx_range)

    # --- Subproblem bounds alpha, beta: distance to asymptotes + move limit -------------
    alfa = np.maximum(np.maximum(low + albefa * (xval - low), xval - move * dx_range), xmin)
    beta = np.minimum(np.minimum(upp - albefa * (upp - xval), xval + move * dx_range), xmax)

    # --- Approximation coefficients p_ij, q_ij, r_i of the MMA approximation -----------
    # p_ij = (u_j - x_j)^2 (1.001 (df_i/dx_j)^+ + 0.001 (df_i/dx_j)^- + raa0 / (xmax_j - xmin_j))
    # q_ij = (x_j - l_j)^2 (0.001 (df_i/dx_j)^+ + 1.001 (df_i/dx_j)^- + raa0 / (xmax_j - xmin_j))
    xmamiinv = 1.0 / np.maximum(dx_range, 1e-5)
    ux1 = upp - xval
    xl1 = xval - low
    ux2 = ux1 * ux1
    xl2 = xl1 * xl1
    p0 = np.maximum(df0dx, 0.0)
    q0 = np.maximum(-df0dx, 0.0)
    pq0 = 0.001 * (p0 + q0) + raa0 * xmamiinv
    p0 = (p0 + pq0) * ux2
    q0 = (q0 + pq0) * xl2
    P = np.maximum(dfdx, 0.0)
    Q = np.maximum(-dfdx, 0.0)
    PQ = 0.001 * (P + Q) + raa0 * xmamiinv[None, :]
    P = (P + PQ) * ux2[None, :]
    Q = (Q + PQ) * xl2[None, :]
    # b_i = -r_i, chosen so that the approximation of f_i equals f_i(xval) at xval.
    b = P @ (1.0 / ux1) + Q @ (1.0 / xl1) - fval

    xmma, ymma, zmma, lam, xsi, eta, mu, zet, s = subsolv(
        m, n, EPSIMIN, low, upp, alfa, beta, p0, q0, P, Q, a0, a, b, c, d
    )
    return xmma, ymma, zmma, lam, xsi, eta, mu, zet, s, low, upp


def subsolv(
    m: int,
    n: int,
    epsimin: float,
    low: FloatArray,
    upp: FloatArray,
    alfa: FloatArray,
    beta: FloatArray,
    p0: FloatArray,
    q0: FloatArray,
    P: FloatArray,
    Q: FloatArray,
    a0: float,
    a: FloatArray,
    b: FloatArray,
    c: FloatArray,
    d: FloatArray,
    max_newton: int = 200,
) -> tuple[
    FloatArray, FloatArray, float, FloatArray, FloatArray, FloatArray, FloatArray, float, FloatArray
]:
    """Solve the MMA subproblem by the note's primal-dual interior-point method.

    Subproblem:

        minimize    sum_j (p0_j/(u_j-x_j) + q0_j/(x_j-l_j)) + a0 z + sum_i (c_i y_i + d_i y_i^2/2)
        subject to  sum_j (P_ij/(u_j-x_j) + Q_ij/(x_j-l_j)) - a_i z - y_i <= b_i
                    alfa_j <= x_j <= beta_j,  y >= 0,  z >= 0.

    ``low, upp, alfa, beta, p0, q0`` have shape ``(n,)``; ``P, Q`` shape ``(m, n)``;
    ``a, b, c, d`` shape ``(m,)``. The relaxed KKT conditions are solved by damped Newton
    steps for a decreasing sequence of barrier parameters ``epsi = 1, 0.1, ...`` down to
    ``epsimin``.

    Returns ``x, y, z, lam, xsi, eta, mu, zet, s`` of the (approximate) optimum.
    """
    a = np.asarray(a, dtype=np.float64).reshape(m)
    b = np.asarray(b, dtype=np.float64).reshape(m)
    c = np.asarray(c, dtype=np.float64).reshape(m)
    d = np.asarray(d, dtype=np.float64).reshape(m)
    P = np.asarray(P, dtype=np.float64).reshape(m, n)
    Q = np.asarray(Q, dtype=np.float64).reshape(m, n)

    # Starting point of the primal-dual method.
    epsi = 1.0
    x = 0.5 * (alfa + beta)
    y = np.ones(m)
    z = 1.0
    lam = np.ones(m)
    xsi = np.maximum(1.0 / (x - alfa), 1.0)
    eta = np.maximum(1.0 / (beta - x), 1.0)
    mu = np.maximum(0.5 * c, 1.0)
    zet = 1.0
    s = np.ones(m)

    def residual(
        x: FloatArray,
        y: FloatArray,
        z: float,
        lam: FloatArray,
        xsi: FloatArray,
        eta: FloatArray,
        mu: FloatArray,
        zet: float,
        s: FloatArray,
        epsi: float,
    ) -> tuple[float, float, tuple[FloatArray, ...]]:
        """2-norm and max-norm of the residual of the relaxed KKT conditions.

        Also returns intermediate arrays reused by the next Newton step.
        """
        uxinv1 = 1.0 / (upp - x)
        xlinv1 = 1.0 / (x - low)
        uxinv2 = uxinv1 * uxinv1
        xlinv2 = xlinv1 * xlinv1
        plam = p0 + lam @ P  # psi-coefficients p0_j + sum_i lam_i p_ij
        qlam = q0 + lam @ Q
        gvec = P @ uxinv1 + Q @ xlinv1  # g_i(x) of the subproblem constraints
        dpsidx = plam * uxinv2 - qlam * xlinv2
        parts = (
            dpsidx - xsi + eta,  # stationarity w.r.t. x
            c + d * y - mu - lam,  # stationarity w.r.t. y
            np.array([a0 - zet - a @ lam]),  # stationarity w.r.t. z
            gvec - a * z - y + s - b,  # constraints with slack s
            xsi * (x - alfa) - epsi,  # relaxed complementarity conditions
            eta * (beta - x) - epsi,
            mu * y - epsi,
            np.array([zet * z - epsi]),
            lam * s - epsi,
        )
        sq = sum(float(p @ p) for p in parts)
        mx = max(float(np.max(np.abs(p))) for p in parts)
        return float(np.sqrt(sq)), mx, (uxinv1, xlinv1, uxinv2, xlinv2, plam, qlam, gvec, dpsidx)

    while epsi > epsimin:
        residunorm, residumax, cache = residual(x, y, z, lam, xsi, eta, mu, zet, s, epsi)
        ittt = 0
        while residumax > 0.9 * epsi and ittt < max_newton:
            ittt += 1
            # --- Newton system for the relaxed KKT conditions, variables eliminated -------
            uxinv1, xlinv1, uxinv2, xlinv2, plam, qlam, gvec, dpsidx = cache
            GG = P * uxinv2[None, :] - Q * xlinv2[None, :]  # dg_i/dx_j, shape (m, n)
            xa = x - alfa
            bx = beta - x
            delx = dpsidx - epsi / xa + epsi / bx
            dely = c + d * y - lam - epsi / y
            delz = a0 - a @ lam - epsi / z
            dellam = gvec - a * z - y - b + epsi / lam
            diagx = 2.0 * (plam * uxinv2 * uxinv1 + qlam * xlinv2 * xlinv1) + xsi / xa + eta / bx
            diagxinv = 1.0 / diagx
            diagy = d + mu / y
            diagyinv = 1.0 / diagy
            diaglamyi = s / lam + diagyinv

            if m < n:
                # Reduced (m+1) x (m+1) system in (dlam, dz).
                blam = dellam + dely * diagyinv - GG @ (delx * diagxinv)
                AA = np.empty((m + 1, m + 1))
                AA[:m, :m] = (GG * diagxinv[None, :]) @ GG.T
                AA[np.arange(m), np.arange(m)] += diaglamyi
                AA[:m, m] = a
                AA[m, :m] = a
                AA[m, m] = -zet / z
                sol = np.linalg.solve(AA, np.append(blam, delz))
                dlam = sol[:m]
                dz = float(sol[m])
                dx = -delx * diagxinv - (dlam @ GG) * diagxinv
            else:
                # Reduced (n+1) x (n+1) system in (dx, dz).
                diaglamyiinv = 1.0 / diaglamyi
                dellamyi = dellam + dely * diagyinv
                AA = np.empty((n + 1, n + 1))
                AA[:n, :n] = GG.T @ (diaglamyiinv[:, None] * GG)
                AA[np.arange(n), np.arange(n)] += diagx
                axz = -GG.T @ (a * diaglamyiinv)
                AA[:n, n] = axz
                AA[n, :n] = axz
                AA[n, n] = zet / z + a @ (a * diaglamyiinv)
                rhs_x = delx + GG.T @ (dellamyi * diaglamyiinv)
                rhs_z = delz - a @ (dellamyi * diaglamyiinv)
                sol = np.linalg.solve(AA, -np.append(rhs_x, rhs_z))
                dx = sol[:n]
                dz = float(sol[n])
                dlam = (GG @ dx) * diaglamyiinv - dz * (a * diaglamyiinv) + dellamyi * diaglamyiinv

            # Back-substitution of the eliminated variables.
            dy = -dely * diagyinv + dlam * diagyinv
            dxsi = -xsi + epsi / xa - (xsi * dx) / xa
            deta = -eta + epsi / bx + (eta * dx) / bx
            dmu = -mu + epsi / y - (mu * dy) / y
            dzet = -zet + epsi / z - zet * dz / z
            ds = -s + epsi / lam - (s * dlam) / lam

            # --- Step length keeping all variables strictly feasible ----------------------
            stmxx = max(
                float(np.max(-1.01 * dy / y)),
                -1.01 * dz / z,
                float(np.max(-1.01 * dlam / lam)),
                float(np.max(-1.01 * dxsi / xsi)),
                float(np.max(-1.01 * deta / eta)),
                float(np.max(-1.01 * dmu / mu)),
                -1.01 * dzet / zet,
                float(np.max(-1.01 * ds / s)),
            )
            stmalbe = max(float(np.max(-1.01 * dx / xa)), float(np.max(1.01 * dx / bx)))
            steg = 1.0 / max(stmalbe, stmxx, 1.0)

            # Backtracking until the residual norm decreases.
            xold, yold, zold, lamold = x, y, z, lam
            xsiold, etaold, muold, zetold, sold = xsi, eta, mu, zet, s
            itto = 0
            resinew = 2.0 * residunorm
            while resinew > residunorm and itto < 50:
                itto += 1
                x = xold + steg * dx
                y = yold + steg * dy
                z = zold + steg * dz
                lam = lamold + steg * dlam
                xsi = xsiold + steg * dxsi
                eta = etaold + steg * deta
                mu = muold + steg * dmu
                zet = zetold + steg * dzet
                s = sold + steg * ds
                resinew, resimax, cache = residual(x, y, z, lam, xsi, eta, mu, zet, s, epsi)
                steg /= 2.0
            residunorm = resinew
            residumax = resimax
        epsi *= 0.1

    return x, y, float(z), lam, xsi, eta, mu, float(zet), s


class MMA:
    """Stateful MMA optimizer for ``min f0(x)  s.t.  f_i(x) <= 0,  xmin <= x <= xmax``.

    Keeps the iteration counter, the last two iterates and the asymptotes between calls. The
    bounds ``xmin`` / ``xmax`` (scalars or shape ``(n,)``) may be reassigned between calls, e.g.
    to impose per-iteration move limits in topology optimization.

    Example::

        opt = MMA(n, m, xmin=0.0, xmax=1.0)
        for _ in range(50):
            x = opt.update(x, f0, df0dx, fval, dfdx)
    """

    def __init__(
        self,
        n: int,
        m: int,
        xmin: ArrayLike,
        xmax: ArrayLike,
        move: float = 0.5,
        a0: float = 1.0,
        a: ArrayLike | None = None,
        c: ArrayLike | None = None,
        d: ArrayLike | None = None,
        **asymptote_params: Any,
    ) -> None:
        allowed = {"asyinit", "asydecr", "asyincr", "asymin", "asymax", "raa0", "albefa"}
        unknown = set(asymptote_params) - allowed
        if unknown:
            raise TypeError(f"unknown MMA parameter(s): {sorted(unknown)}")
        for name, v in (("n", n), ("m", m)):
            if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 1:
                raise ProblemError(f"MMA {name} must be a positive integer, got {v!r}")
        have = physical_memory()
        if have is not None and 8 * 40 * (n + m * n) > have:  # ~40 working vectors (and dfdx)
            raise ProblemError(
                f"MMA with n={n} variables and m={m} constraints needs about "
                f"{8 * 40 * (n + m * n) / 2**30:,.0f} GiB; this machine has {have / 2**30:.0f} GiB"
            )
        self.n = int(n)
        self.m = int(m)
        self.xmin = _vec(xmin, self.n, "xmin")
        self.xmax = _vec(xmax, self.n, "xmax")
        if np.any(self.xmin > self.xmax):
            raise ProblemError("MMA bounds must satisfy xmin <= xmax")
        if not 0 < _finite_number("move", move) <= 1:
            raise ProblemError(f"move must be in (0, 1], got {move!r}")
        if not _finite_number("a0", a0) > 0:
            raise ProblemError(f"a0 must be > 0, got {a0!r}")
        self.move = float(move)
        self.a0 = float(a0)
        self.a = np.zeros(m) if a is None else _vec(a, m, "a")
        self.c = np.full(m, 1000.0) if c is None else _vec(c, m, "c")
        self.d = np.ones(m) if d is None else _vec(d, m, "d")
        self.asymptote_params = dict(asymptote_params)
        self.iteration = 0
        self.xold1: FloatArray | None = None
        self.xold2: FloatArray | None = None
        self.low = np.zeros(n)
        self.upp = np.ones(n)
        #: Multipliers ``lam`` (m,) of the last subproblem, useful for KKT checks.
        self.lam = np.zeros(m)

    def update(
        self, x: ArrayLike, f0val: float, df0dx: ArrayLike, fval: ArrayLike, dfdx: ArrayLike
    ) -> FloatArray:
        """Return the next iterate given ``x`` (n,), ``f0val``, ``df0dx`` (n,), ``fval`` (m,)
        and ``dfdx`` (m, n) evaluated at ``x``."""
        xval = _vec(x, self.n, "x").copy()
        xmin, xmax = self.xmin, self.xmax
        if np.any(xval < xmin) or np.any(xval > xmax):
            raise ProblemError("x must satisfy xmin <= x <= xmax")
        _finite_number("f0val", f0val)
        df0dx = _vec(df0dx, self.n, "df0dx")
        fval = _vec(fval, self.m, "fval")
        dfdx = real_array(dfdx, "dfdx", ProblemError)
        if dfdx.shape != (self.m, self.n) or not np.isfinite(dfdx).all():
            raise ProblemError(
                f"dfdx must be a finite ({self.m}, {self.n}) array, got shape {dfdx.shape}"
            )
        self.iteration += 1
        xold1 = xval if self.xold1 is None else self.xold1
        xold2 = xold1 if self.xold2 is None else self.xold2
        xmma, _y, _z, lam, _xsi, _eta, _mu, _zet, _s, low, upp = mmasub(
            self.m,
            self.n,
            self.iteration,
            xval,
            xmin,
            xmax,
            xold1,
            xold2,
            f0val,
            df0dx,
            fval,
            dfdx,
            self.low,
            self.upp,
            self.a0,
            self.a,
            self.c,
            self.d,
            move=self.move,
            **self.asymptote_params,
        )
        self.xold2 = xold1
        self.xold1 = xval
        self.low, self.upp, self.lam = low, upp, lam
        return xmma
