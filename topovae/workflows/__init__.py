"""What a trained design model is for: look at its manifold, search it, judge it.

    from topovae.workflows import score, search, evaluate, prior_samples, interpolate, traverse
    s = score(designs, problems, reference=simp_designs)       # the one judge (dict of arrays)
    r = search(model, problem, method="cmaes", budget=200, polish=10)
    alt = alternatives(model, problem, k=8, polish=10)        # distinct good designs, ranked
    report = evaluate(model, "data.h5", split="test", k=8, polish=10)

Every design any workflow makes is judged by `score`: FE compliance as given and binarised,
volume fraction error, floating material, bare loads, greyness, and the compliance error
against a SIMP reference.
"""

from ._alternatives import Alternatives, alternatives, save_alternatives
from ._demo import run_demo
from ._diversity import coverage, diversity, ged
from ._evaluate import VARIANTS, evaluate, markdown_report, write_report
from ._explore import (
    INTERPOLATIONS,
    condition_sweep,
    interpolate,
    latent_map,
    prior_samples,
    save_latent_map,
    save_scored_grid,
    slerp,
    traverse,
    with_load_angle,
)
from ._judge import SCORE_KEYS, ComplianceOracle, JudgeError, binarize, greyness, score
from ._latent import LatentDecoder, WorkflowError, condition_of
from ._page import explorer_data, write_explorer_page
from ._search import METHODS, SearchResult, search
from ._train import train

__all__ = [
    "INTERPOLATIONS",
    "METHODS",
    "SCORE_KEYS",
    "VARIANTS",
    "Alternatives",
    "ComplianceOracle",
    "JudgeError",
    "LatentDecoder",
    "SearchResult",
    "WorkflowError",
    "alternatives",
    "binarize",
    "condition_of",
    "condition_sweep",
    "coverage",
    "diversity",
    "evaluate",
    "explorer_data",
    "ged",
    "greyness",
    "interpolate",
    "latent_map",
    "markdown_report",
    "prior_samples",
    "run_demo",
    "save_alternatives",
    "save_latent_map",
    "save_scored_grid",
    "score",
    "search",
    "slerp",
    "train",
    "traverse",
    "with_load_angle",
    "write_explorer_page",
    "write_report",
]
