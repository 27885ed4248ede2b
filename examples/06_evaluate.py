"""Judge a CVAE on the held-out split: first design, best of k, polished, against SIMP with the
same iterations; write the report (JSON, Markdown, HTML, pictures).

Needs 03_train_vae_and_cvae.py. Takes about 1 minute on 2 cores (seconds at the tiny scale).
"""

# %% settings
import os
from pathlib import Path

TINY = os.environ.get("TOPOVAE_EXAMPLE_SCALE") == "tiny"
OUT = Path(os.environ.get("TOPOVAE_EXAMPLE_OUT", "examples_out"))
data, checkpoint = OUT / "designs.h5", OUT / "run-cvae" / "best.pt"
assert checkpoint.exists(), "run 03_train_vae_and_cvae.py first"

# %% evaluate: k designs per problem, the first at the prior mean, 10 polish iterations
from topovae.models import load
from topovae.workflows import evaluate, write_report

report = evaluate(load(checkpoint), data, "test", k=2 if TINY else 8, polish=10,
                  limit=3 if TINY else None)  # fmt: skip
for variant, m in report["metrics"].items():
    print(
        f"{variant:>9}: CE median {100 * m['ce_median']:.2f} %, pass {100 * m['pass_rate']:.0f} %"
        f", floating {100 * m['floating_rate']:.0f} %"
    )

# %% the report folder
paths = write_report(report, OUT / "evaluation")
print("wrote", *sorted(p.name for p in paths.values()))
