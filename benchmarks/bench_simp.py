"""Speed and memory of topovae's SIMP loop against two top88 ports: a strong one, a faithful one.

The headline reference is `top88_strong`, top88 as a careful port writes it today (stiffness
values straight into a precomputed CSC pattern of the lower triangle of K(free, free), CHOLMOD
analysing it once with its own ordering, the OC bisection on the filtered volume's constant
weights): a reference must be the best version of the alternative. The faithful port below is
kept for the self-test against the published figures and as the 88 lines' own cost. Measured
2026-12-01 on 2 cores, 60 iterations, five paired runs (``--repeat 5``): 300x100 topovae 1.36x
(1.30-1.52) the strong port's speed, 150x50 1.22x, 60x20 0.96x (0.94-1.16; both spend ~60 % of
an iteration in the same CHOLMOD factorisation there); against the faithful port 3.6x to 5.0x.
Why not 2x at 300x100: the factorisation and solve alone take 1.6-1.9x less than the port's
whole iteration (bench_linear.py); 2026-12-02, three paired runs: 1.44x (1.40-1.50), 44 ms of
topovae's 61 ms being the numeric factorisation. With ``--reuse-tol 1e-6`` (topovae refactorises
only when two CG iterations on the last factor do not solve the new matrix) and ``--max-iter 0``
(to convergence, 927 iterations): 2.33x (2.28-2.39, two paired runs; 2.18x, 2.18-2.39, in a
second command of three), compliance within 3.0e-8.

What it measures. For the half MBB beam (volume fraction 0.5, density filter, penalty 3, OC with
move 0.2, tol 0.01) at 60x20, 150x50 and 300x100 elements (or ``--sizes``), it runs
`topovae.solvers.solve` and the reference below for the same number of iterations and reports,
per size: seconds per iteration (wall time of the optimisation loop only; one-time set-up is
timed separately), peak memory, the final compliances and their relative
difference, and the speed-up (reference s/it divided by topovae s/it).

The reference, `top88`, is a faithful vectorised NumPy/SciPy port of the 88-line MATLAB code of
Andreassen, Clausen, Schevenels, Lazarov & Sigmund (2011): KE from the A11/A12/B11/B12 formula,
edofMat, iK/jK, the filter matrix H/Hs with top88's loop semantics (vectorised over the elements),
and per iteration exactly top88's steps, including a fresh ``sparse(iK, jK, sK)`` (COO -> CSC),
``K = (K + K') / 2``, the slice ``K(free, free)``, and the density filter applied inside the OC
bisection. Its linear solver is the one topovae uses: CHOLMOD through cvxopt (the symbolic
analysis done once, ``cholmod.numeric`` every iteration, the SciPy matrix converted to a cvxopt
``spmatrix`` every iteration as a port has to), or SciPy's SuperLU (``splu``, as ``spsolve``)
when cvxopt is missing or ``--linear-solver superlu`` is given. One catch for the CHOLMOD port:
SciPy's ``K + K'`` drops entries that cancel exactly (e.g. x/y couplings between neighbours of
equal density), so the pattern of K(free, free) changes between iterations, and CHOLMOD's
numeric step on a pattern other than the analysed one is undefined (supernodal: it errors out).
The reference analyses the structural pattern once and pads each iteration's matrix with
explicit zeros (a cvxopt sparse add), timed under "to cvxopt". A self-test first checks the
port against top88's published MBB 60x20 results (rmin 2.4: density filter c = 233.71457 in 144
iterations, sensitivity filter c = 216.81366 in 106).

Filter radius. rmin = 1.5 * nelx / 60 (1.5 at 60x20, 3.75 at 150x50, 7.5 at 300x100), so the
filter has the same physical size on every grid and the designs (and iteration histories) stay
alike. It is capped at ``--rmin-max`` (default 8, reached at 600x200 and 1200x400): the filter
costs O(rmin^2) per element in both codes, and an uncapped radius of 30 elements at 1200x400 would
need more than 10 GB for H alone.

Memory. Each solve runs in a fresh process (multiprocessing, 'spawn'); the figure is the child's
peak RSS (``getrusage(RUSAGE_SELF).ru_maxrss``) minus its RSS just before the solve, i.e. the
extra memory of set-up plus loop, including CHOLMOD's C allocations that tracemalloc cannot see.

BLAS runs single-threaded (OMP/MKL/OPENBLAS_NUM_THREADS=1 are set before NumPy is imported); on
small machines BLAS threads make both codes several times slower.

Run (from the repository root; about 1 to 2 minutes with the defaults on 2 cores)::

    PYTHONPATH=. .venv/bin/python benchmarks/bench_simp.py
    PYTHONPATH=. .venv/bin/python benchmarks/bench_simp.py --sizes 60x20,300x100 --repeat 3
    PYTHONPATH=. .venv/bin/python benchmarks/bench_simp.py --linear-solver superlu --max-iter 0

``--max-iter 0`` runs both codes to convergence (change <= 0.01). The exit status is 1 when a
compliance check fails (self-test, or relative difference > 1e-4 / different iteration counts;
with ``--reuse-tol`` > 0, relative difference > 1e-6, iteration counts not checked).
``--no-faithful`` times only topovae and the strong port (the faithful one takes ~5 minutes per
run to convergence at 300x100)::

    PYTHONPATH=. .venv/bin/python benchmarks/bench_simp.py --sizes 300x100 --max-iter 0 \
        --repeat 2 --no-faithful --no-self-test --reuse-tol 1e-6

The scaling table, ``--large`` (about 8 minutes on 2 shared cores)::

    PYTHONPATH=. .venv/bin/python benchmarks/bench_simp.py --large [--json large.json]
    PYTHONPATH=. .venv/bin/python benchmarks/bench_simp.py --large --sizes 180x60 --timed 40

replaces the comparison above with every route at 60x20, 150x50, 300x100, 600x200 and 1200x400
(same problem and rmin rule): topovae's direct route with CHOLMOD and with SuperLU, the torch
multigrid-PCG route on the CPU (``--device``), the strong port, and ``backend="auto"`` with each
direct solver. Every solve runs in a fresh spawned process with one thread (BLAS and torch).
Seconds per iteration leave out the first iteration (CHOLMOD's symbolic analysis, torch's cold
CG start): 30, 20, 10, 5 and 3 timed iterations after it at the five sizes, 5, 3, 3, 2 and 2 runs
per route, routes interleaved; medians. Peak memory is the process's ru_maxrss minus that of an
idle process that made the same imports. Then the growth exponents (least-squares slope of log
s/it and log MiB against log elements), where the torch route overtakes each direct solver, and
``auto``'s time over the best route it chooses between. The torch route's cost per iteration
grows over a solve (CG iterations rise as the design sharpens: 17 to 37 in the first five at
1200x400), so the few timed early iterations at the large sizes favour it. The thresholds of
`topovae.solvers.AUTO_TORCH_MIN_ELEMENTS` come from this table.
"""

import os

os.environ["OMP_NUM_THREADS"] = "1"
os.environ["MKL_NUM_THREADS"] = "1"
os.environ["OPENBLAS_NUM_THREADS"] = "1"

import argparse
import itertools
import json
import math
import multiprocessing
import platform
import resource
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import scipy
import scipy.sparse as sp
import scipy.sparse.linalg as spla

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # so that `python benchmarks/bench_simp.py` finds topovae

DEFAULT_SIZES = ((60, 20), (150, 50), (300, 100))
TOP88_PUBLISHED = {2: (233.71457, 144), 1: (216.81366, 106)}  # MBB 60x20, vf 0.5, p 3, rmin 2.4
REL_TOL = 1e-4
REUSE_REL_TOL = 1e-6  # with --reuse-tol: the final compliance against the ports'
STEPS = ("assemble", "symmetrise", "K(free,free)", "to cvxopt", "factorise", "solve", "ce,c,dc")
STEPS += ("filter", "OC")


def cholmod_available() -> bool:
    try:
        import cvxopt.cholmod  # noqa: F401
    except ImportError:
        return False
    return True


# --------------------------------------------------------------------------------------------
# The reference: top88 (Andreassen et al. 2011), vectorised, 0-based indices. Element fields are
# vectors in MATLAB's x(:) order (column-major over the (nely, nelx) grid).
# --------------------------------------------------------------------------------------------


def _mbb_fe(nelx: int, nely: int, nu: float):
    """top88's element stiffness KE, edofMat, load F and free DOFs for the half MBB beam."""
    # PREPARE FINITE ELEMENT ANALYSIS
    A11 = np.array([[12, 3, -6, -3], [3, 12, 3, 0], [-6, 3, 12, -3], [-3, 0, -3, 12]])
    A12 = np.array([[-6, -3, 0, 3], [-3, -6, -3, -6], [0, -3, -6, 3], [3, -6, 3, -6]])
    B11 = np.array([[-4, 3, -2, 9], [3, -4, -9, 4], [-2, -9, -4, -3], [9, 4, -3, -4]])
    B12 = np.array([[2, -3, 4, -9], [-3, 2, 9, -2], [4, 9, 2, 3], [-9, -2, 3, 2]])
    KE = (
        1
        / (1 - nu**2)
        / 24
        * (np.block([[A11, A12], [A12.T, A11]]) + nu * np.block([[B11, B12], [B12.T, B11]]))
    )
    nele = nelx * nely
    ndof = 2 * (nelx + 1) * (nely + 1)
    nodenrs = np.arange((1 + nelx) * (1 + nely)).reshape(1 + nely, 1 + nelx, order="F")
    edofVec = (2 * nodenrs[:-1, :-1] + 2).ravel(order="F")  # 0-based 2*nodenrs+1
    edofMat = edofVec[:, None] + np.array(
        [0, 1, 2 * nely + 2, 2 * nely + 3, 2 * nely, 2 * nely + 1, -2, -1]
    )
    # DEFINE LOADS AND SUPPORTS (HALF MBB-BEAM)
    F = np.zeros(ndof)
    F[1] = -1.0
    fixeddofs = np.union1d(np.arange(0, 2 * (nely + 1), 2), [ndof - 1])
    freedofs = np.setdiff1d(np.arange(ndof), fixeddofs)
    return KE, edofMat, F, freedofs, nele, ndof


def _top88_filter(nelx: int, nely: int, rmin: float):
    """top88's filter matrix H (CSC) and its row sums Hs."""
    nele = nelx * nely
    # PREPARE FILTER: top88's quadruple loop, vectorised over the elements (i1, j1); one entry per
    # in-range neighbour (i2, j2), weight max(0, rmin - distance). sparse() drops the zeros.
    r = math.ceil(rmin) - 1
    i1, j1 = np.meshgrid(np.arange(nelx), np.arange(nely), indexing="ij")
    i1, j1 = i1.ravel(), j1.ravel()
    e1 = i1 * nely + j1
    iH, jH, sH = [], [], []
    for di in range(-r, r + 1):
        for dj in range(-r, r + 1):
            i2, j2 = i1 + di, j1 + dj
            ok = (i2 >= 0) & (i2 < nelx) & (j2 >= 0) & (j2 < nely)
            iH.append(e1[ok])
            jH.append((i2 * nely + j2)[ok])
            sH.append(np.full(int(ok.sum()), max(0.0, rmin - math.sqrt(di**2 + dj**2))))
    H = sp.coo_matrix(
        (np.concatenate(sH), (np.concatenate(iH), np.concatenate(jH))), shape=(nele, nele)
    ).tocsc()
    H.eliminate_zeros()
    Hs = np.asarray(H.sum(axis=1)).ravel()
    return H, Hs


def top88(
    nelx: int,
    nely: int,
    volfrac: float,
    penal: float,
    rmin: float,
    ft: int,
    *,
    linear_solver: str = "cholmod",
    max_iter: int = 10**6,
    tol: float = 0.01,
    stats: dict | None = None,
) -> tuple[float, int, float]:
    """Half MBB beam by top88 -> (compliance, iterations, seconds per iteration).

    ft = 1: sensitivity filter, ft = 2: density filter. ``stats`` (optional dict) receives the
    set-up time, the time of each step summed over iterations, and the number of iterations whose
    K(free, free) had to be padded to the analysed pattern (CHOLMOD only).
    """
    clock = time.perf_counter
    t_setup = clock()
    # MATERIAL PROPERTIES
    E0, Emin, nu = 1.0, 1e-9, 0.3
    KE, edofMat, F, freedofs, nele, ndof = _mbb_fe(nelx, nely, nu)
    iK = np.kron(edofMat, np.ones((8, 1), dtype=np.int64)).T.ravel(order="F")
    jK = np.kron(edofMat, np.ones((1, 8), dtype=np.int64)).T.ravel(order="F")
    KEv = KE.ravel(order="F")
    U = np.zeros(ndof)
    H, Hs = _top88_filter(nelx, nely, rmin)
    # INITIALIZE ITERATION
    x = np.full(nele, volfrac)
    xPhys = x.copy()
    loop = 0
    change = 1.0
    # Linear solver state
    use_cholmod = linear_solver == "cholmod"
    if use_cholmod:
        from cvxopt import cholmod, matrix, spmatrix
    symbolic = None
    Z = None
    n_padded = 0
    bF = F[freedofs]
    t = dict.fromkeys(STEPS, 0.0)
    t_loop = clock()
    # START ITERATION
    while change > tol and loop < max_iter:
        loop += 1
        # FE-ANALYSIS
        t0 = clock()
        sK = (KEv[:, None] * (Emin + xPhys**penal * (E0 - Emin))[None, :]).ravel(order="F")
        K0 = sp.coo_matrix((sK, (iK, jK)), shape=(ndof, ndof)).tocsc()
        t1 = clock()
        K = (K0 + K0.T) / 2
        t2 = clock()
        Kff = K[freedofs, :][:, freedofs]
        t3 = clock()
        t["assemble"] += t1 - t0
        t["symmetrise"] += t2 - t1
        t["K(free,free)"] += t3 - t2
        if use_cholmod:
            if symbolic is None:
                # First iteration: the structural pattern of K(free,free), as zeros. K0 keeps
                # every element-to-element entry; (K0 + K0')/2 drops the ones that cancel
                # exactly (many on the uniform start, and wherever neighbours have equal
                # densities), so its pattern changes from iteration to iteration.
                Ks = K0[freedofs, :][:, freedofs].tocoo()
                Z = spmatrix(
                    0.0, matrix(Ks.row.astype(np.int32)), matrix(Ks.col.astype(np.int32)), Ks.shape
                )
            Kc = Kff.tocoo()
            A = spmatrix(
                matrix(Kc.data),
                matrix(Kc.row.astype(np.int32)),
                matrix(Kc.col.astype(np.int32)),
                Kc.shape,
            )
            if Kc.nnz != len(Z):
                # CHOLMOD's numeric step needs the analysed pattern: pad with explicit zeros
                # (pattern(Kff) is a subset of pattern(Z), so equal counts mean equal patterns).
                A = A + Z
                n_padded += 1
            t4 = clock()
            if symbolic is None:  # symbolic analysis (ordering, etc.) once
                symbolic = cholmod.symbolic(Z, uplo="L")
            cholmod.numeric(A, symbolic)
            t5 = clock()
            b = matrix(bF)
            cholmod.solve(symbolic, b)
            U[freedofs] = np.asarray(b).ravel()
            t6 = clock()
        else:
            t4 = clock()
            lu = spla.splu(Kff)  # what spsolve(Kff, bF) does, split to time factor and solve
            t5 = clock()
            U[freedofs] = lu.solve(bF)
            t6 = clock()
        t["to cvxopt"] += t4 - t3
        t["factorise"] += t5 - t4
        t["solve"] += t6 - t5
        # OBJECTIVE FUNCTION AND SENSITIVITY ANALYSIS
        Ue = U[edofMat]
        ce = np.sum((Ue @ KE) * Ue, axis=1)
        c = np.sum((Emin + xPhys**penal * (E0 - Emin)) * ce)
        dc = -penal * (E0 - Emin) * xPhys ** (penal - 1) * ce
        dv = np.ones(nele)
        t7 = clock()
        # FILTERING/MODIFICATION OF SENSITIVITIES
        if ft == 1:
            dc = H @ (x * dc) / Hs / np.maximum(1e-3, x)
        elif ft == 2:
            dc = H @ (dc / Hs)
            dv = H @ (dv / Hs)
        t8 = clock()
        # OPTIMALITY CRITERIA UPDATE OF DESIGN VARIABLES AND PHYSICAL DENSITIES
        l1, l2, move = 0.0, 1e9, 0.2
        while (l2 - l1) / (l1 + l2) > 1e-3:
            lmid = 0.5 * (l2 + l1)
            xnew = np.maximum(
                0.0,
                np.maximum(
                    x - move, np.minimum(1.0, np.minimum(x + move, x * np.sqrt(-dc / dv / lmid)))
                ),
            )
            if ft == 1:
                xPhys = xnew
            elif ft == 2:
                xPhys = (H @ xnew) / Hs
            if xPhys.sum() > volfrac * nele:
                l1 = lmid
            else:
                l2 = lmid
        change = np.max(np.abs(xnew - x))
        x = xnew
        t9 = clock()
        t["ce,c,dc"] += t7 - t6
        t["filter"] += t8 - t7
        t["OC"] += t9 - t8
    seconds = clock() - t_loop
    if stats is not None:
        stats.update(
            setup=t_loop - t_setup,
            seconds=seconds,
            steps=t,
            n_padded=n_padded,
            solver=linear_solver,
        )
    return float(c), loop, seconds / max(loop, 1)


def top88_strong(
    nelx: int,
    nely: int,
    volfrac: float,
    penal: float,
    rmin: float,
    ft: int,
    *,
    max_iter: int = 10**6,
    tol: float = 0.01,
    stats: dict | None = None,
) -> tuple[float, int, float]:
    """top88 as a careful port writes it today -> (compliance, iterations, seconds per iteration).

    The same mathematics as `top88`, and what an expert port does beyond the 88 lines: the
    stiffness values go straight into a precomputed CSC pattern of the lower triangle of
    K(free, free) (one sparse product E -> values; no COO -> CSC, no K + K', no slicing), CHOLMOD
    analyses that pattern once with its own fill-reducing ordering and refactorises numerically
    each iteration, and the OC bisection uses the filtered volume's constant weights (the density
    filter is linear: sum(H x / Hs) = w . x), so no filter product runs inside the bisection.
    SuperLU (symmetric mode, minimum degree on A' + A) when cvxopt is missing.
    """
    clock = time.perf_counter
    t_setup = clock()
    E0, Emin, nu = 1.0, 1e-9, 0.3
    KE, edofMat, F, freedofs, nele, ndof = _mbb_fe(nelx, nely, nu)
    U = np.zeros(ndof)
    # the lower triangle of K(free, free) as a CSC pattern, and values = S @ E
    nfree = freedofs.size
    new = np.full(ndof, -1)
    new[freedofs] = np.arange(nfree)
    rows = np.repeat(new[edofMat][:, :, None], 8, axis=2)
    cols = rows.transpose(0, 2, 1)
    keep = (rows >= 0) & (cols >= 0) & (rows >= cols)
    elem = np.broadcast_to(np.arange(nele)[:, None, None], rows.shape)[keep]
    key = cols[keep] * nfree + rows[keep]
    pattern, position = np.unique(key, return_inverse=True)
    S = sp.csr_matrix(
        (np.broadcast_to(KE, rows.shape)[keep], (position, elem)), shape=(pattern.size, nele)
    )
    prow, pcol = (pattern % nfree).astype(np.int32), (pattern // nfree).astype(np.int32)
    H, Hs = _top88_filter(nelx, nely, rmin)
    H = H.tocsr()  # row-major: faster products
    vol_w = H.T @ (1.0 / Hs) if ft == 2 else np.ones(nele)  # sum(xPhys) = vol_w . x
    dv_filtered = H @ (np.ones(nele) / Hs)
    use_cholmod = cholmod_available()
    if use_cholmod:
        from cvxopt import cholmod, matrix, spmatrix

        A = spmatrix(matrix(np.ones(pattern.size)), matrix(prow), matrix(pcol), (nfree, nfree))
        symbolic = cholmod.symbolic(A, uplo="L")  # CHOLMOD's own ordering
    else:
        full_rows = np.concatenate([prow, pcol[prow != pcol]])
        full_cols = np.concatenate([pcol, prow[prow != pcol]])
    bF = F[freedofs]
    x = np.full(nele, volfrac)
    xPhys = x.copy()
    loop, change = 0, 1.0
    iter_end = []  # clock at the end of each iteration (--large times iterations 2..n)
    t_loop = clock()
    while change > tol and loop < max_iter:
        loop += 1
        E = Emin + xPhys**penal * (E0 - Emin)
        values = S @ E
        if use_cholmod:
            A.V = matrix(values)
            cholmod.numeric(A, symbolic)
            b = matrix(bF)
            cholmod.solve(symbolic, b)
            U[freedofs] = np.asarray(b).ravel()
        else:
            off = values[prow != pcol]
            K = sp.csc_matrix(
                (np.concatenate([values, off]), (full_rows, full_cols)), shape=(nfree, nfree)
            )
            lu = spla.splu(
                K, permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0,
                options={"SymmetricMode": True},
            )  # fmt: skip
            U[freedofs] = lu.solve(bF)
        Ue = U[edofMat]
        ce = np.sum((Ue @ KE) * Ue, axis=1)
        c = np.sum(E * ce)
        dc = -penal * (E0 - Emin) * xPhys ** (penal - 1) * ce
        dv = np.ones(nele)
        if ft == 1:
            dc = H @ (x * dc) / Hs / np.maximum(1e-3, x)
        elif ft == 2:
            dc = H @ (dc / Hs)
            dv = dv_filtered
        l1, l2, move = 0.0, 1e9, 0.2
        step = np.sqrt(-dc / dv)
        lo, hi = np.maximum(0.0, x - move), np.minimum(1.0, x + move)
        while (l2 - l1) / (l1 + l2) > 1e-3:
            lmid = 0.5 * (l2 + l1)
            xnew = np.clip(x * step / math.sqrt(lmid), lo, hi)
            if vol_w @ xnew > volfrac * nele:
                l1 = lmid
            else:
                l2 = lmid
        xPhys = (H @ xnew) / Hs if ft == 2 else xnew
        change = np.max(np.abs(xnew - x))
        x = xnew
        iter_end.append(clock())
    seconds = clock() - t_loop
    if stats is not None:
        stats.update(setup=t_loop - t_setup, seconds=seconds, iter_end=iter_end,
                     solver="cholmod" if use_cholmod else "superlu")  # fmt: skip
    return float(c), loop, seconds / max(loop, 1)


# --------------------------------------------------------------------------------------------
# Child processes: one solve each, peak RSS relative to the RSS just before it.
# --------------------------------------------------------------------------------------------


def _rss_mib() -> float:
    """Current resident set size in MiB (Linux /proc; elsewhere the peak so far)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return _peak_rss_mib()


def _peak_rss_mib() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes on macOS, else KiB


def _child(
    code: str, nelx: int, nely: int, rmin: float, solver: str, max_iter: int,
    reuse_tol: float | None,
) -> dict:  # fmt: skip
    import gc

    from topovae.solvers import preset, solve

    if solver == "cholmod":
        import cvxopt.cholmod  # noqa: F401
    gc.collect()
    rss0 = _rss_mib()
    if code == "topovae":
        settings = {"filter": "density", "rmin": rmin, "linear_solver": solver}
        p = preset("mbb", nelx, nely, 0.5, max_iter=max_iter, reuse_tol=reuse_tol, **settings)
        res = solve(p, backend="direct")  # this mode compares the direct route
        out = {
            "c": res.compliance,
            "its": res.iterations,
            "s_it": res.seconds_per_iteration,
            "setup": res.setup_seconds,
            "solver": res.linear_solver,
            "reuse_tol": res.reuse_tol,
            "factorizations": res.factorizations,
        }
    elif code == "strong":
        stats = {}
        c, its, s_it = top88_strong(nelx, nely, 0.5, 3.0, rmin, 2, max_iter=max_iter, stats=stats)
        out = {"c": c, "its": its, "s_it": s_it, "setup": stats["setup"], "solver": stats["solver"]}
    else:
        stats: dict = {}
        c, its, s_it = top88(
            nelx, nely, 0.5, 3.0, rmin, 2, linear_solver=solver, max_iter=max_iter, stats=stats
        )
        out = {"c": c, "its": its, "s_it": s_it, "setup": stats["setup"], "solver": solver}
        out["steps"], out["n_padded"] = stats["steps"], stats["n_padded"]
    out["peak_mib"] = max(0.0, _peak_rss_mib() - rss0)
    return out


def run_in_child(*args) -> dict:
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
        return pool.submit(_child, *args).result()


# --------------------------------------------------------------------------------------------


def self_test(solver: str) -> bool:
    parts, ok = [], True
    for ft, name in ((2, "density"), (1, "sensitivity")):
        c, its, _ = top88(60, 20, 0.5, 3.0, 2.4, ft, linear_solver=solver)
        c_ref, its_ref = TOP88_PUBLISHED[ft]
        good = abs(c - c_ref) <= 5e-6 * c_ref and its == its_ref
        ok &= good
        parts.append(
            f"{name} c={c:.5f} in {its} its (top88: {c_ref:.5f} in {its_ref}) "
            f"{'OK' if good else 'FAIL'}"
        )
    print(f"self-test, top88 port vs published MBB 60x20 rmin 2.4 [{solver}]: " + "; ".join(parts))
    parts = []
    for ft, name in ((2, "density"), (1, "sensitivity")):
        c, its, _ = top88_strong(60, 20, 0.5, 3.0, 2.4, ft)
        c_ref, its_ref = TOP88_PUBLISHED[ft]
        good = abs(c - c_ref) <= 5e-6 * c_ref and its == its_ref
        ok &= good
        parts.append(f"{name} c={c:.5f} in {its} its {'OK' if good else 'FAIL'}")
    print("self-test, strong port: " + "; ".join(parts))
    return ok


def parse_sizes(text: str) -> list[tuple[int, int]]:
    sizes = []
    for item in text.split(","):
        nx, _, ny = item.strip().lower().partition("x")
        sizes.append((int(nx), int(ny)))
    return sizes


# --------------------------------------------------------------------------------------------
# --large: the scaling table of every route, 60x20 to 1200x400 (issue 12, item 2).
# --------------------------------------------------------------------------------------------

# size -> (timed iterations after one warm-up iteration, runs per route): a whole --large run
# takes about 8 minutes on 2 shared cores.
LARGE_PLAN = {
    (60, 20): (30, 5),
    (150, 50): (20, 3),
    (300, 100): (10, 3),
    (600, 200): (5, 2),
    (1200, 400): (3, 2),
}
ROUTE_NOTES = {
    "direct": "topovae solve(backend='direct'): CHOLMOD when cvxopt imports (symbolic once)",
    "direct-superlu": "topovae solve(backend='direct', linear_solver='superlu')",
    "torch": "topovae solve(backend='torch', device={device!r}): batched MG-PCG, cg_tol 1e-5",
    "strong": "top88_strong: the strong top88 port (CHOLMOD with its own ordering, symbolic once)",
    "auto": "topovae solve(backend='auto', device={device!r}), linear_solver 'auto'",
    "auto-superlu": "topovae solve(backend='auto', device={device!r}, linear_solver='superlu')",
}
# the modules each route's child imports before the solve; the memory baseline is an idle child
# with the same imports
ROUTE_IMPORTS = {"torch": "torch", "strong": "strong"}  # every other route: "topovae"
PAIRS = (("auto", "direct", "torch"), ("auto-superlu", "direct-superlu", "torch"))


def _large_routes() -> tuple[str, ...]:
    if cholmod_available():
        return ("direct", "direct-superlu", "torch", "strong", "auto", "auto-superlu")
    return ("direct", "torch", "strong", "auto")  # direct and auto are SuperLU's then


def _route_imports(kind: str) -> None:
    import gc

    if cholmod_available():
        import cvxopt.cholmod  # noqa: F401
    if kind != "strong":
        import topovae.solvers
    if kind == "torch":
        import torch  # noqa: F401

        import topovae.solvers.batched  # noqa: F401
    gc.collect()


def _baseline_child(kind: str) -> float:
    """Peak RSS (MiB) of an idle interpreter that made the imports of a route of this kind."""
    _route_imports(kind)
    return _peak_rss_mib()


def _threads_now() -> dict:
    """The thread limits in force, as the libraries report them."""
    from threadpoolctl import threadpool_info

    out = {"blas/openmp": max((p["num_threads"] for p in threadpool_info()), default=None)}
    if "torch" in sys.modules:
        out["torch"] = sys.modules["torch"].get_num_threads()
    return out


def _scaling_child(
    route: str, nelx: int, nely: int, rmin: float, timed: int, device: str = "cpu"
) -> dict:
    """One solve of ``1 + timed`` iterations; s/it over iterations 2 .. 1 + timed."""
    from threadpoolctl import threadpool_limits

    _route_imports(ROUTE_IMPORTS.get(route, "topovae"))
    clock = time.perf_counter
    stamps: list[float] = []
    threads: dict = {}
    n = 1 + timed
    t0 = clock()
    if route == "strong":
        stats: dict = {}
        with threadpool_limits(limits=1):
            c, its, _ = top88_strong(nelx, nely, 0.5, 3.0, rmin, 2, max_iter=n, stats=stats)
            threads = _threads_now()
        stamps, solver, setup = stats["iter_end"], "strong " + stats["solver"], stats["setup"]
    else:
        from topovae.solvers import preset, solve

        backend, _, direct = route.partition("-")
        settings = {"filter": "density", "rmin": rmin, "max_iter": n}
        settings["linear_solver"] = direct or "auto"

        def stamp(info) -> None:
            if device.startswith("cuda") and "torch" in sys.modules:
                sys.modules["torch"].cuda.synchronize()  # no-op unless CUDA work is queued
            stamps.append(clock())
            if not threads:
                threads.update(_threads_now())

        p = preset("mbb", nelx, nely, 0.5, **settings)
        r = solve(p, backend=backend, device=device, threads=1, callback=stamp)
        c, its, solver, setup = r.compliance, r.iterations, r.linear_solver, r.setup_seconds
    wall = clock() - t0
    return {
        "route": route,
        "solver": solver,
        "c": float(c),
        "iterations": its,
        "timed_iterations": len(stamps) - 1,
        "s_it": (stamps[-1] - stamps[0]) / max(len(stamps) - 1, 1),
        "first_iteration_s": stamps[0] - (t0 + setup) if route != "strong" else None,
        "setup_s": setup,
        "wall_s": wall,
        "peak_rss_mib": _peak_rss_mib(),
        "threads": threads,
    }


def _in_child(fn, *args):
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
        return pool.submit(fn, *args).result()


def _slope(xs: list[float], ys: list[float]) -> float | None:
    """Least-squares slope of log y against log x (None with fewer than 2 positive points)."""
    pts = [(math.log(x), math.log(y)) for x, y in zip(xs, ys, strict=True) if y > 0]
    if len(pts) < 2:
        return None
    lx, ly = np.array(pts).T
    return float(np.polyfit(lx, ly, 1)[0])


def _crossover(elements: list[int], ratio: list[float]) -> str:
    """Where ratio = s/it(torch) / s/it(direct) crosses 1, log-interpolated between sizes."""
    for (n0, r0), (n1, r1) in itertools.pairwise(zip(elements, ratio, strict=True)):
        if r0 >= 1 > r1:
            f = math.log(r0) / (math.log(r0) - math.log(r1))
            n = math.exp(math.log(n0) + f * (math.log(n1) - math.log(n0)))
            return f"torch faster from ~{n:,.0f} elements (between {n0:,} and {n1:,})"
    if all(r >= 1 for r in ratio):
        return f"torch slower at every size ({min(ratio):.2f}x-{max(ratio):.2f}x the time)"
    if all(r < 1 for r in ratio):
        return f"torch faster at every size ({min(ratio):.2f}x-{max(ratio):.2f}x the time)"
    return "no single crossover: " + ", ".join(f"{r:.2f}" for r in ratio)


def large_main(plan: dict, rmin_max: float, json_path: str | None, device: str = "cpu") -> int:
    """The scaling table for ``plan``, {(nelx, nely): (timed iterations, runs per route)};
    returns 1 when a compliance check fails."""
    from topovae.solvers import AUTO_TORCH_MIN_ELEMENTS

    routes = _large_routes()
    print(
        "bench_simp --large: MBB half beam, vf 0.5, density filter, penal 3, OC move 0.2, "
        f"rmin = min(1.5*nelx/60, {rmin_max:g}); every solve in a fresh spawned process"
    )
    print(
        f"python {platform.python_version()}, numpy {np.__version__}, scipy {scipy.__version__}, "
        f"{os.cpu_count()} CPUs. ONE THREAD PER ROUTE: OMP/MKL/OPENBLAS_NUM_THREADS=1 before any "
        "import, solve(threads=1) (threadpoolctl limit 1, and torch.set_num_threads(1) on the "
        "torch route), the strong port under threadpool_limits(1)."
    )
    for route in routes:
        print(f"  {route:<15} {ROUTE_NOTES[route].format(device=device)}")
    print(
        "s/it: median over runs of (clock at the end of iteration 1 + k - clock at the end of "
        "iteration 1) / k, i.e. iteration 1 is the warm-up (CHOLMOD's symbolic analysis, torch's "
        "cold CG start) and is not in the figure; k per size below."
    )
    print(
        "MiB: peak resident set (getrusage ru_maxrss) of the solve's process minus that of an idle "
        "process with the same imports (median of 3); auto-superlu's includes importing torch "
        "when it picks the torch route."
    )
    ok = self_test("cholmod" if cholmod_available() else "superlu")
    sys.stdout.flush()

    kinds = sorted({ROUTE_IMPORTS.get(r, "topovae") for r in routes})
    base = {k: statistics.median(_in_child(_baseline_child, k) for _ in range(3)) for k in kinds}
    print("idle baselines, MiB: " + ", ".join(f"{k} {v:.1f}" for k, v in base.items()))

    t_start = time.perf_counter()
    results: dict[tuple[int, int], dict[str, list[dict]]] = {}
    for (nelx, nely), (timed, runs) in plan.items():
        rmin = min(1.5 * nelx / 60, rmin_max)
        res: dict[str, list[dict]] = {r: [] for r in routes}
        for k in range(runs):
            order = routes[k % len(routes) :] + routes[: k % len(routes)]  # rotate: fair noise
            for route in order:
                out = _in_child(_scaling_child, route, nelx, nely, rmin, timed, device)
                idle = base[ROUTE_IMPORTS.get(route, "topovae")]
                out["mib"] = max(0.0, out["peak_rss_mib"] - idle)
                res[route].append(out)
        results[nelx, nely] = res
        print(
            f"  {nelx}x{nely} done ({timed} timed its x {runs} runs per route, "
            f"{time.perf_counter() - t_start:.0f} s so far): "
            + ", ".join(f"{r} {statistics.median(o['s_it'] for o in res[r]):.4f}" for r in routes),
            flush=True,
        )

    def med(size, route, key):
        return statistics.median(o[key] for o in results[size][route])

    # 1. every route at every size
    rows = []
    for size in plan:
        nelx, nely = size
        c_ref = results[size]["direct"][0]["c"]
        for route in routes:
            outs = results[size][route]
            s_its = [o["s_it"] for o in outs]
            rel = max(abs(o["c"] - c_ref) / abs(c_ref) for o in outs)
            limit = 1e-3 if "torch" in outs[0]["solver"] else 1e-6
            good = rel <= limit and all(o["iterations"] == outs[0]["iterations"] for o in outs)
            ok &= good
            rows.append(
                (
                    f"{nelx}x{nely}",
                    f"{nelx * nely:,}",
                    route,
                    outs[0]["solver"],
                    f"1+{outs[0]['timed_iterations']} x{len(outs)}",
                    f"{statistics.median(s_its):.4f}",
                    f"{min(s_its):.4f}-{max(s_its):.4f}",
                    f"{med(size, route, 'setup_s'):.2f}",
                    f"{med(size, route, 'mib'):.1f}",
                    f"{med(size, route, 'peak_rss_mib'):.0f}",
                    f"{outs[0]['c']:.6f}",
                    f"{rel:.1e}" + ("" if good else " FAIL"),
                    ",".join(f"{k} {v}" for k, v in outs[0]["threads"].items()),
                )
            )
    print("\nseconds per iteration and peak memory, per route and size:")
    _table(
        ("size", "elements", "route", "solver used", "its (warm+timed) x runs", "s/it median",
         "s/it range", "setup s", "peak MiB", "RSS MiB", "c after its", "rel diff to direct",
         "threads"),
        rows,
    )  # fmt: skip
    print(
        "peak MiB: above the idle baseline (0.0: the solve stayed below the imports' own peak); "
        "RSS MiB: the process's whole peak."
    )
    print(
        "rel diff to direct: compliance after the same iterations, against topovae's direct route "
        "(limit 1e-6; 1e-3 for the torch route, whose CG stops at a relative residual of 1e-5)."
    )

    # 2. growth exponents
    elements = [nx * ny for nx, ny in plan]
    big = [i for i, n in enumerate(elements) if n >= 30_000]
    erows = []
    exps: dict[str, dict] = {}
    for route in routes:
        t = [med(s, route, "s_it") for s in plan]
        m = [med(s, route, "mib") for s in plan]
        e = {
            "time_all": _slope(elements, t),
            "time_large": _slope([elements[i] for i in big], [t[i] for i in big]),
            "memory_all": _slope(elements, m),
            "memory_large": _slope([elements[i] for i in big], [m[i] for i in big]),
        }
        exps[route] = e
        erows.append((route, *("-" if v is None else f"{v:.2f}" for v in e.values())))
    print("\ngrowth exponents: least-squares slope of log(figure) vs log(elements):")
    _table(("route", "s/it, all sizes", "s/it, >= 300x100", "MiB, all sizes",
            "MiB, >= 300x100"), erows)  # fmt: skip
    print("(memory slopes leave out sizes whose peak is 0 MiB above the idle baseline)")

    # 3. auto against the best route of its pair, and crossovers
    prow = []
    for auto, direct, torch_route in PAIRS:
        if auto not in routes:
            continue
        ratio_t = []
        for size in plan:
            t_d, t_t, t_a = (med(size, r, "s_it") for r in (direct, torch_route, auto))
            best = min((t_d, direct), (t_t, torch_route))
            ratio_t.append(t_t / t_d)
            chosen = "torch" if "torch" in results[size][auto][0]["solver"] else "direct"
            r = t_a / best[0]
            t_s = med(size, "strong", "s_it")
            prow.append(
                (
                    auto,
                    f"{size[0]}x{size[1]}",
                    f"{best[1]} {best[0]:.4f}",
                    chosen,
                    f"{t_a:.4f}",
                    f"{r:.3f}" + ("" if r <= 1.10 else "  OVER 10 %"),
                    f"{t_s / t_a:.2f}x",
                )
            )
        print(f"\n{direct} vs torch: {_crossover(elements, ratio_t)}; "
              f"torch/direct time ratios: " + ", ".join(f"{r:.2f}" for r in ratio_t))  # fmt: skip
    print("\nauto against the best route it chooses between (same run, medians):")
    _table(("auto", "size", "best route s/it", "auto chose", "auto s/it", "auto/best",
            "strong port speed vs auto"), prow)  # fmt: skip
    print(
        "auto/best > 1 where auto took the best route is run-to-run noise between processes on "
        "a shared machine. strong port speed vs auto = the port's s/it / auto's (below 1: the "
        "port is faster)."
    )
    print("AUTO_TORCH_MIN_ELEMENTS in topovae.solvers:", dict(AUTO_TORCH_MIN_ELEMENTS))
    print(f"total {time.perf_counter() - t_start:.0f} s for the table")
    if json_path:
        payload = {
            "plan": {f"{a}x{b}": {"timed": t, "runs": r} for (a, b), (t, r) in plan.items()},
            "baseline_mib": base,
            "runs": {f"{a}x{b}": res for (a, b), res in results.items()},
            "exponents": exps,
            "auto_torch_min_elements": {
                f"{d}/{s}": v for (d, s), v in AUTO_TORCH_MIN_ELEMENTS.items()
            },
        }
        Path(json_path).write_text(json.dumps(payload, indent=1) + "\n")
        print(f"wrote {json_path}")
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--large",
        action="store_true",
        help="the scaling table instead: every route at 60x20 .. 1200x400 (or --sizes)",
    )
    ap.add_argument("--json", help="--large: also write every figure to this JSON file")
    ap.add_argument("--timed", type=int, help="--large: timed iterations at every size")
    ap.add_argument("--runs", type=int, help="--large: runs per route at every size")
    ap.add_argument(
        "--device", default="cpu", help="--large: the torch (and auto) routes' device (cpu|cuda)"
    )
    ap.add_argument("--sizes", help="comma-separated NELXxNELY, e.g. 60x20,300x100")
    ap.add_argument(
        "--max-iter", type=int, default=60, help="iteration cap for both codes (0: to convergence)"
    )
    ap.add_argument("--linear-solver", choices=("auto", "cholmod", "superlu"), default="auto")
    ap.add_argument("--repeat", type=int, default=3, help="median s/it of K runs per code")
    ap.add_argument("--rmin-max", type=float, default=8.0, help="cap of rmin = 1.5 * nelx / 60")
    ap.add_argument("--no-self-test", action="store_true")
    ap.add_argument(
        "--reuse-tol",
        type=float,
        default=None,
        help="topovae's SIMPSettings.reuse_tol (default: topovae's default, auto; 0: factorise "
        "every iteration, as the ports do)",
    )
    ap.add_argument("--rmin", type=float, help="one filter radius for every size (e.g. 1.5)")
    ap.add_argument(
        "--no-faithful", action="store_true", help="time only topovae and the strong port"
    )
    args = ap.parse_args(argv)

    solver = args.linear_solver
    if solver == "auto":
        solver = "cholmod" if cholmod_available() else "superlu"
    elif solver == "cholmod" and not cholmod_available():
        ap.error("--linear-solver cholmod needs cvxopt")
    try:
        sizes = parse_sizes(args.sizes) if args.sizes else list(DEFAULT_SIZES)
    except ValueError:
        ap.error(f"--sizes: expected e.g. 60x20,300x100, got {args.sizes!r}")
    if args.repeat < 1:
        ap.error("--repeat must be >= 1")
    if args.reuse_tol is not None and not 0 <= args.reuse_tol < 1:
        ap.error(f"--reuse-tol must be in [0, 1), got {args.reuse_tol}")
    if args.large:
        sizes = parse_sizes(args.sizes) if args.sizes else list(LARGE_PLAN)
        if (args.timed is not None and args.timed < 1) or (args.runs is not None and args.runs < 1):
            ap.error("--timed and --runs must be >= 1")
        plan = {}
        for size in sizes:
            timed, runs = LARGE_PLAN.get(size, (5, 2))
            plan[size] = (args.timed or timed, args.runs or runs)
        return large_main(plan, args.rmin_max, args.json, args.device)
    max_iter = args.max_iter if args.max_iter > 0 else 10**6

    versions = f"numpy {np.__version__}, scipy {scipy.__version__}"
    if cholmod_available():
        import cvxopt

        versions += f", cvxopt {cvxopt.__version__}"
    print(
        "bench_simp: MBB half beam, vf 0.5, density filter, "
        + (f"rmin {args.rmin:g}" if args.rmin else f"rmin = min(1.5*nelx/60, {args.rmin_max:g})")
        + f", max_iter {args.max_iter or 'none'}, repeat {args.repeat}, topovae reuse_tol "
        + ("auto (its default)" if args.reuse_tol is None else f"{args.reuse_tol:g}")
    )
    print(
        f"python {platform.python_version()}, {versions}, {os.cpu_count()} CPUs, "
        f"BLAS threads {os.environ['OPENBLAS_NUM_THREADS']}"
    )
    ok = True
    if not args.no_self_test:
        ok &= self_test(solver)
    sys.stdout.flush()

    rows, breakdowns = [], []
    for nelx, nely in sizes:
        rmin = args.rmin or min(1.5 * nelx / 60, args.rmin_max)
        codes = ("topovae", "strong") if args.no_faithful else ("topovae", "strong", "top88")
        runs: dict[str, list[dict]] = {code: [] for code in codes}
        for _ in range(args.repeat):
            for code in runs:
                runs[code].append(
                    run_in_child(code, nelx, nely, rmin, solver, max_iter, args.reuse_tol)
                )
        if args.no_faithful:  # stand-ins: its "-", times nan
            runs["top88"] = [{"s_it": math.nan, "peak_mib": math.nan, "its": "-", "c": math.nan}]
        tv, st, rf = runs["topovae"][0], runs["strong"][0], runs["top88"][0]
        s_tv, s_st, s_rf = (statistics.median(r["s_it"] for r in runs[k]) for k in runs)
        m_tv, m_st, m_rf = (statistics.median(r["peak_mib"] for r in runs[k]) for k in runs)
        ratios = [b["s_it"] / a["s_it"] for a, b in zip(runs["topovae"], runs["strong"],
                                                         strict=True)]  # fmt: skip
        ports = (st,) if args.no_faithful else (st, rf)
        rel = max(abs(tv["c"] - o["c"]) / abs(o["c"]) for o in ports)
        if tv["reuse_tol"]:  # inexact solves may end a few iterations apart
            good = rel <= REUSE_REL_TOL
        else:
            good = rel <= REL_TOL and all(tv["its"] == o["its"] for o in ports)
        ok &= good
        rows.append(
            (
                f"{nelx}x{nely}",
                f"{rmin:g}",
                tv["solver"] + (f", {tv['factorizations']} fact." if tv["reuse_tol"] else ""),
                f"{tv['its']}/{st['its']}/{rf['its']}",
                f"{s_tv:.4f}",
                f"{s_st:.4f}",
                f"{s_st / s_tv:.2f}x ({min(ratios):.2f}-{max(ratios):.2f})",
                f"{s_rf:.4f}",
                f"{s_rf / s_tv:.2f}x",
                f"{m_tv:.1f}/{m_st:.1f}/{m_rf:.1f}",
                f"{tv['c']:.6f}",
                f"{rel:.1e}" + ("" if good else " FAIL"),
            )
        )
        if not args.no_faithful:
            steps = {
                k: statistics.median(r["steps"][k] / r["its"] for r in runs["top88"]) for k in STEPS
            }
            breakdowns.append(
                (f"{nelx}x{nely}", steps, s_rf, rf["n_padded"], tv["setup"], rf["setup"])
            )
        print(f"  {nelx}x{nely}: topovae {s_tv:.4f} s/it, strong port {s_st:.4f}, faithful "
              f"top88 {s_rf:.4f}", flush=True)  # fmt: skip

    header = ("size", "rmin", "solver", "its tv/strong/top88", "topovae s/it", "strong s/it")
    header += ("vs strong (range)", "top88 s/it", "vs top88", "MiB tv/strong/top88")
    header += ("c topovae", "max rel diff")
    _table(header, rows)

    print("speed-up = the port's median s/it over topovae's; the range is over the paired runs.")
    if not breakdowns:
        return 0 if ok else 1
    print("\nfaithful top88 port, time per iteration by step, ms/it (share of its loop):")
    steps_shown = [s for s in STEPS if solver == "cholmod" or s != "to cvxopt"]
    brows = []
    for size, steps, s_rf, n_pad, su_tv, su_rf in breakdowns:
        cells = [f"{1e3 * steps[s]:.1f} ({100 * steps[s] / s_rf:.0f}%)" for s in steps_shown]
        brows.append(
            (size, *cells, str(n_pad) if solver == "cholmod" else "-", f"{su_tv:.3f}/{su_rf:.3f}")
        )
    _table(("size", *steps_shown, "padded its", "setup s tv/ref"), brows)
    linear = (
        "to cvxopt = tocoo + spmatrix (+ zero padding to the analysed pattern in 'padded its'"
        " iterations); factorise = cholmod.numeric (symbolic once, in iteration 1)"
        if solver == "cholmod"
        else "factorise = splu (COLAMD ordering, every iteration, as spsolve)"
    )
    print(
        f"assemble = sK and sparse(iK, jK, sK); {linear}; filter = dc and dv; OC includes"
        " H*xnew/Hs in every bisection step; setup = one-time set-up outside the timed loop."
    )
    return 0 if ok else 1


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    print("  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True)))
    for r in rows:
        print("  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)))


if __name__ == "__main__":
    sys.exit(main())
