"""One prepared GPU check (run by benchmarks/gpu_check.sh): the measured parts, one JSON file.

Each ``--part`` runs in its own process (the shell script gives each its own ``timeout``) and
merges its result under its key in ``--out``/gpu_check.json, saving after every measurement, so
a part that is killed keeps what it had measured and never touches the other parts' results.
Every measurement is wrapped in try/except and checked against the part's time budget (a
measurement that would not fit is recorded as skipped), so the JSON is always written.

Parts:
  tests   the CUDA tests (pytest -k "cuda or resolve_device" on the files that hold them; without
          pytest, the same test functions under a minimal stand-in; "skipped: no CUDA" without
          a GPU), passed / failed / skipped counts.
  fe      the batched torch FE against the direct solver on every preset: compliance of a
          uniform 0.5 field and of the direct SIMP design (`topovae.solvers.compliance`, CPU)
          against `topovae.solvers.batched.compliance` on the device, its gradient against the
          same code on the CPU, and the batched SIMP (`solve_batch`) against `solve`.
  gen     64x64 mixed generation with the batched SIMP (`generate(..., device=, batch=)`) at
          batch 256 (n 1024) and 1024 (n 2048), designs/s end to end and solve-only; for the
          first 32 designs the direct CPU SIMP of the same sampled problems against the stored
          GPU labels, and the direct FE compliance of the stored GPU designs against their labels.
  train   training samples/s at 64x64 (cvae, default U-Net, 7 condition channels, batch 256) in
          float32 and bf16 autocast, eager and torch.compile: `Trainer`'s step (augmentation,
          forward with the noise generator, loss terms, backward, clipping, AdamW, scheduler)
          on random tensors, 20 warm-up and 50 timed steps between torch.cuda.synchronize().
  summary the shell's step statuses merged in, pass/fail against the targets, a short print.

    PYTHONPATH=. python benchmarks/gpu_check.py --part fe --out out/gpu_check
    PYTHONPATH=. python benchmarks/gpu_check.py --part all --quick --device cpu   # dry run
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

SCHEMA = "topovae-gpu-check/1"
TARGETS = {
    "generation_designs_per_s_64x64": 200.0,  # batched SIMP, mixed 64x64
    "training_samples_per_s_bf16": 20_000.0,  # cvae 64x64, one GPU
    "fe_compliance_rel_diff_max": 1e-6,  # fixed density, batched FE (CG 1e-10) vs direct
    "simp_compliance_rel_diff_max": 1e-3,  # batched SIMP vs direct SIMP, same problem
}
PARTS = ("tests", "fe", "gen", "train")
# seconds each part plans its measurements in (the shell's timeout is a little longer)
BUDGETS = {"tests": 55.0, "fe": 55.0, "gen": 110.0, "train": 130.0}
CUDA_TEST_FILES = (
    "tests/test_augment.py", "tests/test_batched.py", "tests/test_bad_input.py",
    "tests/test_training.py",
)  # fmt: skip
CUDA_TEST_K = "cuda or resolve_device"
FALLBACK_TESTS = (  # run without pytest: (file, function)
    ("tests/test_augment.py", "test_augment_batch_on_cuda_matches_cpu"),
    ("tests/test_batched.py", "test_resolve_device"),
)


class Terminated(BaseException):
    """SIGTERM (the shell's timeout): record what was measured, then stop."""


class OverBudget(Exception):
    pass


def _on_sigterm(signum, frame):
    raise Terminated(f"signal {signum} (timeout)")


# -- the JSON file ------------------------------------------------------------------------------
class Report:
    def __init__(self, out: Path) -> None:
        self.path = out / "gpu_check.json"
        out.mkdir(parents=True, exist_ok=True)

    def load(self) -> dict:
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}

    def update(self, **items) -> None:
        data = self.load()
        data.setdefault("schema", SCHEMA)
        data.setdefault("targets", TARGETS)
        data.update(items)
        tmp = self.path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(_jsonable(data), indent=1, allow_nan=False))
        os.replace(tmp, self.path)


def _jsonable(v):
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_jsonable(x) for x in v]
    if hasattr(v, "item") and not isinstance(v, str | bytes):  # numpy / torch scalars
        try:
            v = v.item()
        except (TypeError, ValueError):
            return str(v)
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if v is None or isinstance(v, bool | int | float | str):
        return v
    return str(v)


def _error(e: BaseException) -> str:
    lines = traceback.format_exception(type(e), e, e.__traceback__)
    return "".join(lines)[-1500:]


class Budget:
    def __init__(self, seconds: float) -> None:
        self.seconds, self.t0 = seconds, time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def left(self) -> float:
        return self.seconds - self.elapsed()

    def need(self, seconds: float, what: str) -> None:
        if self.left() < seconds:
            raise OverBudget(
                f"skipped: budget ({what} needs ~{seconds:.0f} s, {max(self.left(), 0):.0f} s left)"
            )


def _rel(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1e-300)


def _sync(dev) -> None:
    import torch

    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def _reset_peak(dev) -> None:
    import torch

    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
        torch.cuda.reset_peak_memory_stats(dev)


def _peak_gib(dev) -> float | None:
    import torch

    if dev.type != "cuda":
        return None
    return torch.cuda.max_memory_allocated(dev) / 2**30


def _device(name: str):
    import torch

    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} asked for, but torch sees no CUDA GPU")
    return dev


# -- environment --------------------------------------------------------------------------------
def environment(args) -> dict:
    env: dict = {
        "host": socket.gethostname(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
    }
    import importlib.util

    env["modules"] = {
        m: importlib.util.find_spec(m) is not None
        for m in ("pytest", "threadpoolctl", "cvxopt", "filelock", "cma", "triton", "hypothesis")
    }
    try:
        import torch

        env["torch"] = torch.__version__
        env["torch_cuda"] = torch.version.cuda
        env["cuda_available"] = torch.cuda.is_available()
        env["cudnn"] = torch.backends.cudnn.version() if torch.cuda.is_available() else None
        env["matmul_allow_tf32"] = torch.backends.cuda.matmul.allow_tf32
        env["cudnn_allow_tf32"] = torch.backends.cudnn.allow_tf32
        if torch.cuda.is_available():
            i = torch.cuda.current_device()
            p = torch.cuda.get_device_properties(i)
            env["gpu"] = {
                "name": p.name,
                "count": torch.cuda.device_count(),
                "memory_gib": p.total_memory / 2**30,
                "capability": f"{p.major}.{p.minor}",
                "multiprocessors": p.multi_processor_count,
                "bf16_supported": torch.cuda.is_bf16_supported(),
            }
        env["device_asked"] = args.device
    except Exception as e:
        env["error"] = _error(e)
    try:
        from topovae import __version__

        env["topovae"] = __version__
    except Exception as e:
        env["topovae_error"] = _error(e)
    try:
        git = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, timeout=5
        )
        env["git_commit"] = git.stdout.strip() or None
    except Exception:
        env["git_commit"] = None
    return env


# -- part: CUDA tests ---------------------------------------------------------------------------
def part_tests(args, budget: Budget, save) -> dict:
    import torch

    res: dict = {"files": list(CUDA_TEST_FILES), "k": CUDA_TEST_K}
    if not torch.cuda.is_available():
        res["status"] = "skipped: no CUDA"
        return res
    import importlib.util

    if importlib.util.find_spec("pytest") is None:
        res["runner"] = "fallback (no pytest): the test functions under a minimal stand-in"
        res.update(_fallback_tests())
        return res
    res["runner"] = "pytest"
    xml = Path(args.out) / "cuda_tests.xml"
    log = Path(args.out) / "cuda_tests.log"
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", CUDA_TEST_K,
           "--continue-on-collection-errors", f"--junitxml={xml}", *CUDA_TEST_FILES]  # fmt: skip
    res["command"] = " ".join(cmd)
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path}
    t = time.perf_counter()
    try:
        p = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=env,
                           timeout=max(budget.left(), 5))  # fmt: skip
        res["returncode"] = p.returncode
        log.write_text(p.stdout + p.stderr)
        res["tail"] = (p.stdout + p.stderr)[-1200:]
    except subprocess.TimeoutExpired as e:
        res["returncode"] = None
        res["status"] = "timeout"
        out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        res["tail"] = out[-1200:]
    res["seconds"] = time.perf_counter() - t
    res.update(_junit_counts(xml))
    if "status" not in res:
        ok = res.get("returncode") == 0 and res.get("failed", 0) == 0 and res.get("errors", 0) == 0
        res["status"] = "ok" if ok and res.get("passed", 0) > 0 else "failed"
    return res


def _junit_counts(xml: Path) -> dict:
    import xml.etree.ElementTree as ET

    try:
        root = ET.parse(xml).getroot()
    except (OSError, ET.ParseError):
        return {}
    counts = {"passed": 0, "failed": 0, "errors": 0, "skipped": 0}
    failed_ids = []
    for case in root.iter("testcase"):
        name = f"{case.get('classname')}::{case.get('name')}"
        tags = {child.tag for child in case}
        if "failure" in tags:
            counts["failed"] += 1
            failed_ids.append(name)
        elif "error" in tags:
            counts["errors"] += 1
            failed_ids.append(name)
        elif "skipped" in tags:
            counts["skipped"] += 1
        else:
            counts["passed"] += 1
    counts["failed_ids"] = failed_ids
    return counts


def _fallback_tests() -> dict:
    """The CUDA test functions without pytest: a stand-in `pytest` module (decorators as the
    identity, `raises` checking type and message) is enough for them."""
    import contextlib
    import importlib.util
    import re
    import types

    stub = types.ModuleType("pytest")

    def _identity_decorator(*a, **k):
        if len(a) == 1 and callable(a[0]) and not k:
            return a[0]
        return lambda f: f

    class _Mark:
        def __getattr__(self, name):
            return _identity_decorator

    @contextlib.contextmanager
    def raises(exc, match=None):
        try:
            yield
        except exc as e:
            if match is not None and not re.search(match, str(e)):
                raise AssertionError(f"{e!r} does not match {match!r}") from e
            return
        raise AssertionError(f"did not raise {exc}")

    stub.mark, stub.fixture, stub.raises = _Mark(), _identity_decorator, raises
    stub.param = lambda *a, **k: a
    stub.approx = lambda v, **k: v
    sys.modules.setdefault("pytest", stub)
    sys.path.insert(0, str(REPO / "tests"))
    counts = {"passed": 0, "failed": 0, "errors": 0, "skipped": 0, "failed_ids": []}
    for file, name in FALLBACK_TESTS:
        try:
            spec = importlib.util.spec_from_file_location(Path(file).stem, REPO / file)
            mod = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(mod)
            getattr(mod, name)()
            counts["passed"] += 1
        except Exception as e:
            counts["failed"] += 1
            counts["failed_ids"].append(f"{file}::{name}: {_error(e)[-400:]}")
    counts["status"] = "ok" if counts["failed"] == 0 else "failed"
    return counts


# -- part: batched FE vs the direct solver ------------------------------------------------------
def part_fe(args, budget: Budget, save) -> dict:
    import numpy as np
    import torch

    from topovae.solvers import PRESETS, compliance, preset, solve
    from topovae.solvers.batched import compliance as torch_compliance
    from topovae.solvers.batched import solve_batch

    dev = _device(args.device)
    cpu = torch.device("cpu")
    f64 = torch.float64
    max_iter = 20 if args.quick else 100  # same cap for both SIMP codes
    res: dict = {"device": str(dev), "simp_max_iter": max_iter, "presets": {}, "status": "ok"}

    def problem(name, **settings):
        p = preset(name, **settings)
        if args.quick:  # tiny grids for the dry run
            nx, ny = p.shape[1], p.shape[0]
            p = preset(name, max(6, nx // 4), max(4, ny // 4), **settings)
        return p

    _reset_peak(dev)
    # 1. a uniform 0.5 field: direct FE vs batched FE (CG to 1e-10), and the gradient vs CPU torch
    for name in PRESETS:
        row = res["presets"].setdefault(name, {})
        try:
            budget.need(2, "uniform field")
            p = problem(name)
            row["grid"] = f"{p.shape[1]}x{p.shape[0]}"
            rho = np.full(p.shape, 0.5)
            t = time.perf_counter()
            c_direct = compliance(rho, p)
            row["direct_fe_seconds"] = time.perf_counter() - t
            x = torch.tensor(rho, dtype=f64, device=dev, requires_grad=True)
            t = time.perf_counter()
            c_dev = torch_compliance(x[None], [p], physical=False, tol=1e-10)[0]
            c_dev.backward()
            _sync(dev)
            row["batched_fe_seconds"] = time.perf_counter() - t
            xc = torch.tensor(rho, dtype=f64, device=cpu, requires_grad=True)
            torch_compliance(xc[None], [p], physical=False, tol=1e-10)[0].backward()
            g_dev, g_cpu = x.grad.cpu(), xc.grad
            row["uniform"] = {
                "direct": c_direct,
                "batched": float(c_dev.detach()),
                "rel_diff": _rel(float(c_dev.detach()), c_direct),
                "grad_rel_diff_vs_cpu_torch": float((g_dev - g_cpu).norm() / g_cpu.norm()),
            }
        except OverBudget as e:
            row["uniform"] = str(e)
        except Exception as e:
            row["uniform"] = {"error": _error(e)}
            res["status"] = "errors"
        save(res)
    # 2. the direct SIMP design: its compliance by both FE codes; batched SIMP vs direct SIMP
    for name in PRESETS:
        row = res["presets"][name]
        try:
            budget.need(8, "SIMP comparison")
            p = problem(name, max_iter=max_iter)
            t = time.perf_counter()
            r = solve(p)
            direct_s = time.perf_counter() - t
            x = torch.tensor(r.density, dtype=f64, device=dev)
            c_dev = float(torch_compliance(x[None], [p], physical=False, tol=1e-10)[0])
            c_fe = compliance(r.density, p)
            row["simp_design"] = {
                "direct_label": r.compliance,
                "direct_fe": c_fe,
                "batched_fe": c_dev,
                "rel_diff": _rel(c_dev, c_fe),
            }
            budget.need(3, "batched SIMP")
            _sync(dev)
            t = time.perf_counter()
            rb = solve_batch([p], device=dev)[0]
            _sync(dev)
            row["simp"] = {
                "direct": r.compliance,
                "batched": rb.compliance,
                "rel_diff": _rel(rb.compliance, r.compliance),
                "direct_iterations": r.iterations,
                "batched_iterations": rb.iterations,
                "density_max_abs_diff": float(np.abs(rb.density - r.density).max()),
                "direct_seconds": direct_s,
                "batched_seconds": time.perf_counter() - t,
                "linear_solver": r.linear_solver,
            }
        except OverBudget as e:
            row["simp"] = str(e)
        except Exception as e:
            row["simp"] = {"error": _error(e)}
            res["status"] = "errors"
        save(res)

    def worst(key):
        vals = [r[key]["rel_diff"] for r in res["presets"].values()
                if isinstance(r.get(key), dict) and "rel_diff" in r[key]]  # fmt: skip
        return (max(vals) if vals else None), len(vals)

    res["uniform_rel_diff_max"], res["uniform_n"] = worst("uniform")
    res["simp_design_rel_diff_max"], res["simp_design_n"] = worst("simp_design")
    res["simp_rel_diff_max"], res["simp_n"] = worst("simp")
    res["peak_memory_gib"] = _peak_gib(dev)
    return res


# -- part: 64x64 generation ---------------------------------------------------------------------
def _cpu_reference(task):
    """(dist_json, seed, index) -> direct SIMP compliance, iterations (a spawned worker)."""
    from topovae.datasets._sampling import ProblemDistribution, sample_problem
    from topovae.solvers import solve

    dist_json, seed, i = task
    p = sample_problem(ProblemDistribution.from_dict(json.loads(dist_json)), seed, i)
    t = time.perf_counter()
    r = solve(p)
    return i, r.compliance, r.iterations, time.perf_counter() - t


def part_gen(args, budget: Budget, save) -> dict:
    import concurrent.futures as cf
    import multiprocessing

    import h5py
    import numpy as np

    from topovae.datasets import distribution, generate
    from topovae.datasets._sampling import sample_problem
    from topovae.solvers import compliance

    size = 16 if args.quick else 64
    runs = ((4, 8), (8, 8)) if args.quick else ((256, 1024), (1024, 2048))  # (batch, n)
    n_ref = 2 if args.quick else 32
    seed = 0
    dist = distribution("mixed", size, size)
    res: dict = {"grid": f"{size}x{size}", "distribution": "mixed", "seed": seed,
                 "device": args.device, "runs": {}, "status": "ok"}  # fmt: skip
    tmp = Path(tempfile.mkdtemp(prefix="gpu_check_gen_"))

    # 1. the direct CPU SIMP of the first n_ref problems, in spawned processes started before
    # CUDA is touched (single-threaded BLAS through the environment: no threadpoolctl needed)
    ref: dict[int, tuple] = {}
    try:
        budget.need(10, "CPU reference")
        workers = max(1, min(n_ref, (os.cpu_count() or 2) - 1))
        saved = {v: os.environ.get(v) for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                                "MKL_NUM_THREADS")}  # fmt: skip
        os.environ.update(dict.fromkeys(saved, "1"))
        t = time.perf_counter()
        ctx = multiprocessing.get_context("spawn")
        pool = cf.ProcessPoolExecutor(workers, mp_context=ctx)
        try:
            tasks = [(dist.to_json(), seed, i) for i in range(n_ref)]
            futs = [pool.submit(_cpu_reference, tk) for tk in tasks]
            limit = max(budget.left() * 0.35, 5.0)  # leave most of the part to the GPU runs
            done, not_done = cf.wait(futs, timeout=limit)
            for f in done:
                i, c, its, s = f.result()
                ref[i] = (c, its, s)
            for f in not_done:
                f.cancel()
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        res["cpu_reference"] = {
            "n": len(ref), "asked": n_ref, "workers": workers,
            "seconds": time.perf_counter() - t,
            "solve_seconds_mean": float(np.mean([v[2] for v in ref.values()])) if ref else None,
        }  # fmt: skip
    except OverBudget as e:
        res["cpu_reference"] = str(e)
    except Exception as e:
        res["cpu_reference"] = {"error": _error(e)}
        res["status"] = "errors"
    save(res)

    dev = _device(args.device)
    device = str(dev)
    # 2. warm-up (CUDA context, kernels, multigrid set-up): a small file, timed apart
    rate = None
    try:
        t = time.perf_counter()
        if dev.type == "cuda":
            import torch

            torch.zeros(1, device=dev)
            _sync(dev)
        res["cuda_init_s"] = time.perf_counter() - t
        wb = 4 if args.quick else 64
        t = time.perf_counter()
        generate(tmp / "warm.h5", dist, wb, seed=seed, device=device, batch=wb, progress=False)
        dt = time.perf_counter() - t
        rate = wb / dt
        res["warmup"] = {"n": wb, "batch": wb, "seconds": dt, "designs_per_s": rate}
    except Exception as e:
        res["warmup"] = {"error": _error(e)}
        res["status"] = "errors"
    save(res)

    # 3. the timed runs; n shrinks to whole batches that fit the budget at the best rate so far
    files = {}
    for batch, n in runs:
        key = f"batch{batch}"
        try:
            if rate is None:
                raise RuntimeError("no warm-up rate: the warm-up failed")
            left = budget.left() - 8  # the comparisons after the runs
            # the warm-up's rate (cold kernels, small batch) is itself pessimistic: no margin
            # on it; 30 % on a measured run's
            margin = 1.0 if not files else 1.3
            fits = int(left * rate / margin) // batch * batch
            if fits < batch:
                need = margin * batch / rate
                raise OverBudget(
                    f"skipped: budget (batch {batch} needs ~{need:.0f} s at {rate:.3g} "
                    f"designs/s, {max(left, 0):.0f} s left)"
                )
            n_run = min(n, fits)
            path = tmp / f"{key}.h5"
            _reset_peak(dev)
            t = time.perf_counter()
            generate(path, dist, n_run, seed=seed, device=device, batch=batch, progress=False)
            dt = time.perf_counter() - t
            with h5py.File(path, "r") as f:
                solve_s = float(np.sum(f["result/seconds"][:]))
                its = f["result/iterations"][:]
                conv = f["result/converged"][:]
            rate = max(rate, n_run / dt)
            files[batch] = path
            res["runs"][key] = {
                "batch": batch, "n": n_run, "n_asked": n, "seconds": dt,
                "designs_per_s": n_run / dt, "solve_only_designs_per_s": n_run / solve_s,
                "iterations_mean": float(its.mean()), "iterations_max": int(its.max()),
                "converged_share": float(conv.mean()), "peak_memory_gib": _peak_gib(dev),
            }  # fmt: skip
        except OverBudget as e:
            res["runs"][key] = str(e)
        except Exception as e:
            res["runs"][key] = {"error": _error(e)}
            res["status"] = "errors"
        save(res)
    rates = [
        r["designs_per_s"]
        for r in res["runs"].values()
        if isinstance(r, dict) and "designs_per_s" in r
    ]
    res["designs_per_s_best"] = max(rates) if rates else None
    res["target_designs_per_s"] = TARGETS["generation_designs_per_s_64x64"]
    save(res)

    # 4. the stored GPU labels against the CPU direct SIMP (same sampled problems) and against
    # the direct FE compliance of the stored GPU designs
    try:
        if not files:
            raise RuntimeError("no generated file to compare")
        batch = min(files)
        with h5py.File(files[batch], "r") as f:
            index = f["index"][:]
            label = f["result/compliance"][:]
            density = f["density"][:n_ref]
        pos = {int(i): k for k, i in enumerate(index)}
        cmp: dict = {"file": f"batch{batch}"}
        rel = [_rel(label[pos[i]], ref[i][0]) for i in sorted(ref) if i in pos]
        if rel:
            signed = [(label[pos[i]] - ref[i][0]) / ref[i][0] for i in sorted(ref) if i in pos]
            cmp.update(
                n=len(rel),
                median_rel_diff=float(np.median(rel)),
                max_rel_diff=float(np.max(rel)),
                mean_signed_rel_diff=float(np.mean(signed)),
            )
        fe_rel = []
        for k in range(min(n_ref, len(density))):
            if budget.left() < 2:
                break
            i = int(index[k])
            p = sample_problem(dist, seed, i)
            fe_rel.append(_rel(label[k], compliance(np.clip(density[k].astype(float), 0, 1), p)))
        if fe_rel:
            cmp["label_vs_direct_fe_of_stored_design"] = {
                "n": len(fe_rel), "median_rel_diff": float(np.median(fe_rel)),
                "max_rel_diff": float(np.max(fe_rel)),
            }  # fmt: skip
        if len(files) > 1:  # the same problems in batches of different sizes
            a, b = sorted(files)[:2]
            with h5py.File(files[a], "r") as fa, h5py.File(files[b], "r") as fb:
                m = min(len(fa["index"]), len(fb["index"]))
                ca, cb = fa["result/compliance"][:m], fb["result/compliance"][:m]
            cmp["batch_sizes_max_rel_diff"] = float(np.max(np.abs(ca - cb) / np.abs(cb)))
        res["gpu_vs_cpu"] = cmp
    except Exception as e:
        res["gpu_vs_cpu"] = {"error": _error(e)}
        res["status"] = "errors"
    res["peak_memory_gib"] = _peak_gib(dev) if dev.type == "cuda" else None
    import shutil

    shutil.rmtree(tmp, ignore_errors=True)
    return res


# -- part: training throughput ------------------------------------------------------------------
def _train_step_rate(cfg, batch, dev, warmup, steps, bf16, compile_, host_reads, budget, quick):
    import torch

    from topovae.datasets import augment_batch, random_codes
    from topovae.datasets._torch import BASE_CHANNELS
    from topovae.models import DesignVAE, loss_terms

    torch.manual_seed(0)
    model = DesignVAE(cfg).to(dev).train()
    if compile_:
        torch._dynamo.reset()
        # the dry run on the CPU only traces (dynamo, no inductor C++ build)
        forward = torch.compile(model, backend="eager") if quick else torch.compile(model)
    else:
        forward = model
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    noise = torch.Generator(device=dev).manual_seed(1)
    augmenter = torch.Generator().manual_seed(17)
    g = torch.Generator(device=dev).manual_seed(2)
    h, w = cfg.height, cfg.width
    x0 = torch.rand(batch, 1, h, w, generator=g, device=dev)
    c0 = torch.rand(batch, cfg.cond_channels, h, w, generator=g, device=dev)
    vf = torch.rand(batch, generator=g, device=dev)
    channels = BASE_CHANNELS

    def step(k):
        codes = random_codes(batch, h, w, augmenter)  # as Trainer: CPU generator, then moved
        x, c = augment_batch(x0, c0, codes.to(dev), channels)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16):
            o = forward(x, c, generator=noise)
        terms = loss_terms(cfg, o.logits, x, o.mu, o.logvar, k, vf, o.prior_mu, o.prior_logvar)
        loss = terms["total"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if host_reads:  # Trainer reads each logged term (and checks the loss) every step
            for key in ("reconstruction", "kl", "weighted_kl", "volume", "total"):
                float(terms[key].detach())

    _reset_peak(dev)
    t = time.perf_counter()
    step(0)
    _sync(dev)
    first = time.perf_counter() - t
    done_warm = 1
    for k in range(1, warmup):
        if budget.left() < 5:  # short of time (a slow compile): fewer warm-up steps
            break
        step(k)
        done_warm += 1
    _sync(dev)
    warm_s = time.perf_counter() - t
    if budget.left() < 1:
        raise OverBudget(f"skipped: budget (ran out in warm-up, first step {first:.1f} s)")
    t = time.perf_counter()
    done = 0
    while done < steps:
        step(done_warm + done)
        done += 1
        if done % 10 == 0 and budget.left() < 0:  # short of time: fewer timed steps
            break
    _sync(dev)
    dt = time.perf_counter() - t
    return {
        "samples_per_s": batch * done / dt, "ms_per_step": 1e3 * dt / done,
        "first_step_s": first, "warmup_s": warm_s, "warmup_steps": done_warm, "steps": done,
        "peak_memory_gib": _peak_gib(dev),
    }  # fmt: skip


def part_train(args, budget: Budget, save) -> dict:
    import torch

    from topovae.datasets._torch import BASE_CHANNELS
    from topovae.models import VAEConfig

    dev = _device(args.device)
    size = 32 if args.quick else 64
    batch = 8 if args.quick else 256
    warmup, steps = (2, 3) if args.quick else (20, 50)
    # the dry run: a narrow model (base width 8) for speed; the real run: the defaults
    width = {"base_width": 8} if args.quick else {}
    cfg = VAEConfig(kind="cvae", height=size, width=size, cond_channels=len(BASE_CHANNELS), **width)
    res: dict = {
        "model": {"kind": "cvae", "arch": cfg.arch, "grid": f"{size}x{size}",
                  "cond_channels": cfg.cond_channels, "latent_dim": cfg.latent_dim,
                  "base_width": cfg.base_width, "depth": cfg.depth},
        "batch": batch, "device": str(dev), "data": "random tensors",
        "step": "augment + forward (noise generator) + loss_terms + backward + clip 1 + AdamW "
                "+ scheduler; no host reads unless named",
        "variants": {}, "status": "ok",
    }  # fmt: skip
    try:
        import importlib.util

        from topovae.models import DesignVAE

        res["model"]["parameters"] = sum(p.numel() for p in DesignVAE(cfg).parameters())
        res["triton_available"] = importlib.util.find_spec("triton") is not None
    except Exception as e:
        res["model"]["error"] = _error(e)
    # (name, bf16, compile, host reads, seconds it needs to start)
    variants = (
        ("bf16_eager", True, False, False, 10),
        ("float32_eager", False, False, False, 10),
        ("bf16_eager_trainer_host_reads", True, False, True, 8),
        ("bf16_compile", True, True, False, 60),
        ("float32_compile", False, True, False, 45),
    )
    for name, bf16, compile_, host, need in variants:
        try:
            budget.need(3 if args.quick else need, name)
            r = _train_step_rate(cfg, batch, dev, warmup, steps, bf16, compile_, host, budget,
                                 args.quick)  # fmt: skip
            if compile_ and args.quick:
                r["note"] = "dry run: backend='eager' (dynamo tracing only, no inductor)"
            res["variants"][name] = r
        except OverBudget as e:
            res["variants"][name] = str(e)
        except Exception as e:
            res["variants"][name] = {"error": _error(e)}
            if not compile_:
                res["status"] = "errors"
        finally:
            if compile_:
                torch._dynamo.reset()
            if dev.type == "cuda":
                torch.cuda.empty_cache()
        save(res)
    bf = [r["samples_per_s"] for k, r in res["variants"].items()
          if k.startswith("bf16") and isinstance(r, dict) and "samples_per_s" in r]  # fmt: skip
    res["bf16_samples_per_s_best"] = max(bf) if bf else None
    res["target_samples_per_s_bf16"] = TARGETS["training_samples_per_s_bf16"]
    return res


# -- summary ------------------------------------------------------------------------------------
def _steps_from_tsv(out: Path) -> dict:
    steps = {}
    try:
        for line in (out / "steps.tsv").read_text().splitlines():
            parts = line.split("\t")
            if len(parts) >= 3:
                rc = int(parts[1])
                steps[parts[0]] = {
                    "rc": rc, "seconds": float(parts[2]),
                    "status": "ok" if rc == 0 else ("timeout" if rc in (124, 137) else "failed"),
                }  # fmt: skip
    except OSError:
        pass
    return steps


def checks(data: dict) -> dict:
    def get(part, key):
        v = data.get(part, {})
        return v.get(key) if isinstance(v, dict) else None

    out = {}
    gen = get("generation", "designs_per_s_best")
    out["generation_designs_per_s"] = {
        "value": gen, "target": TARGETS["generation_designs_per_s_64x64"],
        "pass": None if gen is None else gen >= TARGETS["generation_designs_per_s_64x64"],
    }  # fmt: skip
    tr = get("training", "bf16_samples_per_s_best")
    out["training_samples_per_s_bf16"] = {
        "value": tr, "target": TARGETS["training_samples_per_s_bf16"],
        "pass": None if tr is None else tr >= TARGETS["training_samples_per_s_bf16"],
    }  # fmt: skip
    fe = get("fe", "uniform_rel_diff_max")
    fe2 = get("fe", "simp_design_rel_diff_max")
    fe_max = max([v for v in (fe, fe2) if v is not None], default=None)
    out["fe_compliance_rel_diff"] = {
        "value": fe_max, "target": TARGETS["fe_compliance_rel_diff_max"],
        "pass": None if fe_max is None else fe_max <= TARGETS["fe_compliance_rel_diff_max"],
    }  # fmt: skip
    simp = get("fe", "simp_rel_diff_max")
    out["simp_compliance_rel_diff"] = {
        "value": simp, "target": TARGETS["simp_compliance_rel_diff_max"],
        "pass": None if simp is None else simp <= TARGETS["simp_compliance_rel_diff_max"],
    }  # fmt: skip
    t = data.get("tests", {})
    if isinstance(t, dict):
        st = t.get("status")
        out["cuda_tests"] = {
            "passed": t.get("passed"), "failed": t.get("failed"), "status": st,
            "pass": None if st is None or str(st).startswith("skipped") else st == "ok",
        }  # fmt: skip
    return out


def _fmt(v, spec=".3g"):
    return "n/a" if v is None else format(v, spec)


def summary(report: Report, out: Path) -> dict:
    data = report.load()
    steps = _steps_from_tsv(out)
    report.update(steps=steps, checks=checks({**data}))
    data = report.load()
    env = data.get("env", {})
    gpu = env.get("gpu", {}) if isinstance(env, dict) else {}
    print("\n== gpu_check summary ==")
    print(f"device: {gpu.get('name', 'no GPU')}; torch {env.get('torch')} (CUDA "
          f"{env.get('torch_cuda')}); {data.get('meta', {}).get('mode', '')}")  # fmt: skip
    for name, s in steps.items():
        print(f"  step {name:<6} rc {s['rc']:>3}  {s['seconds']:6.1f} s  {s['status']}")
    t = data.get("tests", {})
    if isinstance(t, dict):
        print(f"CUDA tests: {t.get('status')} (passed {t.get('passed')}, failed {t.get('failed')}"
              f", skipped {t.get('skipped')})")  # fmt: skip
    fe = data.get("fe", {})
    if isinstance(fe, dict):
        u, d = _fmt(fe.get("uniform_rel_diff_max")), _fmt(fe.get("simp_design_rel_diff_max"))
        print(f"FE batched vs direct: uniform max rel {u} ({fe.get('uniform_n')} presets), "
              f"SIMP design {d}, batched SIMP vs direct SIMP "
              f"{_fmt(fe.get('simp_rel_diff_max'))} ({fe.get('simp_n')} presets)")  # fmt: skip
    gen = data.get("generation", {})
    if isinstance(gen, dict):
        for key, r in gen.get("runs", {}).items():
            if isinstance(r, dict) and "designs_per_s" in r:
                print(f"generation {gen.get('grid')} {key}: n {r['n']}, {r['designs_per_s']:.1f} "
                      f"designs/s ({r['solve_only_designs_per_s']:.1f} solve-only), "
                      f"peak {_fmt(r.get('peak_memory_gib'), '.2f')} GiB")  # fmt: skip
            else:
                print(f"generation {key}: {str(r)[:200]}")
        g = gen.get("gpu_vs_cpu", {})
        if isinstance(g, dict) and "median_rel_diff" in g:
            print(f"  GPU labels vs CPU SIMP (n {g['n']}): median rel {g['median_rel_diff']:.2e}, "
                  f"max {g['max_rel_diff']:.2e}")  # fmt: skip
    tr = data.get("training", {})
    if isinstance(tr, dict):
        for key, r in tr.get("variants", {}).items():
            if isinstance(r, dict) and "samples_per_s" in r:
                peak = _fmt(r.get("peak_memory_gib"), ".2f")
                print(f"training {key}: {r['samples_per_s']:.0f} samples/s, "
                      f"{r['ms_per_step']:.1f} ms/step (batch {tr.get('batch')}), first step "
                      f"{r['first_step_s']:.1f} s, peak {peak} GiB")  # fmt: skip
            else:
                print(f"training {key}: {str(r)[:200]}")
    for part in ("tests", "fe", "generation", "training"):
        v = data.get(part)
        if (
            isinstance(v, dict)
            and v.get("status") not in ("ok", None)
            and not str(v.get("status")).startswith("skipped")
        ):
            print(f"!! part {part}: status {v.get('status')}")
    print("targets:")
    for key, c in data.get("checks", {}).items():
        verdict = {True: "PASS", False: "FAIL", None: "n/a"}[c.get("pass")]
        print(f"  {key:<30} {verdict:<5} value {_fmt(c.get('value'))} target {c.get('target')}")
    print(f"JSON: {report.path}")
    return data


# -- main ---------------------------------------------------------------------------------------
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--quick", action="store_true", help="tiny sizes (a dry run, e.g. on CPU)")
    ap.add_argument("--out", default=os.environ.get("OUT", "out/gpu_check"))
    ap.add_argument("--part", default="all", help=f"comma list of {', '.join(PARTS)}, summary, all")
    ap.add_argument("--time-limit", type=float, default=None,
                    help="seconds this process may run (caps each part's budget)")  # fmt: skip
    args = ap.parse_args(argv)
    signal.signal(signal.SIGTERM, _on_sigterm)
    t_start = time.perf_counter()
    out = Path(args.out)
    report = Report(out)
    parts = (*PARTS, "summary") if args.part == "all" else tuple(args.part.split(","))
    unknown = set(parts) - set(PARTS) - {"summary"}
    if unknown:
        ap.error(f"unknown part(s): {', '.join(sorted(unknown))}")
    meta = report.load().get("meta", {})
    meta.update(mode="quick" if args.quick else "full", device=args.device,
                started=meta.get("started") or time.strftime("%Y-%m-%dT%H:%M:%S%z"))  # fmt: skip
    report.update(meta=meta)
    if "env" not in report.load() and any(p in PARTS for p in parts):
        report.update(env=environment(args))
    keys = {"tests": "tests", "fe": "fe", "gen": "generation", "train": "training"}
    funcs = {"tests": part_tests, "fe": part_fe, "gen": part_gen, "train": part_train}
    rc = 0
    for part in parts:
        if part == "summary":
            continue
        seconds = BUDGETS[part]
        if args.time_limit is not None:
            seconds = min(seconds, args.time_limit - (time.perf_counter() - t_start) - 8)
        budget = Budget(seconds)
        key = keys[part]
        state: dict = {"budget_s": seconds}

        def save(res, key=key, state=state, budget=budget):
            state.update(res)
            state["seconds"] = budget.elapsed()
            report.update(**{key: state})

        try:
            if seconds <= 0:
                raise OverBudget("skipped: no time left")
            res = funcs[part](args, budget, save)
            save(res)
        except OverBudget as e:
            save({"status": str(e)})
        except Terminated as e:
            save({"status": f"terminated: {e}"})
            return 124
        except Exception as e:
            save({"status": "error", "error": _error(e)})
            rc = 1
        print(f"[gpu_check] part {part}: {state.get('status')} in {budget.elapsed():.1f} s",
              flush=True)  # fmt: skip
    if "summary" in parts:
        summary(report, out)
    return rc


if __name__ == "__main__":
    sys.exit(main())
