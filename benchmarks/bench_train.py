"""Training speed and held-out quality of the design VAEs (vae and cvae, latent 32).

Part 1, throughput. Training samples per second of the default architecture (`VAEConfig`
defaults: base width 32, depth 4, latent 32) at 64x64, for a vae and a cvae with the dataset's 7
condition channels, on synthetic random tensors (densities in [0, 1], random conditions). A step
is what `Trainer` does per batch: forward with the reparameterisation noise generator, the loss
terms, zero_grad, backward, gradient clipping to 1, AdamW step (no data loading, no per-step host
reads). Warm-up steps (``--warmup``) are excluded. On the CPU: batch 64 and 256 with 1 and 2
torch threads (``--cpu-samples`` samples timed per row, at least one step). On CUDA, when
present: batch 512 (``--gpu-batch``), float32 and bf16 autocast (as `Trainer` uses on CUDA),
each with and without `torch.compile`, timed between `torch.cuda.synchronize()` calls, with the
peak GPU memory; plus the end-to-end `Trainer.fit` epoch (bf16, batches collated by a DataLoader
from an in-memory dataset, its per-step loss reads included) without and with compile. Target
(issue): >= 20k samples/s on one H100 at batch 512.

Part 2, quality. A dataset of designs (``--distribution``, default mixed, ``--size`` 64x64, ``-n``
300, seed 0) is generated with 2 local workers into ``--cache`` (default benchmarks/.cache,
git-ignored) and reused by later runs (a larger ``-n`` starts from the largest smaller cached file
of the same distribution and seed: sample i depends only on (seed, i)); ``--data PATH`` uses an
existing file instead. Its default
80/10/10 train/val/test split trains a cvae and a vae (`Trainer`, AdamW lr 1e-3 with warm-up and
cosine decay, batch ``--train-batch``) for ``--epochs`` epochs, fewer when the estimated time
would pass ``--budget`` seconds per model (the epoch count is fixed before training, so the
learning-rate schedule runs to its end). It prints, from `Trainer.evaluate` on the test split:
the IoU of the binarised reconstruction (decoded posterior mean > 0.5 against design > 0.5), the
same IoU on the training split (a train/test gap points at too little data; both low points at
too little training), active units (Var[mu] > 0.01), the ELBO per sample in nats (-(BCE summed
over the pixels + KL)) and the KL; for reference the IoU of the mean training design
(thresholded, no model) and the share of grey pixels (0.1 < density < 0.9) in the test designs;
and the validation IoU along training. ``--train-limit N`` trains on the first N training designs
only, against the same test split (a data-size study). Target (issue): IoU >= 0.95 at 64x64,
latent 32.

At 64x64 on 2 cores generation runs about 1.5 designs/s (n = 300: 3 to 4 minutes, once) and
training about 30 samples/s. ``--size 32x32`` generates about 9 times and trains about 5 times
faster, so more data and epochs fit a budget, but its IoU is not comparable with the 64x64
target: the filter radius stays 2 elements, so features are 2 to 4 elements wide and grey
boundary pixels are about twice as common (21 % against 11 %).

Run (from the repository root; about 10 minutes with the defaults on 2 cores the first time, 3 to
4 of them generating the dataset, about 6.5 later)::

    PYTHONPATH=. .venv/bin/python benchmarks/bench_train.py
    PYTHONPATH=. .venv/bin/python benchmarks/bench_train.py --skip-quality      # throughput only
    PYTHONPATH=. .venv/bin/python benchmarks/bench_train.py --skip-throughput --size 32x32 -n 600
    PYTHONPATH=. .venv/bin/python benchmarks/bench_train.py --skip-throughput --data data.h5 \\
        --epochs 200 --budget 0 --models cvae
"""

import os

for _v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import functools  # noqa: E402
import math  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # so that `python benchmarks/bench_train.py` finds topovae

import numpy as np  # noqa: E402
import torch  # noqa: E402

from topovae.datasets import distribution, generate, read_header  # noqa: E402
from topovae.models import DesignVAE, TrainConfig, Trainer, VAEConfig, loss_terms  # noqa: E402

COND_CHANNELS = 7  # volfrac, fx, fy, fixed x, fixed y, passive solid, passive void
GPU_TARGET = 20_000  # samples/s at batch 512 on one H100
IOU_TARGET = 0.95  # at 64x64, latent 32


def model_config(kind: str, h: int, w: int, latent: int) -> VAEConfig:
    cc = COND_CHANNELS if kind == "cvae" else 0
    return VAEConfig(kind=kind, height=h, width=w, cond_channels=cc, latent_dim=latent)


# -- part 1: throughput ------------------------------------------------------------------------
def step_throughput(cfg, batch, device, warmup, steps, bf16=False, compile_=False):
    """Samples/s, seconds per step and peak GPU memory (GiB, CUDA) of `Trainer`'s step."""
    dev = torch.device(device)
    torch.manual_seed(0)
    model = DesignVAE(cfg).to(dev).train()
    if compile_:
        torch._dynamo.reset()
    forward = torch.compile(model) if compile_ else model
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    noise = torch.Generator(device=dev).manual_seed(1)
    g = torch.Generator(device=dev).manual_seed(2)
    x = torch.rand(batch, 1, cfg.height, cfg.width, generator=g, device=dev)
    c = None
    if cfg.conditional:
        c = torch.rand(batch, cfg.cond_channels, cfg.height, cfg.width, generator=g, device=dev)
    vf = torch.rand(batch, generator=g, device=dev)

    def step(k):
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16):
            o = forward(x, c, generator=noise)
        terms = loss_terms(cfg, o.logits, x, o.mu, o.logvar, k, vf, o.prior_mu, o.prior_logvar)
        opt.zero_grad(set_to_none=True)
        terms["total"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

    cuda = dev.type == "cuda"
    for k in range(warmup):
        step(k)
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter()
    for k in range(steps):
        step(warmup + k)
    if cuda:
        torch.cuda.synchronize()
    dt = time.perf_counter() - t
    peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else float("nan")
    return {"samples/s": batch * steps / dt, "s/step": dt / steps, "steps": steps, "peak": peak}


class SyntheticDesigns(torch.utils.data.Dataset):
    """Random items shaped like `TopologyDataset`'s, held in memory."""

    def __init__(self, n: int, h: int, w: int, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.x = torch.rand(n, 1, h, w, generator=g)
        self.c = torch.rand(n, COND_CHANNELS, h, w, generator=g)
        self.vf = torch.rand(n, generator=g)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, k: int) -> dict:
        return {"density": self.x[k], "condition": self.c[k], "volfrac": self.vf[k],
                "index": torch.tensor(k)}  # fmt: skip


def trainer_throughput(cfg, batch, device, steps, compile_):
    """Samples/s of a whole `Trainer.fit` epoch (the last of three; val set: one batch)."""
    train = SyntheticDesigns(batch * steps, cfg.height, cfg.width, seed=0)
    val = SyntheticDesigns(batch, cfg.height, cfg.width, seed=1)
    tcfg = TrainConfig(epochs=3, batch_size=batch, device=device, compile=compile_, plots=False)
    if compile_:
        torch._dynamo.reset()
    with tempfile.TemporaryDirectory() as out:
        history = Trainer(cfg, tcfg, train, val, out).fit(progress=False)
    dt = history[-1]["seconds"]
    return {"samples/s": len(train) / dt, "s/step": dt / steps, "steps": steps, "peak": math.nan}


def throughput(args) -> None:
    h = w = 64
    print(f"\n== 1. training throughput at {w}x{h}, latent {args.latent}: synthetic data, "
          f"fwd + bwd + clip + AdamW, {args.warmup} warm-up step(s) excluded ==")  # fmt: skip
    old = torch.get_num_threads()
    rows = []
    for kind in ("vae", "cvae"):
        cfg = model_config(kind, h, w, args.latent)
        for batch in args.cpu_batches:
            steps = max(1, math.ceil(args.cpu_samples / batch))
            base = None
            for threads in args.threads:
                torch.set_num_threads(threads)
                r = step_throughput(cfg, batch, "cpu", args.warmup, steps)
                base = base or r["samples/s"]
                rows.append((kind, batch, threads, r, r["samples/s"] / base))
                print(f"  cpu {kind} batch {batch} threads {threads}: "
                      f"{r['samples/s']:.1f} samples/s", flush=True)  # fmt: skip
    torch.set_num_threads(old)
    print(f"\n{'model':<6} {'device':<7} {'batch':>6} {'threads':>8} {'samples/s':>10} "
          f"{'s/step':>8} {'steps':>6} {'x 1 thread':>11}")  # fmt: skip
    for kind, batch, threads, r, ratio in rows:
        print(f"{kind:<6} {'cpu':<7} {batch:>6} {threads:>8} {r['samples/s']:>10.1f} "
              f"{r['s/step']:>8.3f} {r['steps']:>6} {ratio:>10.2f}x")  # fmt: skip
    print("(CPU: eager only; torch.compile is measured on CUDA)")
    if not torch.cuda.is_available():
        print(f"CUDA: not available here; the GPU rows (batch {args.gpu_batch}, float32 / bf16, "
              f"with and without torch.compile; target >= {GPU_TARGET:,} samples/s on an "
              "H100) were not run")  # fmt: skip
        return
    name = torch.cuda.get_device_name()
    rows = []
    for kind in ("vae", "cvae"):
        cfg = model_config(kind, h, w, args.latent)
        for label, bf16 in (("float32", False), ("bf16", True)):
            for compile_ in (False, True):
                r = step_throughput(cfg, args.gpu_batch, "cuda", args.gpu_warmup, args.gpu_steps,
                                    bf16=bf16, compile_=compile_)  # fmt: skip
                rows.append((kind, "step", label, compile_, r))
                print(f"  cuda {kind} {label} compile={compile_}: "
                      f"{r['samples/s']:.0f} samples/s", flush=True)  # fmt: skip
        for compile_ in (False, True):
            r = trainer_throughput(cfg, args.gpu_batch, "cuda", args.trainer_steps, compile_)
            rows.append((kind, "Trainer", "bf16", compile_, r))
            print(f"  cuda {kind} Trainer.fit compile={compile_}: {r['samples/s']:.0f} samples/s",
                  flush=True)  # fmt: skip
    print(f"\n{name}, batch {args.gpu_batch} (float32: cuDNN's default TF32 convolutions; "
          f"'Trainer': a whole Trainer.fit epoch of {args.trainer_steps} steps)")  # fmt: skip
    print(f"{'model':<6} {'timed':<8} {'precision':<10} {'compile':<8} {'samples/s':>10} "
          f"{'ms/step':>8} {'steps':>6} {'peak GiB':>9} {'x target':>9}")  # fmt: skip
    for kind, timed, label, compile_, r in rows:
        print(f"{kind:<6} {timed:<8} {label:<10} {'yes' if compile_ else 'no':<8} "
              f"{r['samples/s']:>10.0f} {1e3 * r['s/step']:>8.1f} {r['steps']:>6} "
              f"{r['peak']:>9.2f} {r['samples/s'] / GPU_TARGET:>8.2f}x")  # fmt: skip
    print(
        f"target (issue): >= {GPU_TARGET:,} samples/s at batch 512 on one H100"
        + ("" if "H100" in name else f" (this GPU: {name})")
    )


# -- part 2: quality ---------------------------------------------------------------------------
def seed_from_smaller(path: Path, name: str, n: int) -> None:
    """Start ``path`` from the largest complete cached file of fewer designs of the same
    distribution and seed: its samples 0..m-1 are the same designs (sample i is a function of
    (seed, i)), so only m..n-1 remain to solve."""
    pattern = re.compile(re.escape(name).replace(r"\{\}", r"(\d+)") + "$")
    best = None
    for p in path.parent.glob(name.format("*")):
        match = pattern.match(p.name)
        m = int(match.group(1)) if match else 0
        if 0 < m < n and (best is None or m > best[0]):
            hdr = read_header(p)
            if hdr["n"] == m and not hdr["pending_shards"]:
                best = (m, p)
    if best is not None:
        tmp = path.with_name(path.name + ".copy")
        shutil.copyfile(best[1], tmp)
        os.replace(tmp, path)
        print(f"starting from {best[1].name} ({best[0]} designs)")


def dataset_path(args) -> Path:
    if args.data:
        return Path(args.data)
    w, h = (int(v) for v in args.size.lower().split("x"))
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    name = f"{args.distribution}_{w}x{h}_n{{}}_seed{args.seed}.h5"
    path = cache / name.format(args.n)
    if not path.exists():
        seed_from_smaller(path, name, args.n)
    done, shards = 0, 0
    if path.exists():
        hdr = read_header(path)
        done, shards = hdr["n"], hdr["pending_shards"]
    if done < args.n or shards:
        print(f"generating {path} ({args.n - done} of {args.n} designs to solve, "
              f"{args.workers} workers) ...", flush=True)  # fmt: skip
        t = time.perf_counter()
        s = generate(path, distribution(args.distribution, w, h), args.n, args.seed,
                     workers=args.workers, mode="resume", progress=False)  # fmt: skip
        dt = time.perf_counter() - t
        print(f"  {s['solved']} designs in {dt:.0f} s ({s['solved'] / dt:.2f} designs/s)")
    else:
        print(f"reusing {path}")
    return path


def mean_design_iou(train_set, test_set) -> float:
    """IoU of the mean training design (> 0.5) against every test design (> 0.5)."""
    mean = np.mean([train_set[k]["density"].numpy() for k in range(len(train_set))], axis=0)
    pred = mean > 0.5
    inter = union = 0.0
    for k in range(len(test_set)):
        solid = test_set[k]["density"].numpy() > 0.5
        inter += float((pred & solid).sum())
        union += float((pred | solid).sum())
    return inter / max(union, 1.0)


def epoch_seconds(cfg, train_set, val_set, args, device) -> float:
    """Estimated seconds of one `Trainer.fit` epoch: a one-epoch fit on two batches (its first
    steps, validation and checkpoint included, so a little high) plus the rest of the training
    split at the step rate of `step_throughput`."""
    cuda = torch.device(device).type == "cuda"  # Trainer trains in bf16 there
    r = step_throughput(cfg, args.train_batch, device, 2, 3, bf16=cuda)
    k = min(len(train_set), 2 * args.train_batch)
    tcfg = TrainConfig(epochs=1, batch_size=args.train_batch, lr=args.lr, seed=args.seed,
                       device=device, plots=False)  # fmt: skip
    sub = torch.utils.data.Subset(train_set, range(k))
    with tempfile.TemporaryDirectory() as out:
        trainer = Trainer(cfg, tcfg, sub, val_set, out)
        t = time.perf_counter()
        trainer.fit(progress=False)
        short = time.perf_counter() - t
    return short + (len(train_set) - k) / r["samples/s"]


def quality(args) -> None:
    from topovae.datasets import TopologyDataset

    print("\n== 2. held-out quality after a fixed budget ==")
    path = dataset_path(args)
    hdr = read_header(path)
    d = hdr["distribution"]
    h, w = d.nely, d.nelx
    train_set = TopologyDataset(path, "train", in_memory=True)
    val_set = TopologyDataset(path, "val", in_memory=True)
    test_set = TopologyDataset(path, "test", in_memory=True)
    if args.train_limit:
        train_set = torch.utils.data.Subset(train_set, range(min(args.train_limit, len(train_set))))
    x_test = np.stack([test_set[k]["density"].numpy() for k in range(len(test_set))])
    grey = float(((x_test > 0.1) & (x_test < 0.9)).mean())
    baseline = mean_design_iou(train_set, test_set)
    torch.set_num_threads(args.train_threads)
    device = "cuda" if args.device == "auto" and torch.cuda.is_available() else args.device
    device = "cpu" if device == "auto" else device
    print(f"{path.name}: {d.name} {w}x{h}, {hdr['n']} designs -> train {len(train_set)} / val "
          f"{len(val_set)} / test {len(test_set)}; device {device}"
          + (f", {args.train_threads} torch threads" if device == "cpu" else ""))  # fmt: skip
    rows = []
    for kind in args.models:
        cfg = model_config(kind, h, w, args.latent)
        epochs, note = args.epochs, ""
        if args.budget > 0:
            per_epoch = epoch_seconds(cfg, train_set, val_set, args, device)
            epochs = max(1, min(args.epochs, int(args.budget / per_epoch)))
            note = f" (estimated {per_epoch:.1f} s each)"
        tcfg = TrainConfig(epochs=epochs, batch_size=args.train_batch, lr=args.lr, seed=args.seed,
                           device=device, plots=False)  # fmt: skip
        with tempfile.TemporaryDirectory() as out:
            trainer = Trainer(cfg, tcfg, train_set, val_set, out)
            t = time.perf_counter()
            history = trainer.fit(progress=False)
            seconds = time.perf_counter() - t
            test = trainer.evaluate(test_set)
            train = trainer.evaluate(train_set)
        rows.append((kind, epochs, trainer.step, seconds, test, train, history))
        print(f"  {kind}: {epochs} epochs{note} in {seconds:.0f} s, test IoU {test['iou']:.3f}",
              flush=True)  # fmt: skip
    print(f"\n{'model':<6} {'train n':>8} {'epochs':>7} {'steps':>6} {'train s':>8} "
          f"{'test IoU':>9} {'train IoU':>10} {'active':>7} {'ELBO':>9} {'rec':>9} "
          f"{'KL':>7}")  # fmt: skip
    for kind, epochs, steps, seconds, test, train, _ in rows:
        print(f"{kind:<6} {len(train_set):>8} {epochs:>7} {steps:>6} {seconds:>8.0f} "
              f"{test['iou']:>9.3f} {train['iou']:>10.3f} "
              f"{test['active_units']:>3}/{args.latent:<3} {test['elbo']:>9.1f} "
              f"{test['reconstruction']:>9.1f} {test['kl']:>7.1f}")  # fmt: skip
    print(
        f"target (issue): test IoU >= {IOU_TARGET} at 64x64, latent 32"
        + ("" if (w, h) == (64, 64) else f" (this run: {w}x{h}, not comparable)")
    )
    print(f"reference: IoU of the mean training design (no model) {baseline:.3f}; grey pixels "
          f"(0.1 < density < 0.9) in the test designs {grey:.1%}")  # fmt: skip
    print("ELBO, rec (BCE summed over the pixels) and KL: nats per test sample; active: latent "
          "dimensions with Var[mu] > 0.01")  # fmt: skip
    for kind, _, _, _, _, _, history in rows:
        every = max(1, len(history) // 10)
        marks = [r for r in history if r["epoch"] % every == 0 or r is history[-1]]
        print(
            f"val IoU by epoch, {kind}: "
            + ", ".join(f"{r['epoch']}: {r['val_iou']:.3f}" for r in marks)
        )


# -- part 0: the demo's training step, before and after --------------------------------------
class ContiguousVAE(DesignVAE):
    """The network as it was before channels-last weights (plain NCHW convolutions)."""

    def __init__(self, config: VAEConfig) -> None:
        super().__init__(config)
        self.to(memory_format=torch.contiguous_format)


class Competitor:
    """A CPU-bound process (a Python busy loop) while the `with` block runs."""

    def __enter__(self):
        import subprocess

        self.proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        time.sleep(0.5)
        return self

    def __exit__(self, *exc):
        self.proc.kill()
        self.proc.wait()


def convolution_floor(trainer, reps: int = 10) -> tuple[float, float, float]:
    """What the step's convolutions alone cost: (FLOPs of one training step, the convolutions'
    share of them, seconds per step of the convolutions timed one by one). Each convolution of
    the model is timed in isolation, forward and backward, at the shapes, layout and thread
    count of the step (the fastest of ``reps``: a floor). A step that ran nothing but its
    convolutions, each as fast as it runs alone, would take the summed time; the rest of a
    measured step is what fusing or removing every other op (normalisation, activations,
    copies, data, optimizer) could win at most."""
    from torch.utils.flop_counter import FlopCounterMode

    from topovae.models._train import _batch

    model = trainer.model
    item = next(iter(trainer._loader(trainer.train_set, shuffle=True)))
    x, c, vf = _batch(item, trainer.device, True)
    seen = []
    hooks = [
        m.register_forward_hook(lambda m, i, o: seen.append((m, i[0].shape, i[0].requires_grad)))
        for m in model.modules() if isinstance(m, torch.nn.Conv2d)
    ]  # fmt: skip
    with FlopCounterMode(display=False) as counter:
        trainer._terms(x, c, vf)["total"].backward()
    for h in hooks:
        h.remove()
    flops = counter.get_total_flops()
    counts = counter.get_flop_counts()["Global"]
    conv = sum(v for op, v in counts.items() if "convolution" in str(op))
    seconds = 0.0
    for m, shape, grad in seen:
        inp = torch.rand(shape).to(memory_format=torch.channels_last).requires_grad_(grad)
        times = []
        for _ in range(reps + 1):
            start = time.perf_counter()
            m(inp).sum().backward()
            times.append(time.perf_counter() - start)
        seconds += min(times[1:])
    model.zero_grad(set_to_none=True)
    return flops, conv / flops, seconds


def demo_step(args) -> None:
    """Samples/s of the demo's training epochs (Trainer._train_epoch on the demo's data, model
    and settings), in both of its phases (its first epochs, and its last ones with the physics
    term on 16 prior samples of each batch), before (NCHW weights, torch fixed on every core,
    the physics term's FE by the multigrid CG: as the demo ran until 2026-12-07) and after
    (channels-last weights, ThreadTuner, the FE by the sparse direct solver), alone and beside
    one competing CPU-bound process; the demo's whole training as their mix; then the
    validation loss over the first epochs of both, and of the new one with another seed (the
    noise a difference must beat); then what the convolutions alone cost (`convolution_floor`)."""
    import topovae.solvers.batched as batched
    from topovae.datasets import TopologyDataset
    from topovae.models import ThreadTuner
    from topovae.workflows._demo import PLANS, training_configs

    plan = PLANS["full"]
    path = Path(args.data) if args.data else Path(args.cache) / "demo-topodiff-like-32x32.h5"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        print(f"generating the demo's data into {path} (about 100 s once)", flush=True)
        generate(path, distribution("topodiff-like", plan.size, plan.size), plan.n, seed=0,
                 workers=args.workers, progress=False)  # fmt: skip
    train = TopologyDataset(path, "train", in_memory=True, fields=True)
    val = TopologyDataset(path, "val", in_memory=True, fields=True)
    for k in range(len(train)):  # the full-material fields, computed once, before any timing
        train[k]
    mcfg, tcfg = training_configs(plan, len(train.condition_channels), len(train), "cpu")
    cores = os.cpu_count() or 1
    variants = {
        "before": (ContiguousVAE, dataclasses.replace(tcfg, threads=cores, plots=False)),
        "after": (DesignVAE, dataclasses.replace(tcfg, plots=False)),
    }
    phases = {"plain": mcfg, "physics": dataclasses.replace(mcfg, compliance_start=0)}
    weights = {"plain": plan.epochs - plan.physics_epochs, "physics": plan.physics_epochs}
    print(
        f"\n== 0. the demo's training step: {len(train)} designs {plan.size}x{plan.size}, "
        f"batch {tcfg.batch_size}, {args.demo_epochs} epochs a figure, {cores} cores =="
    )
    trainers = {}
    solve = batched.compliance
    multigrid = functools.partial(solve, solver="multigrid")
    tmp = Path(tempfile.mkdtemp())
    try:
        for name, (cls, cfg) in variants.items():
            for phase, m in phases.items():
                t = Trainer(m, cfg, train, val, tmp / f"{name}-{phase}", model_class=cls)
                t.tuner = ThreadTuner(cores) if cfg.threads == 0 else None
                trainers[(name, phase)] = t
        rates: dict[tuple[str, str, str], list[float]] = {}

        def timed(key: tuple[str, str], load: str) -> None:
            t = trainers[key]
            if t.tuner is None:
                torch.set_num_threads(t.tcfg.threads)
            batched.compliance = multigrid if key[0] == "before" else solve
            try:
                start = time.perf_counter()
                for _ in range(args.demo_epochs):
                    t._train_epoch(None)
                rate = args.demo_epochs * len(train) / (time.perf_counter() - start)
            finally:
                batched.compliance = solve
            rates.setdefault((*key, load), []).append(rate)
            threads = "" if t.tuner is None else f", tuner at {t.tuner.current} thread(s)"
            print(f"  {load:<10} {key[1]:<8} {key[0]:<7} {rate:7.1f} samples/s{threads}",
                  flush=True)  # fmt: skip

        for key in trainers:  # warm-up: oneDNN primitives, the first data pass
            timed(key, "warm-up")
        for _ in range(args.demo_rounds):
            for key in trainers:
                timed(key, "alone")
        with Competitor():
            for _ in range(args.demo_rounds):
                for key in trainers:
                    timed(key, "contended")
        torch.set_num_threads(cores)
        med = {k: float(np.median(v)) for k, v in rates.items()}
        for name in variants:  # the demo's training: its epochs of each phase at their rates
            for load in ("alone", "contended"):
                seconds = sum(w / med[(name, ph, load)] for ph, w in weights.items())
                med[(name, "demo", load)] = sum(weights.values()) / seconds
        print(f"\n{'variant':<8} {'epochs':<8} {'alone':>12} {'contended':>12} {'slowdown':>9}")
        for phase in (*phases, "demo"):
            for name in variants:
                a, c = med[(name, phase, "alone")], med[(name, phase, "contended")]
                print(f"{name:<8} {phase:<8} {a:>10.1f}/s {c:>10.1f}/s {a / c:>8.2f}x")
        for phase in (*phases, "demo"):
            a = med[("after", phase, "alone")] / med[("before", phase, "alone")]
            c = med[("after", phase, "contended")] / med[("before", phase, "contended")]
            print(f"after / before, {phase} epochs: {a:.2f}x alone, {c:.2f}x contended")
        print("(target: >= 2x alone; contended no more than 3x slower than alone; 'demo' is "
              f"{weights['plain']} plain and {weights['physics']} physics epochs)")  # fmt: skip

        for phase, m in phases.items():
            print(f"\nvalidation loss over the first {args.curve_epochs} epochs, {phase} "
                  "(fresh runs):")  # fmt: skip
            curves = {}
            for label, name, seed in (("before", "before", 0), ("after", "after", 0),
                                      ("after, seed 1", "after", 1)):  # fmt: skip
                cls, cfg = variants[name]
                cfg = dataclasses.replace(cfg, epochs=args.curve_epochs, seed=seed)
                torch.set_num_threads(cores)
                t = Trainer(m, cfg, train, val, tmp / f"curve-{phase}-{label}", model_class=cls)
                batched.compliance = multigrid if name == "before" else solve
                try:
                    curves[label] = [r["val_total"] for r in t.fit(progress=False)]
                finally:
                    batched.compliance = solve
            for label, v in curves.items():
                print(f"  {label:<14} " + " ".join(f"{x:8.2f}" for x in v))
            pairs = zip(curves["before"], curves["after"], strict=True)
            layout = max(abs(a - b) for a, b in pairs)
            pairs = zip(curves["after"], curves["after, seed 1"], strict=True)
            seeds = max(abs(a - b) for a, b in pairs)
            print(f"largest |before - after| {layout:.2f}; largest |seed 0 - seed 1| {seeds:.2f}")

        # the floor beside the after step, interleaved (the machine's speed drifts over the
        # minutes the rounds above take): the fastest of three of each
        torch.set_num_threads(cores)
        t = trainers[("after", "plain")]
        batches = math.ceil(len(train) / tcfg.batch_size)
        steps, floors = [], []
        for _ in range(3):
            start = time.perf_counter()
            t._train_epoch(None)
            steps.append((time.perf_counter() - start) / batches)
            flops, share, conv = convolution_floor(t)
            floors.append(conv)
        step, conv = min(steps), min(floors)
        speedup = med[("after", "plain", "alone")] / med[("before", "plain", "alone")]
        print(
            f"\nthe plain step: {flops / 1e9:.1f} GFLOP per batch of {tcfg.batch_size}, "
            f"{100 * share:.0f} % of them in convolutions; the convolutions alone, each timed "
            f"by itself (channels-last, {cores} threads), take {1e3 * conv:.0f} ms per batch "
            f"({flops * share / conv / 1e9:.0f} GFLOP/s) beside {1e3 * step:.0f} ms for the "
            f"whole after step: with every other op free the step could be at most "
            f"{step / conv:.2f}x faster than after, {speedup * step / conv:.2f}x than before"
        )
    finally:
        batched.compliance = solve
        torch.set_num_threads(cores)
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--latent", type=int, default=32, help="latent dimensions (default 32)")
    ap.add_argument("--skip-throughput", action="store_true")
    ap.add_argument("--skip-quality", action="store_true")
    g = ap.add_argument_group("the demo's training step (only this part runs with --demo-step)")
    g.add_argument("--demo-step", action="store_true")
    g.add_argument("--demo-epochs", type=int, default=3, help="epochs per timed figure")
    g.add_argument("--demo-rounds", type=int, default=2, help="timed figures per variant")
    g.add_argument("--curve-epochs", type=int, default=5)
    g = ap.add_argument_group("throughput")
    g.add_argument("--cpu-batches", default="64,256")
    g.add_argument("--threads", default="1,2", help="torch threads of the CPU rows")
    g.add_argument("--cpu-samples", type=int, default=256, help="samples timed per CPU row")
    g.add_argument("--warmup", type=int, default=1, help="CPU warm-up steps")
    g.add_argument("--gpu-batch", type=int, default=512)
    g.add_argument("--gpu-warmup", type=int, default=5)
    g.add_argument("--gpu-steps", type=int, default=30)
    g.add_argument("--trainer-steps", type=int, default=16, help="steps per Trainer.fit epoch")
    g = ap.add_argument_group("quality")
    g.add_argument("--data", help="an existing dataset file (default: generate into --cache)")
    g.add_argument("--cache", default=str(REPO / "benchmarks" / ".cache"))
    g.add_argument("--distribution", default="mixed")
    g.add_argument("--size", default="64x64", help="WIDTHxHEIGHT (32x32: faster, see above)")
    g.add_argument("-n", type=int, default=300, help="designs to generate")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--workers", type=int, default=2, help="generation worker processes")
    g.add_argument("--models", default="cvae,vae")
    g.add_argument("--epochs", type=int, default=40, help="epochs (at most)")
    g.add_argument("--budget", type=float, default=90.0,
                   help="seconds of training per model, 0 = no limit (default 90)")  # fmt: skip
    g.add_argument("--train-batch", type=int, default=32)
    g.add_argument("--lr", type=float, default=1e-3)
    g.add_argument("--train-limit", type=int, default=0, help="use the first N training designs")
    g.add_argument("--train-threads", type=int, default=os.cpu_count() or 1)
    g.add_argument("--device", default="auto", help="quality training on auto | cpu | cuda")
    args = ap.parse_args()
    args.cpu_batches = [int(v) for v in args.cpu_batches.split(",")]
    args.threads = [int(v) for v in args.threads.split(",")]
    args.models = [v.strip() for v in args.models.split(",")]
    print(
        f"bench_train: torch {torch.__version__}, {os.cpu_count()} CPUs, CUDA "
        + (torch.cuda.get_device_name() if torch.cuda.is_available() else "not available")
    )
    if args.demo_step:
        demo_step(args)
        return
    if not args.skip_throughput:
        throughput(args)
    if not args.skip_quality:
        quality(args)


if __name__ == "__main__":
    main()
