"""Which decode the physics term should judge: fine-tune one trained cvae with the term off, on
the reconstruction (z ~ q(z | x, c)) and on the prior-mean decode (u = 0, the model's first
design for the problem), the same epochs, data and seed for each, and judge the first designs of
held-out problems with `evaluate` (k = 1, no polish: the prior-mean design, volume-projected and
connected as the workflows return it).

    python benchmarks/bench_physics.py runs/m64/best.pt mixed64_3000.h5 --epochs 4 --limit 100
    python benchmarks/bench_physics.py model/best.pt data.h5 --variants prior_mean --weight 1000

Prints one row per variant (and the starting model): training seconds, first-design CE median
raw and binarised, mean CE, CE < 5 %, pass rate (CE < 100 %), floating designs, greyness; and
writes them to ``--out``/physics.json. Each variant is `Trainer.initialise_from(checkpoint)` with
the checkpoint's architecture, `compliance_weight` = ``--weight`` (0 for "none"),
`compliance_samples` = ``--samples`` and a fresh cosine schedule at ``--lr``.

What it decided (64x64 mixed set, 3000 designs, the 90-epoch model, weight 200, 16 judged designs
of each batch of 64, lr 3e-4, 100 test problems): the starting model's first designs have median
CE 28.7 % (binarised 23.2 %); plain fine-tuning leaves them at 28.4 % after 5 epochs; the term on
the reconstruction at 28.6 % (binarised 18.5 %) after 2; the term on the prior-mean decode takes
them to 21.1 % after 2, 17.9 % (binarised 9.1 %) after 4 and 16.4 % after 10, pass 82 -> 93 %.
So a cvae's term judges its prior-mean decode (`VAEConfig.compliance_decode`).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

from topovae.datasets import TopologyDataset
from topovae.models import TrainConfig, Trainer, VAEConfig, load, read_checkpoint
from topovae.workflows import evaluate

VARIANTS = ("none", "posterior", "prior_mean")


def first_designs(model, data: str, limit: int) -> dict[str, float]:
    """The judge's figures for the prior-mean designs of the first ``limit`` test problems."""
    m = evaluate(model, data, "test", k=1, polish=0, limit=limit, guide=0)["metrics"]["first"]
    keys = ("ce_median", "ce_binary_median", "ce_mean", "ce_under_5pct", "pass_rate",
            "floating_rate", "greyness_mean")  # fmt: skip
    return {k: float("nan") if m[k] is None else m[k] for k in keys}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoint")
    ap.add_argument("data")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--weight", type=float, default=200.0)
    ap.add_argument("--samples", type=int, default=16, help="judged designs per batch")
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--limit", type=int, default=100, help="test problems judged")
    ap.add_argument("--out", default="out/bench_physics")
    a = ap.parse_args()
    variants = a.variants.split(",")
    for v in variants:
        if v not in VARIANTS:
            raise SystemExit(f"unknown variant {v!r}; choose from {', '.join(VARIANTS)}")
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    ckpt = read_checkpoint(a.checkpoint)
    base = VAEConfig.from_dict(ckpt["model_config"]).to_dict()
    fields = base["cond_channels"] > 7
    train = TopologyDataset(a.data, "train", in_memory=True, fields=fields)
    val = TopologyDataset(a.data, "val", in_memory=True, fields=fields)
    rows = {"start": {"seconds": 0.0, **first_designs(load(a.checkpoint), a.data, a.limit)}}
    for v in variants:
        cfg = dict(base, compliance_weight=0.0 if v == "none" else a.weight,
                   compliance_samples=a.samples, compliance_start=0, compliance_ramp=0,
                   kl_warmup_steps=0)  # fmt: skip
        if v != "none":
            cfg["compliance_decode"] = v
        tcfg = TrainConfig(epochs=a.epochs, batch_size=a.batch_size, lr=a.lr, warmup_steps=20,
                           device="cpu", plots=False)  # fmt: skip
        run = out / v
        if run.exists():
            import shutil

            shutil.rmtree(run)
        trainer = Trainer(VAEConfig.from_dict(cfg), tcfg, train, val, run)
        trainer.initialise_from(a.checkpoint)
        t0 = time.perf_counter()
        trainer.fit(progress=True)
        seconds = time.perf_counter() - t0
        rows[v] = {"seconds": seconds, **first_designs(load(run / "last.pt"), a.data, a.limit)}
        print(f"{v}: {rows[v]}", flush=True)
    (out / "physics.json").write_text(json.dumps(rows, indent=2))
    print(f"\n{a.epochs} epochs from {a.checkpoint}, weight {a.weight}, {a.samples} judged "
          f"designs per batch, first designs of {a.limit} test problems:")  # fmt: skip
    head = ("variant", "train s", "CE med", "CE bin med", "CE mean", "< 5 %", "pass", "floating",
            "grey")  # fmt: skip
    print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    for v, r in rows.items():
        print(f"| {v} | {r['seconds']:.0f} | {100 * r['ce_median']:.2f} % | "
              f"{100 * r['ce_binary_median']:.2f} % | {100 * r['ce_mean']:.1f} % | "
              f"{100 * r['ce_under_5pct']:.1f} % | {100 * r['pass_rate']:.1f} % | "
              f"{100 * r['floating_rate']:.1f} % | {100 * r['greyness_mean']:.1f} % |")  # fmt: skip


if __name__ == "__main__":
    main()
