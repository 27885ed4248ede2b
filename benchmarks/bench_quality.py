"""Design quality of conditional models, judged by `evaluate`: the first topovae CVAE, the U-Net
CVAE with a learned prior, and a plain conditional U-Net regression as the yardstick, trained on
the same data with the same number of epochs and evaluated on the same held-out split, in one run.

    python benchmarks/bench_quality.py                     # the demo's data (made if missing)
    python benchmarks/bench_quality.py --data d.h5 --models unet --epochs 60 --limit 80
    python benchmarks/bench_quality.py --models unet --search 8   # + FE solves to reach 1 %
    python benchmarks/bench_quality.py --data alt.h5 --models unet --epochs 40 -k 16  # design space
    python benchmarks/bench_quality.py --data one.h5 --eval-data alt.h5 ...  # the same problems

Prints, per model, training seconds and the table of `evaluate` (first = prior mean, best of k,
polished with --polish SIMP iterations, SIMP with the same iterations from its uniform start),
once for the designs as workflows return them (load paths connected, `workflows._connect`) and
once for the decoder alone (``connect=False``), and the design space the k samples of each problem
span (`workflows.diversity`: distinct designs within 5 % / 10 % of the stiffest reference, mean
pairwise 1 - IoU, coverage of the reference designs and the generalized energy distance; a file
made with `generate --alternatives` holds several reference designs per problem):
CE median / mean (raw and binarised), CE < 1 % / < 5 %, pass rate, the OAT convention (median
and mean CE over passing designs only), floating designs, VFE, greyness; and writes everything to
``--out``/quality.json. ``--nll K`` adds each model's -log p(x | c) of the held-out designs
(the IWAE estimate with K samples) and its ELBO. ``--search N`` also runs gradient and CMA-ES
latent search on N held-out problems and reports the FE solves (search evaluations + polish
iterations) until CE <= 1 %, against SIMP's iterations to convergence.

Models (``--models``, comma-separated):
  conv        the first topovae CVAE: plain conv encoder/decoder, raw conditions average-pooled
              into the decoder, prior N(0, I), no augmentation (as the demo trained it)
  unet        the U-Net CVAE: condition encoder, skips, FiLM(z), dependent prior p(z | c),
              symmetry augmentation
  unet-indep  the same with the independent prior N(0, I)
  unet-noaug  the U-Net CVAE without augmentation
  hvae        the ladder VAE: the U-Net CVAE with two stochastic layers (half of --latent-dim
              on top), top-down inference (Sønderby et al. 2016)
  vae         the unconditional VAE on the U-Net backbone (no condition: its samples ignore
              the problem, a yardstick for what the condition buys)
  beta-vae    the same with beta = 4 (--beta does not apply)
  nearest     no model: the k training designs with the nearest conditions (`evaluate`'s
              "nearest" yardstick, no NLL)
  ppca        probabilistic PCA (unconditional, --latent-dim dimensions), fitted in closed form
              (its NLL exact)
  vqvae       the conditional VQ-VAE on the U-Net backbone: --latent-dim discrete slots of a
              64-code EMA codebook, its autoregressive prior fitted after training (no NLL)
  regression  condition images -> design, BCE only, no latent (the U-Net's decoder at z = 0)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import torch

from topovae.datasets import TopologyDataset, distribution, generate
from topovae.models import (
    VQVAE,
    DesignVAE,
    LadderVAE,
    PPCAModel,
    TrainConfig,
    Trainer,
    VAEConfig,
    load,
)
from topovae.models._train import save_fit
from topovae.workflows import evaluate
from topovae.workflows._evaluate import NEAREST


class ConditionalUNet(DesignVAE):
    """The yardstick: the U-Net decoder at z = 0, a deterministic map c -> design. The
    posterior is fixed at N(0, I) (KL 0) and the decoder ignores z, so the loss is BCE alone."""

    def encode(self, x, c=None, feats=None):
        zero = torch.zeros(x.shape[0], self.config.latent_dim, device=x.device, dtype=x.dtype)
        return zero, zero

    def decode(self, z, c=None, feats=None):
        return super().decode(torch.zeros_like(z), c, feats)


def model_spec(name: str, size: int, channels: int, latent: int, width: int, depth: int,
               beta: float = 1.0, **physics):  # fmt: skip
    """(VAEConfig, model class, augment) of a named model; ``physics``: compliance_* fields
    for the U-Net CVAEs."""
    common = dict(kind="cvae", height=size, width=size, cond_channels=channels,
                  latent_dim=latent, base_width=width, depth=depth)  # fmt: skip
    if name.startswith("unet") or name == "hvae":
        common.update(physics)
        common["beta"] = beta
    if name == "conv":
        return VAEConfig(arch="conv", kl_warmup_steps=200, beta=4.0, **common), DesignVAE, False
    if name in ("unet", "unet-noaug"):
        cfg = VAEConfig(arch="unet", **{"kl_warmup_steps": 200, **common})
        return cfg, DesignVAE, name == "unet"
    if name == "unet-indep":
        cfg = VAEConfig(arch="unet", prior="independent", **{"kl_warmup_steps": 200, **common})
        return cfg, DesignVAE, True
    if name == "hvae":  # the ladder VAE: the unet cvae with two stochastic layers
        cfg = VAEConfig(**{"kl_warmup_steps": 200, **common, "kind": "hvae"})
        return cfg, LadderVAE, True
    if name in ("vae", "beta-vae"):
        cfg = VAEConfig(kind=name, arch="unet", height=size, width=size, latent_dim=latent,
                        base_width=width, depth=depth, kl_warmup_steps=200,
                        beta=4.0 if name == "beta-vae" else 1.0)  # fmt: skip
        return cfg, DesignVAE, True
    if name == "vqvae":
        return VAEConfig(**{**common, "kind": "vqvae"}), VQVAE, True
    if name == "ppca":
        cfg = VAEConfig(kind="ppca", height=size, width=size, latent_dim=latent)
        return cfg, PPCAModel, False
    if name == "regression":
        return VAEConfig(arch="unet", prior="independent", **common), ConditionalUNet, True
    raise SystemExit(f"unknown model {name!r}")


ROWS = [
    ("ce_median", "CE median"), ("ce_mean", "CE mean"),
    ("ce_binary_median", "CE binarised median"), ("ce_binary_mean", "CE binarised mean"),
    ("ce_under_1pct", "CE < 1 %"), ("ce_under_5pct", "CE < 5 %"),
    ("pass_rate", "pass (CE < 100 %)"), ("ce_median_passing", "CE median, passing only"),
    ("ce_mean_passing", "CE mean, passing only"), ("floating_rate", "designs with floating"),
    ("vfe_mean", "VFE"), ("greyness_mean", "greyness"),
]  # fmt: skip
VARIANTS = ("first", "best", "polished", "simp_k")


def table(name: str, seconds: float, metrics: dict) -> str:
    head = f"\n{name} (trained {seconds:.0f} s)\n"
    lines = [f"| {'metric':<26} | " + " | ".join(f"{v:>9}" for v in VARIANTS) + " |"]
    for key, label in ROWS:
        vals = []
        for v in VARIANTS:
            x = metrics[v].get(key)
            vals.append("      n/a" if x is None else f"{100 * x:8.2f}%")
        lines.append(f"| {label:<26} | " + " | ".join(vals) + " |")
    return head + "\n".join(lines)


DIVERSITY_ROWS = [
    ("distinct_5", "distinct within 5 %"), ("distinct_10", "distinct within 10 %"),
    ("pairwise", "pairwise 1 - IoU"), ("coverage", "coverage of references"),
    ("reproduced", "references reproduced"),
    ("ged", "GED"), ("references", "reference designs"),
]  # fmt: skip


def diversity_table(name: str, report: dict) -> str:
    d = report["diversity"]
    lines = [f"\n{name}: design space over k = {report['k']} samples per problem",
             f"| {'figure':<26} | {'median':>8} | {'mean':>8} |"]  # fmt: skip
    for key, label in DIVERSITY_ROWS:
        if f"{key}_median" in d:
            lines.append(f"| {label:<26} | {d[key + '_median']:8.3f} | {d[key + '_mean']:8.3f} |")
    return "\n".join(lines)


def unseen_metrics(model, path: str, n_seen: int, a, connect: bool = True) -> dict:
    """`evaluate`'s summary over the test problems of ``path`` whose index is >= ``n_seen`` (a file
    of the same distribution and seed is the same stream, so those were in no split of --data)."""
    from topovae.workflows._evaluate import _summary
    from topovae.workflows._judge import SCORE_KEYS

    rep = evaluate(model, path, "test", k=a.k, polish=a.polish, seed=0, device="cpu",
                   connect=connect, guide=a.guide)  # fmt: skip
    rows = [r for r in rep["per_problem"] if r["index"] >= n_seen]
    return {
        v: _summary({key: np.array([r[f"{v}_{key}"] for r in rows]) for key in SCORE_KEYS})
        for v in VARIANTS
    }


def solves_to_one_percent(model, ds, rows, budgets, polish: int):
    """Per problem: SIMP's iterations to convergence and to within 1 % of its final compliance,
    and for the model the FE solves (search evaluations, then polish iterations one at a time)
    until CE <= 1 %: "first" = the prior-mean design (1 solve) + polish; "gradient" / "cmaes" =
    a search of each budget + polish. None where it is not reached."""
    from topovae.solvers import solve
    from topovae.workflows import LatentDecoder, score, search

    def polish_to(density, problem, simp_design, spent):
        for it in range(1, polish + 1):
            p = solve(problem.with_settings(max_iter=it), x0=density)
            if score(p.density[None], problem, simp_design[None])["ce"][0] <= 0.01:
                return spent + it
        return None

    out = []
    for row in rows:
        problem = ds.problem(row)
        simp_design = ds[row]["density"][0].numpy().astype(np.float64)
        full = solve(problem)
        ref = score(simp_design[None], problem)["compliance"][0]
        hist = np.asarray(full.history["compliance"])
        near = np.flatnonzero(hist <= 1.01 * ref)
        entry = {"index": int(ds[row]["index"]), "simp_iterations": full.iterations,
                 "simp_to_1pct": int(near[0]) + 1 if near.size else None}  # fmt: skip
        dec = LatentDecoder(model, problem, "cpu")
        rho0 = dec.numpy(torch.zeros(1, model.config.latent_dim), project=True)[0]
        ce0 = score(rho0[None], problem, simp_design[None])["ce"][0]
        entry["first"] = 1 if ce0 <= 0.01 else polish_to(rho0, problem, simp_design, 1)
        for method in ("gradient", "cmaes"):
            for budget in budgets:
                r = search(model, problem, method=method, budget=budget, seed=0)
                hit = np.flatnonzero(r.best_so_far / ref - 1 <= 0.01)
                solves = int(hit[0]) + 1 if hit.size else None
                if solves is None:
                    solves = polish_to(r.density, problem, simp_design, budget)
                entry[f"{method}@{budget}"] = solves
        out.append(entry)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument(
        "--data",
        default="out/bench_quality/data.h5",
        help="dataset (made like the demo's when missing: 800 TopoDiff-like 32x32)",
    )
    ap.add_argument("--n", type=int, default=800, help="designs when the data is made")
    ap.add_argument(
        "--eval-data",
        default=None,
        help="evaluate on this file's test split instead (same distribution and seed: the same "
        "problems, e.g. with alternatives as references)",
    )
    ap.add_argument(
        "--condition-dropout", type=float, default=0.0, help="partial conditions (unet models)"
    )

    ap.add_argument("--models", default="conv,unet,regression")
    ap.add_argument("--epochs", type=int, default=150, help="the demo's")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--latent-dim", type=int, default=16)
    ap.add_argument("--base-width", type=int, default=16)
    ap.add_argument("--depth", type=int, default=3)
    ap.add_argument("-k", type=int, default=8)
    ap.add_argument("--polish", type=int, default=10)
    ap.add_argument("--guide", type=int, default=None,
                    help="guidance steps on the first design (default: evaluate's, 100 for a "
                    "continuous latent; 0: unguided, as figures before 2026-12-07)")  # fmt: skip
    ap.add_argument("--limit", type=int, default=None, help="held-out problems (default all)")
    ap.add_argument("--search", type=int, default=0, help="problems for the FE-solves study")
    ap.add_argument("--nll", type=int, default=0,
                    help="also -log p(x | c) of the held-out designs, the IWAE estimate with "
                    "this many samples (100 is usual), and the ELBO")  # fmt: skip
    ap.add_argument(
        "--search-budgets",
        default="8,24,60",
        help="search budgets (FE evaluations) before the polish",
    )
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--unseen",
        default=None,
        help="a larger file of the same distribution and seed: its test problems with an index "
        "beyond --data's samples are judged too (more held-out problems)",
    )
    ap.add_argument(
        "--reuse",
        action="store_true",
        help="evaluate the model already in OUT/NAME/best.pt instead of training",
    )
    ap.add_argument(
        "--no-fields",
        action="store_true",
        help="condition on the problem images only (no full-material fields)",
    )
    ap.add_argument(
        "--beta", type=float, default=0.5, help="KL weight of the unet models (the demo's)"
    )
    ap.add_argument(
        "--compliance-weight",
        type=float,
        default=0.0,
        help="physics term for the unet models (0: off)",
    )
    ap.add_argument("--ema", type=float, default=0.0, help="weight-average decay (0: off)")
    ap.add_argument(
        "--compliance-decode",
        default="auto",
        help="what the physics term judges: prior_mean | prior_sample | posterior",
    )
    ap.add_argument(
        "--compliance-samples", type=int, default=0, help="designs of each batch it judges (0: all)"
    )
    ap.add_argument(
        "--compliance-tolerance", type=float, default=0.0,
        help="designs within this fraction of their SIMP compliance are not pushed (0: off)",
    )  # fmt: skip
    ap.add_argument(
        "--prior-components", type=int, default=0,
        help="unet/hvae: fit a prior mixture of this many Gaussians after training and sample "
        "from it (VAEConfig.prior_components)",
    )  # fmt: skip
    ap.add_argument(
        "--init",
        default=None,
        help="start from this checkpoint's weights (fine-tuning; same architecture)",
    )
    ap.add_argument("--kl-warmup", type=int, default=200, help="KL warm-up steps (unet models)")
    ap.add_argument("--warmup-steps", type=int, default=100, help="learning-rate warm-up steps")
    ap.add_argument("--compliance-start", type=int, default=0, help="step it starts at")
    ap.add_argument("--compliance-ramp", type=int, default=0, help="steps of its linear ramp")
    ap.add_argument("--out", default="out/bench_quality")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    data = Path(a.data)
    if not data.exists():
        generate(data, distribution("topodiff-like", 32, 32), a.n, seed=0)
    fields = not a.no_fields
    train = TopologyDataset(data, "train", in_memory=True, fields=fields)
    val = TopologyDataset(data, "val", in_memory=True, fields=fields)
    size = train.header["distribution"].nely
    results = {}
    for name in a.models.split(","):
        if name == NEAREST:
            rep = evaluate(NEAREST, a.eval_data or data, "test", k=a.k, polish=a.polish, seed=0,
                           limit=a.limit, device="cpu")  # fmt: skip
            results[name] = {"train_seconds": 0.0, "metrics": rep["metrics"],
                             "problems": rep["problems"],
                             "diversity": rep["diversity"]}  # fmt: skip
            print(table(f"{name}: {rep['problems']} held-out problems", 0.0, rep["metrics"]))
            print(diversity_table(name, rep))
            continue
        cfg, cls, augment = model_spec(
            name, size, len(train.condition_channels), a.latent_dim, a.base_width, a.depth,
            beta=a.beta, compliance_weight=a.compliance_weight, compliance_start=a.compliance_start,
            compliance_ramp=a.compliance_ramp, condition_dropout=a.condition_dropout,
            compliance_decode=a.compliance_decode, compliance_samples=a.compliance_samples,
            compliance_tolerance=a.compliance_tolerance, prior_components=a.prior_components,
            kl_warmup_steps=a.kl_warmup,
        )  # fmt: skip
        run = out / name
        seconds = float("nan")
        if not (a.reuse and (run / "best.pt").exists()):
            if (run / "last.pt").exists():
                for f in run.iterdir():
                    if f.is_file():
                        f.unlink()
            tcfg = TrainConfig(epochs=a.epochs, batch_size=a.batch_size, lr=a.lr, seed=0,
                               device="cpu", augment=augment, plots=False, ema=a.ema,
                               warmup_steps=a.warmup_steps)  # fmt: skip
            t0 = time.perf_counter()
            if getattr(cls, "closed_form", False):
                save_fit(cfg, tcfg, train, val, run)
            else:
                trainer = Trainer(cfg, tcfg, train, val, run, model_class=cls)
                if a.init:
                    trainer.initialise_from(a.init)
                trainer.fit(progress=False)
            seconds = time.perf_counter() - t0
        model = cls(cfg)
        model.load_state_dict(load(run / "best.pt").state_dict())
        model.eval()
        rep, alone = (
            evaluate(model, a.eval_data or data, "test", k=a.k, polish=a.polish, seed=0,
                     limit=a.limit, device="cpu", connect=connect, guide=a.guide,
                     nll=a.nll if connect and model.continuous_latent else 0)
            for connect in (True, False)
        )  # fmt: skip
        results[name] = {"train_seconds": seconds, "metrics": rep["metrics"],
                         "metrics_unconnected": alone["metrics"], "problems": rep["problems"],
                         "diversity": rep["diversity"],
                         "diversity_unconnected": alone["diversity"],
                         "likelihood": rep["likelihood"]}  # fmt: skip
        print(table(f"{name}: {rep['problems']} held-out problems", seconds, rep["metrics"]))
        print(table(f"{name}: the same, decoder alone (load paths not connected)", seconds,
                    alone["metrics"]))  # fmt: skip
        lk = rep["likelihood"]
        if lk and lk.get("exact"):
            print(f"{name}: -log p(x) {lk['nll_nats']:.1f} nats per design (exact), "
                  f"{lk['bits_per_element']:.4f} bits per element")  # fmt: skip
        elif lk:
            given = " | c" if model.config.conditional else ""
            print(f"{name}: -log p(x{given}) {lk['nll_nats']:.1f} nats per design (IWAE, K = "
                  f"{lk['k']}), {lk['bits_per_element']:.4f} bits per element; ELBO "
                  f"{lk['elbo_nats']:.1f} nats")  # fmt: skip
        print(diversity_table(name, rep))
        print(diversity_table(f"{name}, decoder alone", alone))
        sys.stdout.flush()
        if a.unseen:
            for connect, key in ((True, "unseen"), (False, "unseen_unconnected")):
                results[name][key] = unseen_metrics(model, a.unseen, train.header["n"], a, connect)
                n = results[name][key]["first"]["n"]
                alone = "" if connect else ", decoder alone"
                print(table(f"{name}: {n} problems of {a.unseen} beyond the training file{alone}",
                            seconds, results[name][key]))  # fmt: skip
        if a.search:
            test = TopologyDataset(data, "test", in_memory=True, fields=fields)
            budgets = [int(b) for b in a.search_budgets.split(",")]
            s = solves_to_one_percent(model, test, range(min(a.search, len(test))), budgets,
                                      a.polish)  # fmt: skip
            results[name]["solves_to_1pct"] = s
            for key in s[0]:
                if key == "index":
                    continue
                vals = [e[key] for e in s]
                reached = [v for v in vals if v is not None]
                # unreached counts as infinitely many solves: the median over all problems
                med = np.median([np.inf if v is None else v for v in vals])
                print(f"  FE solves to CE <= 1 % ({key}): median {med:.0f} over all problems, "
                      f"{np.median(reached) if reached else np.nan:.0f} over the "
                      f"{len(reached)}/{len(vals)} that reach it")  # fmt: skip
    (out / "quality.json").write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
