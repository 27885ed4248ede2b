"""Floating-material guidance of the first design at sampling time (as TopoDiff guides its
diffusion with a floating-material classifier): from the prior mean u = 0, Adam steps on the
latent vector against `models.floating_terms` of the decoded design (plus a small pull
0.5 * lam * |u|^2 towards the prior mean), stopping as soon as nothing floats. A design that
does not float is left at u = 0. Each guided first design is judged with the decoder alone (no
load-path repair, as `evaluate --no-connect`) against the file's SIMP design: median CE raw
and binarised, pass rate (CE < 100 %), share of designs with floating material, and how many
designs were moved and how far:

    python benchmarks/bench_guidance.py --model out/demo/model/best.pt --data out/demo/data.h5 \\
        --steps 0,10,50,100 --lr 0.1,0.1,0.5,1.0

Measured 2026-12-07 on a fresh `make demo` model, 80 held-out problems (the decoder alone
floats on 13.75 % of first designs, CE 3.81 / 4.37 %, pass 95.0 %): 10 steps at lr 0.1,
10.0 % floating; 30 at 0.3, 7.5 %; 50 at 0.5, 6.25 %; 100 at 1.0, 2.5 %, the CE median and
pass rate unchanged (only the floating designs move). On the fine-tune with the floating term
(weight 50, 20 epochs; `bench_floating.py`), 50 steps at 0.5: 3.75 % (CE 2.77 / 3.05 %, pass
93.75 %). On a second fresh demo model (15.0 % floating, CE 3.89 / 4.07 %, pass 95.0 %), 100
steps at 1.0: 2.5 % floating, CE unchanged, pass 93.75 % (one moved design's raw CE went
above 100 %); ``--keep-stiffer`` (a moved design kept only when its binarised compliance is
no worse than the unguided one's): 6.25 % on both models, pass unchanged. With the compliance
in the objective (``--stiffness 1``, what `evaluate --guide` does): 0 % floating on both,
first CE 3.18 / 4.25 % and 3.38 / 3.68 %, pass 97.5 % on both. About 20 s a budget.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from topovae.datasets import TopologyDataset  # noqa: E402
from topovae.models import load  # noqa: E402
from topovae.workflows._judge import score  # noqa: E402
from topovae.workflows._latent import LatentDecoder, guide_away_from_floating  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="a trained cvae")
    ap.add_argument("--data", required=True, help="the file it was trained on")
    ap.add_argument("--steps", default="0,10,50,100", help="comma-separated step budgets")
    ap.add_argument("--lr", default="0.1,0.1,0.5,1.0", help="Adam's step size, one per budget")
    ap.add_argument("--lam", type=float, default=0.01, help="pull towards u = 0")
    ap.add_argument(
        "--stiffness",
        type=float,
        default=0.0,
        help="weight of log(C / C_0) in the guidance objective (0: off)",
    )
    ap.add_argument("--keep-stiffer", action="store_true",
                    help="keep a guided design only if its binarised compliance is no worse "
                    "than the unguided one's")  # fmt: skip
    ap.add_argument("--limit", type=int, default=80)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    steps = [int(v) for v in a.steps.split(",")]
    rates = [float(v) for v in a.lr.split(",")]
    if len(rates) != len(steps):
        raise SystemExit(f"--lr needs one value per --steps value ({len(steps)}), got {a.lr}")
    model = load(a.model).eval()
    test = TopologyDataset(a.data, "test", in_memory=True, fields=True)
    n = min(a.limit, len(test))
    for budget, lr in zip(steps, rates, strict=True):
        rows = []
        for k in range(n):
            p = test.problem(k)
            dec = LatentDecoder(model, p, connect=False)
            u = guide_away_from_floating(
                dec.logits, p, torch.zeros(1, dec.latent_dim), budget, lr=lr, pull=a.lam,
                stiffness=a.stiffness,
            )  # fmt: skip
            with torch.no_grad():
                design = dec.designs(u, project=True)[0].numpy()
            reference = test[k]["density"][0].double().numpy()
            s = score(design[None], [p], reference=reference[None])
            if a.keep_stiffer and float(u.norm()) > 0:  # the unguided design if it is stiffer
                with torch.no_grad():
                    plain = dec.designs(torch.zeros_like(u), project=True)[0].numpy()
                sp = score(plain[None], [p], reference=reference[None])
                if sp["compliance_binary"][0] < s["compliance_binary"][0]:
                    s, u = sp, torch.zeros_like(u)
            rows.append((s["ce"][0], s["ce_binary"][0], s["floating"][0] > 0, float(u.norm())))
        r = np.asarray(rows, dtype=float)
        moved = r[:, 3] > 0
        print(f"{budget:>4} steps, lr {lr:g}: first CE {100 * np.median(r[:, 0]):.2f} / "
              f"{100 * np.median(r[:, 1]):.2f} %, pass {100 * np.mean(r[:, 0] < 1):.2f} %, "
              f"floating {100 * np.mean(r[:, 2]):.2f} %; moved {int(moved.sum())} of {n}, "
              f"|u| median among them "
              f"{np.median(r[moved, 3]) if moved.any() else 0.0:.2f}", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
