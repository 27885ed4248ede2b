"""Generate a dataset: sample problems, solve them in parallel, store them safely.

    from topovae.datasets import distribution, generate
    generate("data.h5", distribution("mixed", 64, 64), n=1000, seed=0)           # local processes
    generate(..., scheduler="tcp://10.0.0.5:8786")                                 # a Dask cluster
    generate(..., device="cuda", batch=256)                                        # batched torch

Work runs on a `concurrent.futures.Executor`: a local process pool by default (one BLAS thread
per worker), or a Dask cluster's executor. With ``device`` the problems are instead solved in
batches by the PyTorch multigrid SIMP. Results arrive in any order; the writer stores them by
index, so the file is the same whatever the order, the worker count or the interruptions.
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import itertools
import json
import multiprocessing
import os
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .._checks import check_path
from ..solvers import Problem, ProblemError, SolveResult, full_material_fields, solve
from ..solvers._alternatives import MAX_ALTERNATIVES, AlternativeSearch, find_alternatives
from ._sampling import ProblemDistribution, check_distribution, sample_problem
from ._store import DatasetError, DatasetWriter

MAX_WORKERS = 1024  # local worker processes
MAX_BATCH = 65536  # designs per batched torch solve


def sample_record(
    index: int, problem: Problem, result: SolveResult, fields: tuple[str, ...],
    alternative: int = 0,
) -> dict[str, Any]:  # fmt: skip
    """One sample as the writer's flat dict of arrays."""
    rec: dict[str, Any] = {
        "index": index,
        "alternative": alternative,
        "density": result.density.astype(np.float32),
        "problem/volfrac": problem.volfrac,
        "problem/fixed_x": problem.fixed_x,
        "problem/fixed_y": problem.fixed_y,
        "problem/loads": problem.loads[0],
        "problem/passive_solid": problem.passive_solid,
        "problem/passive_void": problem.passive_void,
        "result/compliance": result.compliance,
        "result/volume": result.volume,
        "result/iterations": result.iterations,
        "result/converged": result.converged,
        "result/seconds": result.seconds + result.setup_seconds,
    }
    if fields:
        energy, von_mises = full_material_fields(problem)
        values = {"strain_energy": energy, "von_mises": von_mises}
        for f in fields:
            rec[f"fields/{f}"] = values[f].astype(np.float32)
    return rec


def solve_sample(
    dist_json: str, seed: int, index: int, fields: tuple[str, ...], alternatives: int = 0,
    search_json: str = "null",
) -> list[dict]:  # fmt: skip
    """Worker task: the rows of sample ``index`` of (dist, seed), solved with the sparse-direct
    SIMP: its one design, or (``alternatives`` > 0) up to that many distinct near-optimal ones
    (`find_alternatives`, seeded by (seed, index)), stiffest first."""
    dist = ProblemDistribution.from_dict(json.loads(dist_json))
    problem = sample_problem(dist, seed, index)
    if not alternatives:
        # the direct route whatever `auto` would pick for the grid: a file's labels then come
        # from one solver (an exact factorisation) on every machine, with or without CHOLMOD
        result = solve(problem, threads=1, backend="direct")
        return [sample_record(index, problem, result, fields)]
    search = AlternativeSearch(**json.loads(search_json))
    own_seed = int(np.random.SeedSequence([seed, index]).generate_state(1)[0])
    t0 = time.perf_counter()
    results = find_alternatives(problem, alternatives, seed=own_seed, search=search)
    seconds = time.perf_counter() - t0  # every attempt's, the discarded ones' too
    records = [sample_record(index, problem, r, fields, j) for j, r in enumerate(results)]
    for rec in records:  # the search's whole time, shared by the designs it kept
        rec["result/seconds"] = seconds / len(records)
    return records


def _init_worker() -> None:
    import threading

    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1)  # processes give the parallelism; BLAS threads would fight
    parent = os.getppid()

    def exit_with_parent() -> None:  # a killed `generate` must not leave its workers behind
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=exit_with_parent, daemon=True).start()


def _executor(workers: int | None, scheduler: str | None):
    """(executor, number of tasks to keep in flight, closer)."""
    if scheduler is None:
        workers = workers or os.cpu_count() or 1
        # fork where there is one: spawn re-imports the caller's __main__, which breaks scripts
        # without an `if __name__ == "__main__"` guard; the workers use no torch and no threads
        methods = multiprocessing.get_all_start_methods()
        ctx = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
        pool = cf.ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker)
        return pool, 2 * workers, lambda: pool.shutdown(wait=False, cancel_futures=True)
    try:
        from dask.distributed import Client
    except ImportError:
        raise DatasetError(
            "--scheduler needs dask.distributed: pip install 'topovae[dask]'"
        ) from None
    try:
        client = Client(scheduler, timeout="10s")
    except (OSError, TimeoutError) as e:
        raise DatasetError(f"cannot reach the Dask scheduler at {scheduler!r}: {e}") from None
    n = sum(w.get("nthreads", 1) for w in client.scheduler_info()["workers"].values())
    return client.get_executor(), 2 * max(n, 1), client.close


def _run_executor(
    todo: Iterable[int], dist: ProblemDistribution, seed: int, fields, executor,
    alternatives: int = 0, search_json: str = "null",
) -> Iterator[list[dict]]:  # fmt: skip
    executor, in_flight, close = executor
    dist_json = dist.to_json()
    pending: set[cf.Future] = set()
    it = iter(todo)
    try:
        while True:
            for i in it:
                pending.add(executor.submit(
                    solve_sample, dist_json, seed, i, fields, alternatives, search_json
                ))  # fmt: skip
                if len(pending) >= in_flight:
                    break
            if not pending:
                return
            done, pending = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
            for fut in done:
                yield fut.result()
    finally:
        for fut in pending:
            fut.cancel()
        close()


def _run_batched(
    todo: Iterable[int], dist: ProblemDistribution, seed: int, fields, device, batch: int
) -> Iterator[list[dict]]:
    from ..solvers.batched import solve_batch

    it = iter(todo)
    while chunk := list(itertools.islice(it, batch)):
        problems = [sample_problem(dist, seed, i) for i in chunk]
        results = solve_batch(problems, device=device)
        for i, p, r in zip(chunk, problems, results, strict=True):
            rec = sample_record(i, p, r, fields)
            rec["result/seconds"] /= len(chunk)  # the batch's wall time, shared by its designs
            yield [rec]


def generate(
    path: str | os.PathLike,
    dist: ProblemDistribution,
    n: int,
    seed: int = 0,
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    device: str | None = None,
    batch: int = 64,
    fields: tuple[str, ...] = (),
    alternatives: int = 0,
    search: AlternativeSearch | None = None,
    mode: str = "new",
    progress: bool = True,
) -> dict[str, Any]:
    """Make samples 0..n-1 of (dist, seed) into ``path``; see the module docstring.

    ``alternatives`` K > 0: each problem gets up to K distinct near-optimal designs
    (`topovae.solvers.find_alternatives` with ``search``), rows sharing the problem's index
    (direct solver only: not with ``device``).

    ``result/seconds`` is each design's solve time (with ``device``: the batch's time divided by
    its size).

    ``mode``: "new", "resume" or "overwrite" (see `DatasetWriter`). Interrupting (Ctrl-C) keeps
    every finished sample; so does a kill, through the shards that ``mode="resume"`` merges.
    Returns a summary: samples written, newly solved, seconds.
    """
    path = check_path(path, "path")
    check_distribution(dist)
    if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
        raise DatasetError(f"-n must be a positive integer, got {n!r}")
    # the file stores the seed as a 64-bit integer (h5py raised a TypeError past it)
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
        raise DatasetError(f"--seed must be an integer in [0, 2^63), got {seed!r}")
    if workers is not None and (
        isinstance(workers, bool) or not isinstance(workers, int) or not 1 <= workers <= MAX_WORKERS
    ):
        raise DatasetError(f"--workers must be an integer in 1..{MAX_WORKERS}, got {workers!r}")
    if isinstance(batch, bool) or not isinstance(batch, int) or not 1 <= batch <= MAX_BATCH:
        raise DatasetError(f"--batch must be an integer in 1..{MAX_BATCH}, got {batch!r}")
    if (
        isinstance(alternatives, bool)
        or not isinstance(alternatives, int)
        or not (0 <= alternatives <= MAX_ALTERNATIVES)
    ):
        raise DatasetError(
            f"--alternatives must be an integer in 0..{MAX_ALTERNATIVES}, got {alternatives!r}"
        )
    if search is not None and not isinstance(search, AlternativeSearch):
        raise TypeError(f"search must be an AlternativeSearch, got {type(search).__name__}")
    if alternatives and device is not None:
        raise DatasetError("--alternatives runs on the direct solver: leave out --device")
    search_json = json.dumps(dataclasses.asdict(search or AlternativeSearch()) if alternatives
                             else None)  # fmt: skip
    search_dict = json.loads(search_json)  # as the file gives it back (lists, not tuples)
    if device is not None:  # resolved before the file is made
        from ..solvers.batched import resolve_device

        try:
            resolve_device(device)
        except ProblemError as e:
            raise DatasetError(str(e)) from None
    # no more worker processes than designs to solve (48 processes were forked for 2)
    workers = min(workers or os.cpu_count() or 1, n)
    # the executor first: a scheduler that cannot be reached must not leave a new file behind
    executor = None if device is not None else _executor(workers, scheduler)
    try:
        writer = DatasetWriter(
            Path(path), dist, seed, n, tuple(fields), mode=mode, alternatives=alternatives,
            search=search_dict,
        )  # fmt: skip
    except BaseException:
        if executor is not None:
            executor[2]()
        raise
    try:
        todo = writer.pending()
    except BaseException:
        writer.close()
        raise
    t0 = time.perf_counter()
    if device is not None:
        stream = _run_batched(todo, dist, seed, writer.fields, device, batch)
    else:
        stream = _run_executor(
            todo, dist, seed, writer.fields, executor, alternatives, search_json
        )  # fmt: skip
    bar = None
    if progress:
        from tqdm.auto import tqdm

        unit = "problem" if alternatives else "design"
        bar = tqdm(total=n, initial=n - len(todo), desc=f"generate {dist.name}", unit=unit)
    solved = designs = 0
    try:
        for records in stream:
            writer.add(records)
            solved += 1
            designs += len(records)
            if bar is not None:
                bar.update()
    finally:
        if bar is not None:
            bar.close()
        try:
            total = writer.consolidate()  # also on Ctrl-C: finished work is kept
        finally:
            writer.close()
    return {"samples": total, "solved": solved, "designs": designs,
            "seconds": time.perf_counter() - t0}  # fmt: skip
