"""Does the physics term make a decoder whose designs need no load-path repair? A trained cvae
with the physics term (the demo's model) fine-tuned some more epochs with the term as it is,
judging more samples of each batch, or judging sharpened decodes (logits times ``--sharpness``
before the volume projection, so that a member the decoder leaves grey counts as cut, as
binarisation cuts it), then judged by `evaluate` with the decoder alone (``connect=False``) and
with the repair: first-design CE (raw, binarised), pass rate, share of first designs with
floating material, polished CE:

    python benchmarks/bench_floating.py --model out/demo/model/best.pt --data out/demo/data.h5 \\
        --sharpness 1,4 --out out/bench_floating

``--floating-weights 5,50`` adds the floating-material term (`VAEConfig.floating_weight`) to
the fine-tunes. Measured (docs/architecture.md, the load-path connection): the demo model's
decoder alone floats on 13.75 % of first designs; 10 more epochs of the term, 10.0 %; sharpened
4x, 10.0 % with first CE 6.31 % against 3.21 %; with the floating term at weight 5 / 50, 8.75 /
7.5 % (first CE 2.58 / 3.66 %), at 200, 11.25 % (5.82 %); ``--repair-weight 20 / 100`` (the
workflows' load-path repair taught to the decoder, `repair_terms`) 16.25 / 25.0 % (4.10 /
6.63 %); the floating term's mask widened to what floats at 1.1 x the volume fraction too
(``--floating-margin 0.1``, weight 50), 10.0 % (3.43 %). About 2.5 minutes per fine-tune.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch

import topovae.models._train as training
from topovae.datasets import TopologyDataset
from topovae.models import TrainConfig, Trainer, load
from topovae.workflows import evaluate


def repair_terms(logits: torch.Tensor, problems) -> torch.Tensor:
    """(B,) the workflows' load-path repair (`connect`) taught to the decoder: for each design
    whose binarisation floats or leaves a load bare, the binary cross-entropy of its soft
    density (as the physics term judges it) against the repaired design's binarisation, on the
    elements where the two binarisations differ (the path the repair raised), over the solid's
    size; 0 for a connected design."""
    import numpy as np

    from topovae.models._losses import judged_density
    from topovae.solvers import solid as binarise
    from topovae.workflows._connect import connect

    rho = judged_density(logits, problems)
    out = []
    for b, p in enumerate(problems):

        def density(lg: np.ndarray, p=p) -> np.ndarray:
            with torch.no_grad():
                return judged_density(torch.from_numpy(lg)[None, None], [p])[0].numpy()

        r = rho[b]
        hard = binarise(r.detach().numpy(), p)
        repaired = binarise(connect(logits[b, 0].detach().double().numpy(), p, density), p)
        differ = torch.as_tensor(hard != repaired)
        if not differ.any():
            out.append(r.sum() * 0.0)
            continue
        target = torch.as_tensor(repaired, dtype=r.dtype)
        bce = torch.nn.functional.binary_cross_entropy(r.clamp(1e-6, 1 - 1e-6), target,
                                                       reduction="none")  # fmt: skip
        out.append((bce * differ).sum() / max(int(hard.sum()), 1))
    return torch.stack(out)


def margin_floating_terms(margin: float):
    """`floating_terms` whose mask also holds what floats when ``margin`` more of the volume is
    solid (the densest elements below the threshold, the next to cross it)."""
    from topovae.models._losses import judged_density
    from topovae.solvers._alternatives import binarized
    from topovae.solvers._connectivity import load_carrying

    def terms(logits: torch.Tensor, problems) -> torch.Tensor:
        rho = judged_density(logits, problems)
        out = []
        for r, p in zip(rho, problems, strict=True):
            d = r.detach().numpy()
            mask = None
            for vf in (p.volfrac, min(p.volfrac * (1 + margin), 0.99)):
                hard = binarized(d, vf, p.passive_solid, p.passive_void)
                floating = hard & ~load_carrying(hard, p)
                mask = floating if mask is None else mask | floating
            size = binarized(d, p.volfrac, p.passive_solid, p.passive_void).sum()
            out.append((r * torch.as_tensor(mask)).sum() / max(int(size), 1))
        return torch.stack(out)

    return terms


def fine_tune(src: str, data: str, out: Path, sharpness: float, samples: int, epochs: int,
              floating: float = 0.0, decode: str = "", repair: float = 0.0,
              margin: float = 0.0):  # fmt: skip
    """``epochs`` more epochs of ``src`` with the physics term from the first step, judging
    ``samples`` samples per batch (0: the model's own count) decoded with logits x
    ``sharpness``, with `VAEConfig.floating_weight` ``floating``, judging the model's own
    ``compliance_decode`` or ``decode``, plus ``repair`` times `repair_terms` of the same
    decodes; with ``margin`` the floating term's mask is `margin_floating_terms`'."""
    model = load(src)
    cfg = dataclasses.replace(
        model.config, compliance_start=0, compliance_ramp=0, kl_warmup_steps=0,
        compliance_samples=samples or model.config.compliance_samples, floating_weight=floating,
        compliance_decode=decode or model.config.compliance_decode,
    )  # fmt: skip
    tcfg = TrainConfig(epochs=epochs, batch_size=64, lr=3e-4, warmup_steps=0, seed=0,
                       device="cpu", plots=False)  # fmt: skip
    train = TopologyDataset(data, "train", in_memory=True, fields=True)
    val = TopologyDataset(data, "val", in_memory=True, fields=True)
    plain = training.physics_terms

    def judged(logits, x, problems, *a, **k):
        terms = plain(sharpness * logits, x, problems, *a, **k)
        if repair > 0:
            terms = terms + repair * repair_terms(logits, problems).to(terms)
        return terms

    training.physics_terms = judged
    plain_floating = training.floating_terms
    if margin > 0:
        training.floating_terms = margin_floating_terms(margin)
    try:
        trainer = Trainer(cfg, tcfg, train, val, out)
        trainer.initialise_from(src)
        trainer.fit(progress=False)
    finally:
        training.physics_terms = plain
        training.floating_terms = plain_floating
    return load(out / "best.pt")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="a cvae trained with the physics term")
    ap.add_argument("--data", required=True, help="the file it was trained on")
    ap.add_argument("--sharpness", default="1,4", help="comma-separated logit factors")
    ap.add_argument("--samples", type=int, default=0, help="samples judged per batch (0: as is)")
    ap.add_argument("--floating-weights", default="0",
                    help="comma-separated weights of the floating penalty (0: off)")  # fmt: skip
    ap.add_argument("--decode", default="", choices=("", "prior_mean", "prior_sample"),
                    help="what the terms judge (default: as the model was trained)")  # fmt: skip
    ap.add_argument(
        "--repair-weight",
        type=float,
        default=0.0,
        help="weight of the repair taught to the decoder (`repair_terms`; 0: off)",
    )
    ap.add_argument(
        "--floating-margin",
        type=float,
        default=0.0,
        help="the floating term's mask also at (1 + margin) x the volume fraction",
    )
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--limit", type=int, default=80)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="out/bench_floating")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    rows = [("as trained", load(a.model))]
    for s in (float(v) for v in a.sharpness.split(",")):
        for f in (float(v) for v in a.floating_weights.split(",")):
            run = Path(a.out) / (
                f"sharpness{s:g}_samples{a.samples}_floating{f:g}{a.decode}"
                f"_repair{a.repair_weight:g}_margin{a.floating_margin:g}"
            )
            name = f"+{a.epochs} epochs, sharpness {s:g}" + (f", floating {f:g}" if f else "")
            name += f", {a.decode}" if a.decode else ""
            name += f", repair {a.repair_weight:g}" if a.repair_weight else ""
            name += f", margin {a.floating_margin:g}" if a.floating_margin else ""
            run_model = fine_tune(
                a.model, a.data, run, s, a.samples, a.epochs, f, a.decode, a.repair_weight,
                a.floating_margin,
            )  # fmt: skip
            rows.append((name, run_model))
    for name, model in rows:
        for connect in (False, True):
            rep = evaluate(
                model,
                a.data,
                "test",
                k=8,
                polish=10,
                seed=0,
                limit=a.limit,
                device="cpu",
                connect=connect,
                guide=0,
            )  # training's effect alone
            f, p = rep["metrics"]["first"], rep["metrics"]["polished"]
            how = "repaired" if connect else "decoder alone"
            print(f"{name:>30} ({how}): first CE {100 * f['ce_median']:.2f} / "
                  f"{100 * f['ce_binary_median']:.2f} %, pass {100 * f['pass_rate']:.2f} %, "
                  f"floating {100 * f['floating_rate']:.2f} %, polished "
                  f"{100 * p['ce_median']:.2f} %", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
