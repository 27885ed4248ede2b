"""How short can the demo's training be? Trains the demo's model (`workflows._demo`'s "full"
plan with other epoch counts) on the demo's data and judges it as the demo's report does.

    python benchmarks/bench_demo_plan.py --data out/demo/data.h5 --plans 70:20,55:15 --seeds 0,1

Each plan EPOCHS:PHYSICS trains EPOCHS epochs, the last PHYSICS with the physics term on prior
samples, exactly as `topovae demo` trains (torch on every core, the trainer's thread tuner,
training seed ``--seeds``), then runs `evaluate` as the demo does (80 held-out problems, k = 8,
10 polish iterations, the first design guided) and once more with ``connect=False`` (the decoder
alone, its first design guided as well). Prints per run: training seconds, first-design CE
median raw and binarised, pass rate, polished CE against SIMP's same 10 iterations, and the
decoder's floating first designs. The report's targets: first CE <= 5 % raw and binarised,
pass >= 95 %, polished below SIMP-10. About 6 minutes per run of 70 epochs on 2 cores; run it alone.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import time

from topovae.datasets import TopologyDataset
from topovae.models import Trainer, load
from topovae.solvers.batched import torch_threads
from topovae.workflows import evaluate
from topovae.workflows._demo import PLANS, training_configs


def run(data: str, epochs: int, physics: int, seed: int, width: int, ema: float) -> str:
    plan = dataclasses.replace(
        PLANS["full"],
        epochs=epochs,
        physics_epochs=physics,
        base_width=width or PLANS["full"].base_width,
    )
    train = TopologyDataset(data, "train", in_memory=True, fields=True)
    val = TopologyDataset(data, "val", in_memory=True, fields=True)
    mcfg, tcfg = training_configs(plan, len(train.condition_channels), len(train), "cpu")
    tcfg = dataclasses.replace(tcfg, seed=seed, ema=ema)
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        with torch_threads(os.cpu_count()):
            Trainer(mcfg, tcfg, train, val, tmp).fit(progress=False)
        seconds = time.perf_counter() - t
        model = load(f"{tmp}/best.pt")
    kw = dict(k=plan.k, polish=plan.polish, seed=0, limit=plan.eval_limit, device="cpu")
    m = evaluate(model, data, "test", **kw)["metrics"]
    alone = evaluate(model, data, "test", connect=False, **{**kw, "polish": 0})["metrics"]
    f, p, s = m["first"], m["polished"], m["simp_k"]
    return (
        f"{epochs}:{physics} width {plan.base_width} ema {ema:g} seed {seed}: training "
        f"{seconds:.0f} s; "
        "first CE "
        f"{100 * f['ce_median']:.2f} / {100 * f['ce_binary_median']:.2f} %, pass "
        f"{100 * f['pass_rate']:.2f} %, polished {100 * p['ce_median']:.2f} % (SIMP-10 "
        f"{100 * s['ce_median']:.2f} %), decoder alone floating "
        f"{100 * alone['first']['floating_rate']:.2f} %"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, help="the demo's data (out/demo/data.h5)")
    ap.add_argument("--plans", default="70:20,55:15", help="EPOCHS:PHYSICS_EPOCHS, comma-separated")
    ap.add_argument("--seeds", default="0")
    ap.add_argument(
        "--base-width", type=int, default=0, help="the U-Net's first width (0: the plan's)"
    )
    ap.add_argument("--ema", type=float, default=0.0, help="TrainConfig.ema (0: none, the demo's)")
    a = ap.parse_args()
    for spec in a.plans.split(","):
        epochs, physics = (int(x) for x in spec.split(":"))
        for seed in (int(s) for s in a.seeds.split(",")):
            print(run(a.data, epochs, physics, seed, a.base_width, a.ema), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
