"""Bad arguments to the public Python API get the project's own errors (`ProblemError`,
`DatasetError`, `ConfigError`, `WorkflowError`, `JudgeError`: all ValueErrors) or a TypeError
naming the argument, never an AttributeError, KeyError or numpy's message from deep inside.

One table of bad calls, each with its error type and a fragment of the message; then
property-based tests (hypothesis) feeding arbitrary arrays (any shape, bool / int / float /
complex / object, NaN, inf, huge values) to `Problem`, `score` and `TopologyDataset`.
"""

import dataclasses
import math
import shutil

import h5py
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from topovae.datasets import (
    DatasetError,
    DatasetWriter,
    TopologyDataset,
    augment_batch,
    clean_dataset,
    distribution,
    generate,
    has_problems,
    import_arrays,
    import_images,
    random_codes,
    read_header,
    sample_problem,
    transform_design,
    transform_problem,
    transforms,
)
from topovae.models import (
    ConfigError,
    DesignVAE,
    TrainConfig,
    Trainer,
    VAEConfig,
    gaussian_kl,
    kl_weight,
    load,
    normalise_condition,
    physics_terms,
    project_volume,
    read_checkpoint,
)
from topovae.solvers import (
    MMA,
    DesignMap,
    FEModel,
    Problem,
    ProblemError,
    SIMPSettings,
    choose_backend,
    compliance,
    edof_matrix,
    element_stiffness,
    filter_matrix,
    full_material_fields,
    heaviside,
    oc_update,
    preset,
    solve,
)
from topovae.workflows import (
    SCORE_KEYS,
    ComplianceOracle,
    JudgeError,
    LatentDecoder,
    WorkflowError,
    binarize,
    condition_sweep,
    evaluate,
    greyness,
    interpolate,
    latent_map,
    prior_samples,
    save_scored_grid,
    score,
    search,
    slerp,
    traverse,
    with_load_angle,
    write_report,
)

NX, NY = 8, 4  # the grid of the table's problem and model


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    """What the bad calls need: a problem, a design, a tiny dataset file and an untrained model."""
    tmp = tmp_path_factory.mktemp("api-input")
    data = tmp / "tiny.h5"
    generate(data, distribution("mixed", 8, 8), n=3, seed=0, workers=1, progress=False)
    p = preset("mbb", NX, NY, 0.5)
    cfg = VAEConfig(kind="vae", height=NY, width=NX, latent_dim=2, base_width=4, depth=1)
    return {
        "p": p,
        "d": np.full(p.shape, 0.5),
        "arrays": p.to_arrays(),
        "data": data,
        "ds": TopologyDataset(data, "all"),
        "model": DesignVAE(cfg),
        "cvae": DesignVAE(dataclasses.replace(cfg, kind="cvae", cond_channels=7)),
        "dist": distribution("mixed", 8, 8),
        "tmp": tmp,
        "ckpt": _checkpoint(tmp / "m.pt", DesignVAE(cfg)),
    }


def _checkpoint(path, model):
    """A loadable checkpoint of ``model`` (what `load` reads)."""
    from topovae.models._train import CHECKPOINT_FORMAT, CHECKPOINT_VERSION, weights_digest

    weights = model.state_dict()
    torch.save({"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION,
                "model_config": model.config.to_dict(), "model": weights,
                "digest": weights_digest(weights)}, path)  # fmt: skip
    return path


def problem_with(c, **changes):
    a = c["arrays"]
    args = dict(
        nelx=NX, nely=NY, volfrac=0.5, fixed_x=a["fixed_x"], fixed_y=a["fixed_y"], loads=a["loads"]
    )
    return Problem(**{**args, **changes})


# (id, call(ctx), error type, fragment of the message)
CASES = [
    # -- solvers ---------------------------------------------------------------------------
    ("from_arrays-not-json", lambda c: Problem.from_arrays(c["arrays"], "not json"),
     ProblemError, "problem metadata is not valid JSON"),
    ("from_arrays-meta-list", lambda c: Problem.from_arrays(c["arrays"], [1]),
     ProblemError, "metadata must be a dict, got list"),
    ("from_arrays-meta-empty", lambda c: Problem.from_arrays(c["arrays"], {}),
     ProblemError, "metadata lacks nelx, nely, volfrac"),
    ("from_arrays-arrays-None", lambda c: Problem.from_arrays(None, c["p"].metadata()),
     TypeError, "arrays must be a dict of arrays, got NoneType"),
    ("from_arrays-settings-str",
     lambda c: Problem.from_arrays(c["arrays"], {**c["p"].metadata(), "settings": "fast"}),
     ProblemError, "SIMP settings must be a dict, got str"),
    ("Problem.load-None", lambda c: Problem.load(None), TypeError, "path must be a file path"),
    ("Problem-loads-complex", lambda c: problem_with(c, loads=c["arrays"]["loads"] + 1j),
     ProblemError, "loads must be an array of real numbers, got dtype complex128"),
    ("Problem-loads-ragged", lambda c: problem_with(c, loads=[[1.0], [1.0, 2.0]]),
     ProblemError, "loads must be a numeric array of shape (ncases, 2, 5, 9)"),
    ("Problem-volfrac-array", lambda c: problem_with(c, volfrac=np.array([0.5])),
     ProblemError, "volfrac must be a number, got an array of shape (1,)"),
    ("Problem-volfrac-complex", lambda c: problem_with(c, volfrac=np.complex128(0.5)),
     ProblemError, "volfrac must be a real number"),
    ("Problem-volfrac-huge-int", lambda c: problem_with(c, volfrac=10**400),
     ProblemError, "volfrac must be a number"),
    ("Problem-name-int", lambda c: problem_with(c, name=3),
     ProblemError, "name must be a string, got int"),
    ("SIMPSettings.from_dict-None", lambda c: SIMPSettings.from_dict(None),
     ProblemError, "SIMP settings must be a dict, got NoneType"),
    ("solve-None", lambda c: solve(None),
     TypeError, "problem must be a topovae Problem, got NoneType"),
    ("solve-str", lambda c: solve("mbb"), TypeError, "problem must be a topovae Problem, got str"),
    ("solve-threads-str", lambda c: solve(c["p"], threads="x"),
     ProblemError, "threads must be None (leave BLAS alone) or an integer in 1..1024, got 'x'"),
    ("solve-threads-negative", lambda c: solve(c["p"], threads=-1), ProblemError, "got -1"),
    ("solve-threads-0", lambda c: solve(c["p"], threads=0), ProblemError, "got 0"),
    ("solve-threads-float", lambda c: solve(c["p"], threads=1.5), ProblemError, "got 1.5"),
    ("solve-threads-bool", lambda c: solve(c["p"], threads=True), ProblemError, "got True"),
    ("solve-callback-int", lambda c: solve(c["p"], callback=3),
     TypeError, "callback must be callable, got int"),
    ("solve-x0-str", lambda c: solve(c["p"], x0="a"),
     ProblemError, "x0 must be an array of real numbers, got dtype <U1"),
    ("compliance-str-problem", lambda c: compliance(c["d"], "mbb"),
     TypeError, "problem must be a topovae Problem, got str"),
    ("compliance-penal-nan", lambda c: compliance(c["d"], c["p"], penal=math.nan),
     ProblemError, "penal must be finite, got nan"),
    ("compliance-penal-inf", lambda c: compliance(c["d"], c["p"], penal=math.inf),
     ProblemError, "penal must be finite, got inf"),
    ("compliance-penal-0.5", lambda c: compliance(c["d"], c["p"], penal=0.5),
     ProblemError, "penal must be in [1, 20] (None: the problem's), got 0.5"),
    ("compliance-penal-str", lambda c: compliance(c["d"], c["p"], penal="x"),
     ProblemError, "penal must be a number, got 'x'"),
    ("compliance-complex", lambda c: compliance(c["d"] + 1j, c["p"]),
     ProblemError, "density must be an array of real numbers, got dtype complex128"),
    ("compliance-5.0", lambda c: compliance(np.full(c["p"].shape, 5.0), c["p"]),
     ProblemError, "density must be in [0, 1], got 5.0"),
    ("preset-list", lambda c: preset([]), ProblemError, "unknown preset []"),
    ("preset-int", lambda c: preset(3), ProblemError, "unknown preset 3"),
    ("full_material_fields-str", lambda c: full_material_fields("mbb"),
     TypeError, "problem must be a topovae Problem, got str"),
    # -- datasets --------------------------------------------------------------------------
    ("TopologyDataset-None", lambda c: TopologyDataset(None),
     TypeError, "the dataset path must be a file path (str or os.PathLike), got NoneType"),
    ("TopologyDataset-array", lambda c: TopologyDataset(np.zeros(3)),
     TypeError, "the dataset path must be a file path (str or os.PathLike), got ndarray"),
    ("TopologyDataset-missing", lambda c: TopologyDataset(c["tmp"] / "nope.h5"),
     DatasetError, "nope.h5' does not exist"),
    ("TopologyDataset-long-name", lambda c: TopologyDataset("x" * 5000),
     DatasetError, "does not exist"),
    ("TopologyDataset-split-int", lambda c: TopologyDataset(c["data"], split=3),
     DatasetError, "unknown split 3"),
    ("TopologyDataset-fractions-str", lambda c: TopologyDataset(c["data"], fractions="abc"),
     DatasetError, "fractions must be 3 shares >= 0 summing to 1, got 'abc'"),
    ("TopologyDataset-split_seed-negative", lambda c: TopologyDataset(c["data"], split_seed=-1),
     DatasetError, "split_seed must be >= 0, got -1"),
    ("TopologyDataset-split_seed-str", lambda c: TopologyDataset(c["data"], split_seed="a"),
     TypeError, "split_seed must be an integer, got str"),
    ("TopologyDataset-getitem-str", lambda c: c["ds"]["a"],
     TypeError, "index must be an integer, got str"),
    ("TopologyDataset-getitem-float", lambda c: c["ds"][1.0],
     TypeError, "index must be an integer, got float"),
    ("TopologyDataset-getitem-array", lambda c: c["ds"][np.array([0, 1])],
     TypeError, "index must be an integer, got ndarray"),
    ("TopologyDataset-problem-str", lambda c: c["ds"].problem("a"),
     TypeError, "index must be an integer, got str"),
    ("TopologyDataset-problem-out-of-range", lambda c: c["ds"].problem(99),
     IndexError, "index 99 out of range for a split of 3 samples"),
    ("read_header-int", lambda c: read_header(3),
     TypeError, "the dataset path must be a file path"),
    ("has_problems-None", lambda c: has_problems(None), TypeError, "the dataset path must be"),
    ("clean_dataset-None", lambda c: clean_dataset(None, c["tmp"] / "c.h5"),
     TypeError, "path must be a file path"),
    ("import_arrays-None", lambda c: import_arrays(None, c["tmp"] / "i.h5"),
     TypeError, "source must be a .npz / .npy path or an array, got NoneType"),
    ("import_arrays-out-None", lambda c: import_arrays(np.zeros((1, 4, 4)), None),
     TypeError, "out must be a file path"),
    ("import_images-None", lambda c: import_images(None, c["tmp"] / "i.h5"),
     (TypeError, DatasetError), "folder must be a file path"),  # DatasetError: no Pillow
    ("distribution-list", lambda c: distribution([]), ProblemError, "unknown distribution []"),
    ("sample_problem-None", lambda c: sample_problem(None, 0, 0),
     TypeError, "dist must be a ProblemDistribution, got NoneType"),
    ("sample_problem-seed-str", lambda c: sample_problem(c["dist"], "a", 0),
     TypeError, "seed and index must be integers, got seed='a'"),
    ("generate-str-distribution", lambda c: generate(c["tmp"] / "g.h5", "mixed", 2),
     TypeError, "dist must be a ProblemDistribution, got str"),
    ("generate-path-None", lambda c: generate(None, c["dist"], 2),
     TypeError, "path must be a file path"),
    ("generate-workers-str", lambda c: generate(c["tmp"] / "g.h5", c["dist"], 2, workers="a"),
     DatasetError, "--workers must be an integer in 1..1024, got 'a'"),
    ("generate-batch-0", lambda c: generate(c["tmp"] / "g.h5", c["dist"], 2, batch=0),
     DatasetError, "--batch must be an integer in 1..65536, got 0"),
    ("transform_problem-str", lambda c: transform_problem("mbb", 0),
     TypeError, "problem must be a topovae Problem, got str"),
    ("transform_design-code-9", lambda c: transform_design(c["d"], 9),
     DatasetError, "transform code must be an integer in 0..7, got 9"),
    # -- workflows -------------------------------------------------------------------------
    ("score-5.0", lambda c: score(np.full(c["p"].shape, 5.0), c["p"]),
     JudgeError, "designs must be in [0, 1], got 5.0"),
    ("score-negative", lambda c: score(np.full(c["p"].shape, -0.5), c["p"]),
     JudgeError, "designs must be in [0, 1], got -0.5"),
    ("score-past-tolerance", lambda c: score(np.full(c["p"].shape, 1 + 1e-6), c["p"]),
     JudgeError, "designs must be in [0, 1], got 1.000001"),
    ("score-nan", lambda c: score(np.full(c["p"].shape, np.nan), c["p"]),
     JudgeError, "designs must be finite, got nan"),
    ("score-inf", lambda c: score(np.full(c["p"].shape, -np.inf), c["p"]),
     JudgeError, "designs must be finite, got -inf"),
    ("score-empty-batch", lambda c: score(np.empty((0, *c["p"].shape)), c["p"]),
     JudgeError, "no designs to score"),
    ("score-empty-list", lambda c: score([], c["p"]), JudgeError, "no designs to score"),
    ("score-str", lambda c: score("abc", c["p"]),
     JudgeError, "designs must be an array of real numbers, got dtype <U3"),
    ("score-complex", lambda c: score(c["d"] + 0j, c["p"]),
     JudgeError, "designs must be an array of real numbers, got dtype complex128"),
    ("score-1d", lambda c: score(np.zeros(3), c["p"]),
     JudgeError, "designs must be (B, H, W) or one (H, W) design; got shape (3,)"),
    ("score-problems-str", lambda c: score(c["d"], "mbb"),
     TypeError, "problems must be a Problem or a list of them, got str"),
    ("score-problems-None", lambda c: score(c["d"], None),
     TypeError, "problems must be a Problem or a list of them, got NoneType"),
    ("score-problems-entry", lambda c: score(c["d"], [c["p"], "mbb"]),
     TypeError, "every entry of problems must be a topovae Problem, got str"),
    ("score-reference-2.0", lambda c: score(c["d"], c["p"], np.full(c["p"].shape, 2.0)),
     JudgeError, "reference must be in [0, 1], got 2.0"),
    ("binarize-str", lambda c: binarize(c["d"], "mbb"),
     TypeError, "problem must be a topovae Problem"),
    ("greyness-str", lambda c: greyness(c["d"], "mbb"),
     TypeError, "problem must be a topovae Problem"),
    ("search-None-model", lambda c: search(None, c["p"]),
     TypeError, "model must be a DesignVAE (e.g. topovae.models.load(path)), got NoneType"),
    ("search-str-problem", lambda c: search(c["model"], "mbb"),
     TypeError, "problem must be a topovae Problem, got str"),
    ("search-starts-str", lambda c: search(c["model"], c["p"], starts="a"),
     WorkflowError, "--starts must be an integer in 1..4096, got 'a'"),
    ("evaluate-None-model", lambda c: evaluate(None, c["data"]),
     TypeError, "model must be a DesignVAE"),
    ("evaluate-data-None", lambda c: evaluate(c["model"], None),
     TypeError, "data must be a file path (str or os.PathLike), got NoneType"),
    ("evaluate-missing-file", lambda c: evaluate(c["model"], c["tmp"] / "nope.h5"),
     WorkflowError, "nope.h5' does not exist"),
    ("evaluate-limit-str", lambda c: evaluate(c["model"], c["data"], limit="a"),
     WorkflowError, "--limit must be an integer >= 1, got 'a'"),
    ("latent_map-None-model", lambda c: latent_map(None, c["data"]),
     TypeError, "model must be a DesignVAE"),
    ("latent_map-data-int", lambda c: latent_map(c["model"], 3),
     TypeError, "data must be a file path"),
    ("latent_map-span-str", lambda c: latent_map(c["model"], c["data"], span="a"),
     WorkflowError, "--span must be a number in (0, 1000), got a"),
    ("condition_sweep-None-model", lambda c: condition_sweep(None, c["p"]),
     TypeError, "model must be a DesignVAE"),
    ("condition_sweep-str-problem", lambda c: condition_sweep(c["cvae"], "mbb"),
     TypeError, "problem must be a topovae Problem, got str"),
    ("prior_samples-None-model", lambda c: prior_samples(None, 2),
     TypeError, "model must be a DesignVAE"),
    ("prior_samples-n-str", lambda c: prior_samples(c["model"], "a"),
     WorkflowError, "-n must be an integer in 1..4096, got 'a'"),
    ("traverse-dim-str", lambda c: traverse(c["model"], "a", [0.0]),
     WorkflowError, "--dim must be in [0, 1] for this 2-dimensional model, got a"),
    ("interpolate-steps-str", lambda c: interpolate(c["model"], c["d"], c["d"], steps="a"),
     WorkflowError, "--steps must be an integer in 2..4096, got 'a'"),
    ("with_load_angle-str", lambda c: with_load_angle("mbb", 0),
     TypeError, "problem must be a topovae Problem"),
    ("LatentDecoder-str-problem", lambda c: LatentDecoder(c["model"], "mbb"),
     TypeError, "problem must be a topovae Problem, got str"),
    # -- models ----------------------------------------------------------------------------
    ("load-None", lambda c: load(None), TypeError, "the checkpoint path must be a file path"),
    ("load-missing", lambda c: load(c["tmp"] / "nope.pt"), ConfigError, "nope.pt' does not exist"),
    ("read_checkpoint-int", lambda c: read_checkpoint(3), TypeError, "got int"),
    ("DesignVAE-None", lambda c: DesignVAE(None),
     TypeError, "config must be a VAEConfig, got NoneType"),
    ("DesignVAE-dict", lambda c: DesignVAE({}), TypeError, "config must be a VAEConfig, got dict"),
    ("TrainConfig-lr-str", lambda c: TrainConfig(lr="a"),
     ConfigError, "lr must be a number in (0, 10], got 'a'"),
    ("TrainConfig-lr-nan", lambda c: TrainConfig(lr=math.nan),
     ConfigError, "lr must be a number in (0, 10], got nan"),
    ("TrainConfig-lr-huge", lambda c: TrainConfig(lr=1e12),
     ConfigError, "lr must be a number in (0, 10], got 1000000000000.0"),
    # sizes past any sane run, refused before they hang or exhaust memory (the sweep of bad
    # inputs found each of these as a traceback, a hang or an allocation failure)
    ("solve-threads-huge", lambda c: solve(c["p"], threads=10**30),
     ProblemError, "an integer in 1..1024, got 1000000000000000000000000000000"),
    ("Problem-rmin-wider-than-grid", lambda c: problem_with(c, settings=SIMPSettings(rmin=1e6)),
     ProblemError, f"rmin 1000000.0 is wider than the {NX}x{NY} grid; use rmin <= {2 * NX}"),
    ("SIMPSettings-max_iter-huge", lambda c: SIMPSettings(max_iter=10**30),
     ProblemError, "max_iter must be at most 1,000,000, got 1000000000000000000000000000000"),
    ("generate-workers-huge", lambda c: generate(c["tmp"] / "g.h5", c["dist"], 2, workers=10**30),
     DatasetError, "--workers must be an integer in 1..1024, got 10000000000"),
    ("generate-batch-huge", lambda c: generate(c["tmp"] / "g.h5", c["dist"], 2, batch=10**30),
     DatasetError, "--batch must be an integer in 1..65536, got 10000000000"),
    ("TrainConfig-epochs-huge", lambda c: TrainConfig(epochs=10**30),
     ConfigError, "epochs must be an integer in 1..1,000,000, got 1000000000000000000000000000000"),
    ("VAEConfig-depth-huge", lambda c: VAEConfig(depth=10**30),
     ConfigError, "depth 1000000000000000000000000000000 halves the grid"),
    ("FEModel-str", lambda c: FEModel("mbb"),
     TypeError, "problem must be a topovae Problem, got str"),
    ("filter_matrix-str", lambda c: filter_matrix("a", 3, 1.5),
     ProblemError, "nelx must be a positive integer, got 'a'"),
    ("filter_matrix-rmin-huge", lambda c: filter_matrix(8, 8, 1e12),
     ProblemError, "rmin must be in [1, 16] for this grid, got 1000000000000.0"),
    ("edof_matrix-huge", lambda c: edof_matrix(10**5, 10**5), ProblemError, "needs about"),
    ("prior_samples-n-huge", lambda c: prior_samples(c["model"], 10**8),
     WorkflowError, "-n must be an integer in 1..4096, got 100000000"),
    ("evaluate-k-huge", lambda c: evaluate(c["model"], c["data"], k=10**8),
     WorkflowError, "-k must be an integer in 1..4096, got 100000000"),
    ("traverse-values-huge", lambda c: traverse(c["model"], 0, np.zeros(10**5)),
     WorkflowError, "the number of values must be an integer in 1..4096, got 100000"),
    ("search-budget-huge", lambda c: search(c["cvae"], c["p"], budget=10**12),
     WorkflowError, "--budget (FE evaluations) must be an integer in 1..1000000"),
    ("sample_problem-loads-1e9",
     lambda c: sample_problem(dataclasses.replace(c["dist"], loads=(1, 10**9)), 0, 0),
     ProblemError, "asks for more loads than the grid's 81 nodes"),
    ("evaluate-polish-huge", lambda c: evaluate(c["model"], c["data"], polish=10**12),
     WorkflowError, "--polish (SIMP iterations) must be an integer in 0..1000000, got 10"),
    ("search-polish-huge", lambda c: search(c["cvae"], c["p"], budget=2, polish=10**12),
     WorkflowError, "--polish (SIMP iterations) must be an integer in 0..1000000, got 10"),
    ("DesignMap-None", lambda c: DesignMap(None),
     TypeError, "problem must be a topovae Problem, got NoneType"),
    ("choose_backend-None", lambda c: choose_backend(None),
     TypeError, "problem must be a topovae Problem, got NoneType"),
    ("binarize-1d", lambda c: binarize(np.ones(5), c["p"]),
     JudgeError, f"binarize takes one {NX}x{NY} design for problem 'mbb'; got shape (5,)"),
    ("binarize-nan", lambda c: binarize(np.full((NY, NX), np.nan), c["p"]),
     JudgeError, "density must be finite"),
    ("ComplianceOracle-wrong-grid", lambda c: ComplianceOracle()(np.ones((1, 3, 3)), [c["p"]]),
     JudgeError, f"a 3x3 design cannot be judged on the {NX}x{NY} problem 'mbb'"),
    ("ComplianceOracle-problems-None", lambda c: ComplianceOracle()(c["d"][None], None),
     TypeError, "problems must be a Problem or a list of them, got NoneType"),
    ("TrainConfig-seed-2^70", lambda c: TrainConfig(seed=2**70),
     ConfigError, "seed must be an integer in [0, 2^32), got 1180591620717411303424"),
    ("prior_samples-seed-2^70", lambda c: prior_samples(c["model"], 2, seed=2**70),
     WorkflowError, "--seed must be an integer in [0, 2^63), got 1180591620717411303424"),
    ("evaluate-seed-2^63", lambda c: evaluate(c["model"], c["data"], seed=2**63),
     WorkflowError, "--seed must be an integer in [0, 2^63), got 9223372036854775808"),
    # the second sweep (each was an error from inside, an allocation failure or accepted)
    ("SIMPSettings-penal-str", lambda c: SIMPSettings(penal="3"),
     ProblemError, "penal must be a number, got '3'"),
    ("ProblemDistribution-loads-float", lambda c: dataclasses.replace(c["dist"], loads=(1.5, 2)),
     ProblemError, "loads must be a (low, high) pair of integers"),
    ("ProblemDistribution-magnitude-inf",
     lambda c: dataclasses.replace(c["dist"], magnitude=(1.0, math.inf)),
     ProblemError, "magnitude must be a (low, high) pair of finite numbers"),
    ("ProblemDistribution-settings-str", lambda c: dataclasses.replace(c["dist"], settings="x"),
     ProblemError, "settings must be a SIMPSettings, got str"),
    ("DatasetWriter-seed-negative",
     lambda c: DatasetWriter(c["tmp"] / "w.h5", c["dist"], -1, 10),
     DatasetError, "seed must be an integer in 0..9223372036854775807, got -1"),
    ("DatasetWriter-interval-nan",
     lambda c: DatasetWriter(c["tmp"] / "w.h5", c["dist"], 0, 10, shard_seconds=math.nan),
     DatasetError, "shard_seconds must be a finite number > 0, got nan"),
    ("generate-device-foo",
     lambda c: generate(c["tmp"] / "g.h5", c["dist"], 2, device="foo"),
     DatasetError, "unknown device 'foo'"),
    ("random_codes-huge", lambda c: random_codes(10**12, 8, 8),
     DatasetError, "batch must be an integer in 0..16777216, got 1000000000000"),
    ("transforms-str", lambda c: transforms("a", 8),
     DatasetError, "height must be a positive integer, got 'a'"),
    ("augment_batch-float-codes",
     lambda c: augment_batch(torch.rand(2, 1, 8, 8), None, torch.zeros(2), ()),
     DatasetError, "codes must be integers"),
    ("TopologyDataset-position-str", lambda c: c["ds"].position("a"),
     TypeError, "index must be an integer, got str"),
    ("MMA-huge", lambda c: MMA(10**12, 1, 0.0, 1.0), ProblemError, "needs about"),
    ("MMA-move-nan", lambda c: MMA(3, 1, 0.0, 1.0, move=math.nan),
     ProblemError, "move must be finite, got nan"),
    ("heaviside-beta-nan", lambda c: heaviside(np.full(4, 0.5), math.nan, 0.5),
     ProblemError, "beta must be finite, got nan"),
    ("heaviside-eta-2", lambda c: heaviside(np.full(4, 0.5), 1.0, 2.0),
     ProblemError, "eta must be in (0, 1), got 2.0"),
    ("element_stiffness-nu", lambda c: element_stiffness(0.7),
     ProblemError, "nu must be in (-1, 0.5) (Poisson's ratio), got 0.7"),
    ("oc_update-shapes",
     lambda c: oc_update(np.full(4, 0.5), np.ones(5), np.ones(4), 0.2, sum, 2.0, lambda v: v),
     ProblemError, "x, dc and dv must be 1D arrays of one length"),
    ("FEModel-solve-negative", lambda c: FEModel(c["p"]).solve(np.full(NX * NY, -1.0)),
     ProblemError, "young must be > 0"),
    ("Problem-save-folder", lambda c: c["p"].save(c["tmp"]),
     ProblemError, "is a folder; give a file name"),
    ("slerp-None", lambda c: slerp(None, None, None),
     WorkflowError, "z0 must be a 1D float tensor, got NoneType"),
    ("with_load_angle-degrees-str", lambda c: with_load_angle(c["p"], "a"),
     WorkflowError, "degrees must be a finite number, got 'a'"),
    ("greyness-1d", lambda c: greyness(np.ones(5), c["p"]),
     JudgeError, f"density must have shape ({NY}, {NX}) (nely, nelx), got (5,)"),
    ("LatentDecoder-nan", lambda c: LatentDecoder(c["model"]).numpy(np.full((2, 2), np.nan)),
     WorkflowError, "latent vectors must be finite"),
    ("LatentDecoder-width", lambda c: LatentDecoder(c["model"]).numpy(np.zeros((2, 99))),
     WorkflowError, "latent vectors must have shape (B, 2), got (2, 99)"),
    ("write_report-empty", lambda c: write_report({}, c["tmp"] / "rep"),
     WorkflowError, "report must be the dict evaluate returns; it lacks metrics"),
    ("save_scored_grid-proc",
     lambda c: save_scored_grid(np.zeros((1, NY, NX)), None, "/proc/x.png"),
     WorkflowError, "cannot write in folder '/proc'"),
    ("ComplianceOracle-device", lambda c: ComplianceOracle(device="foo"),
     JudgeError, "unknown device 'foo'"),
    ("score-oracle-str", lambda c: score(c["d"], c["p"], oracle="x"),
     TypeError, "oracle must be a ComplianceOracle or None, got str"),
    ("load-device-int", lambda c: load(c["ckpt"], device=3),
     ConfigError, "device must be 'auto', 'cpu', 'cuda', 'cuda:N' or a torch.device, got 3"),
    ("Trainer-datasets-None",
     lambda c: Trainer(c["model"].config, TrainConfig(), None, None, c["tmp"] / "t"),
     TypeError, "train_set must be a Dataset"),
    ("gaussian_kl-numpy", lambda c: gaussian_kl(np.zeros((2, 4)), np.zeros((2, 4))),
     TypeError, "mu must be a torch.Tensor, got ndarray"),
    ("kl_weight-step", lambda c: kl_weight(c["model"].config, -1),
     ConfigError, "step must be an integer >= 0, got -1"),
    ("project_volume-target", lambda c: project_volume(torch.zeros(2, 4, 4),
                                                      torch.ones(4, 4, dtype=torch.bool), 1.5),
     ConfigError, "target volume fractions must lie in (0, 1)"),
    ("physics_terms-count", lambda c: physics_terms(torch.zeros(2, 1, NY, NX),
                                                   torch.zeros(2, 1, NY, NX), [c["p"]] * 5),
     ConfigError, "physics_terms needs one Problem per design"),
    ("normalise_condition-2d", lambda c: normalise_condition(torch.zeros(2, 3)),
     ConfigError, "conditions must be a (B, Cc, H, W) tensor, got shape (2, 3)"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("call", "error", "fragment"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_a_bad_call_gets_the_projects_error_naming_the_value(ctx, call, error, fragment):
    with pytest.raises(error) as info:
        call(ctx)
    assert fragment in str(info.value), str(info.value)
    assert "\n" not in str(info.value)


def test_a_bad_device_is_refused_before_any_file_is_made(ctx, tmp_path):
    from topovae.workflows import run_demo

    with pytest.raises(DatasetError, match="unknown device 'foo'"):
        generate(tmp_path / "g.h5", ctx["dist"], 2, device="foo")
    with pytest.raises(WorkflowError, match="unknown device 'foo'"):
        run_demo(tmp_path / "demo", quick=True, device="foo", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_the_case_ids_are_unique():
    ids = [c[0] for c in CASES]
    assert len(ids) == len(set(ids))


def test_good_calls_next_to_the_refused_ones_still_work(ctx):
    p, d = ctx["p"], ctx["d"]
    one = p.with_settings(max_iter=1)
    for threads in (None, 1, np.int64(2)):
        assert solve(one, threads=threads).iterations == 1
    assert Problem.from_arrays(ctx["arrays"], p.metadata()).shape == p.shape
    assert compliance(d, p, penal=1) > 0
    # filters round to 1 + 2e-16; anything within 1e-9 of [0, 1] is judged, clipped
    s = score(np.full(p.shape, 1 + 2e-16), p)
    assert s["volume"][0] == 1.0
    assert score(np.full(p.shape, -1e-10), p)["volume"][0] == 0.0
    assert set(score([d, d], [p, p])) == set(SCORE_KEYS)
    assert set(score(d, (q for q in [p]))) == set(SCORE_KEYS)  # any iterable of problems
    ds = ctx["ds"]
    assert int(ds[np.int64(0)]["position"]) == 0 and int(ds[-1]["position"]) == len(ds) - 1
    with pytest.raises(IndexError):  # the sequence protocol: out of range ends iteration
        ds[len(ds)]


# -- property-based: arbitrary arrays -----------------------------------------------------------
DTYPES = st.one_of(
    hnp.boolean_dtypes(),
    hnp.integer_dtypes(),
    hnp.unsigned_integer_dtypes(),
    hnp.floating_dtypes(),
    hnp.complex_number_dtypes(),
)
OBJECTS = st.one_of(
    st.none(), st.integers(), st.floats(), st.text(max_size=3), st.complex_numbers()
)


def arrays(shapes=()):
    """Arrays of any dtype (object ones hold None, ints of any size, floats, text, complex), of
    one of ``shapes`` or any shape up to 4-d; NaN, inf and huge values included."""
    any_shape = hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=6)
    shape = st.one_of(st.sampled_from(shapes), any_shape) if shapes else any_shape
    return st.one_of(
        hnp.arrays(DTYPES, shape),
        hnp.arrays(np.dtype(object), shape, elements=OBJECTS),
    )


NODES, ELEMS = (NY + 1, NX + 1), (NY, NX)
SHAPES = {  # the shapes each Problem array may have
    "fixed_x": (NODES,), "fixed_y": (NODES,),
    "loads": ((2, *NODES), (1, 2, *NODES), (2, 2, *NODES)),
    "passive_solid": (ELEMS,), "passive_void": (ELEMS,),
}  # fmt: skip
FAST = settings(
    max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)


def shaped(shapes):
    """Arrays of the right shapes, finite (huge values included), so that some problems pass."""
    return st.sampled_from(shapes).flatmap(
        lambda shape: st.one_of(
            hnp.arrays(st.sampled_from([bool, np.int8]), shape),
            hnp.arrays(np.float64, shape, elements=st.floats(-1e300, 1e300, allow_nan=False)),
        )
    )


def field(name):
    return st.tuples(st.just(name), st.one_of(arrays(SHAPES[name]), shaped(SHAPES[name])))


@FAST
@given(
    fields=st.lists(
        st.sampled_from(list(SHAPES)).flatmap(field),
        min_size=1,
        max_size=3,
        unique_by=lambda f: f[0],
    ),
    scalar=st.one_of(st.none(), st.tuples(st.sampled_from(["nelx", "nely", "volfrac"]), arrays())),
)
def test_problem_takes_any_array_and_answers_with_a_problem_error(fields, scalar):
    p = preset("mbb", NX, NY, 0.5)
    args = {"nelx": NX, "nely": NY, "volfrac": 0.5, **p.to_arrays(), **dict(fields)}
    if scalar is not None:
        args[scalar[0]] = scalar[1]
    try:
        q = Problem(**args)
    except (ProblemError, TypeError) as e:
        event(f"refused: {str(e)[:25]}")
        return
    event("accepted")
    assert q.shape == (NY, NX) and np.all(np.isfinite(q.loads))  # accepted: a valid problem


SCORE_SHAPES = (ELEMS, (1, *ELEMS), (2, *ELEMS), (0, *ELEMS))


def in_range(dtype, values):
    return hnp.arrays(dtype, st.sampled_from(SCORE_SHAPES), elements=st.sampled_from(values))


@FAST
@given(
    designs=st.one_of(
        arrays(SCORE_SHAPES),  # and designs that get judged, at the edges of [0, 1] too:
        in_range(np.float64, [0.0, 1.0, 0.5, 1e-300, 1 - 1e-16, 1 + 2e-16, -1e-10]),
        in_range(st.sampled_from([np.float16, np.float32]), [0.0, 1.0, 0.5, 0.25]),
        in_range(st.sampled_from([bool, np.uint8, np.int64]), [0, 1]),
        hnp.arrays(np.float64, st.sampled_from(SCORE_SHAPES), elements=st.floats(-1e-9, 1 + 1e-9)),
    )
)
def test_score_takes_any_array_and_answers_with_a_judge_error(designs):
    p = preset("mbb", NX, NY, 0.5)
    try:
        s = score(designs, p)
    except (JudgeError, TypeError) as e:
        event(f"refused: {str(e)[:25]}")
        return
    event("judged")
    assert set(s) == set(SCORE_KEYS)
    assert np.all(np.isfinite(s["compliance"])) and np.all((0 <= s["volume"]) & (s["volume"] <= 1))


@FAST
@given(path=st.one_of(arrays(), st.text(max_size=20)), index=st.one_of(arrays(), st.integers()))
def test_a_dataset_takes_any_path_and_index_and_answers_with_a_dataset_error(ctx, path, index):
    try:
        TopologyDataset(path)
    except (DatasetError, TypeError):
        pass
    ds = ctx["ds"]
    try:
        item = ds[index]
    except TypeError:
        return
    except IndexError:  # an integer out of range: the sequence protocol
        assert isinstance(index, int) and not -len(ds) <= index < len(ds)
        return
    assert item["density"].shape == (1, 8, 8)


# -- corrupted files: every chunk carries a fletcher32 checksum -----------------------------------
def flip_bytes_in_chunk(path, key: str, chunk: int) -> None:
    """Invert 4 bytes in the middle of chunk ``chunk`` of dataset ``key``, on disk."""
    with h5py.File(path, "r") as f:
        info = f[key].id.get_chunk_info(chunk)
    with open(path, "r+b") as fh:
        fh.seek(info.byte_offset + info.size // 2)
        raw = fh.read(4)
        fh.seek(info.byte_offset + info.size // 2)
        fh.write(bytes(b ^ 0xFF for b in raw))


def test_a_corrupted_chunk_is_one_dataset_error_naming_the_array(ctx):
    path = ctx["tmp"] / "corrupted.h5"
    shutil.copy(ctx["data"], path)
    with h5py.File(path, "r") as f:
        assert all(f[k].fletcher32 for k in ("index", "density", "problem/loads"))
    flip_bytes_in_chunk(path, "density", 1)  # sample 1: one sample per chunk
    ds = TopologyDataset(path, "all")  # the header is intact
    assert ds[0]["density"].shape == (1, 8, 8) and ds[2]["density"].shape == (1, 8, 8)
    message = f"{str(path)!r} is corrupted: checksum mismatch in density"
    with pytest.raises(DatasetError) as info:
        ds[1]
    assert str(info.value) == message
    with pytest.raises(DatasetError) as info:
        TopologyDataset(path, "all", in_memory=True)
    assert str(info.value) == message
    with pytest.raises(DatasetError, match="checksum mismatch in density"):
        clean_dataset(path, ctx["tmp"] / "cleaned.h5")
    assert not (ctx["tmp"] / "cleaned.h5").exists()


def test_files_written_before_the_checksums_still_read(ctx):
    """A file as the writer made it before fletcher32 (gzip only) reads the same."""
    old = ctx["tmp"] / "before-checksums.h5"
    with h5py.File(ctx["data"], "r") as src, h5py.File(old, "w") as dst:
        dst.attrs.update(src.attrs)
        keys = []
        src.visititems(lambda k, obj: keys.append(k) if isinstance(obj, h5py.Dataset) else None)
        for k in keys:
            s = src[k]
            dst.create_dataset(k, data=s[:], chunks=s.chunks, compression="gzip", shuffle=s.shuffle)
    with h5py.File(old, "r") as f:
        assert not f["density"].fletcher32
    now, before = ctx["ds"], TopologyDataset(old, "all")
    for k in range(len(now)):
        assert torch.equal(before[k]["density"], now[k]["density"])
        assert torch.equal(before[k]["condition"], now[k]["condition"])
