"""Topology datasets: seeded problem sampling, parallel generation, a resumable HDF5 store, and a
torch Dataset.

    from topovae.datasets import distribution, generate, TopologyDataset
    generate("data.h5", distribution("mixed", 64, 64), n=1000, seed=0)
    ds = TopologyDataset("data.h5", split="train")
    import_images("pictures/", "pictures.h5", size=(64, 32))     # designs from elsewhere

`TopologyDataset` is loaded on first use (it imports torch).
"""

from typing import Any

from ._augment import (
    TRANSFORM_NAMES,
    augment_batch,
    random_codes,
    symmetric_copies,
    transform_design,
    transform_problem,
    transforms,
)
from ._generate import generate
from ._groups import alternatives_summary
from ._import import (
    clean_dataset,
    clean_info,
    has_problems,
    ill_posed_samples,
    import_arrays,
    import_images,
    import_info,
)
from ._sampling import (
    DISTRIBUTIONS,
    SUPPORT_FAMILIES,
    ProblemDistribution,
    distribution,
    sample_problem,
)
from ._store import FIELDS, FORMAT, VERSION, DatasetError, DatasetWriter, read_header

__all__ = [
    "DISTRIBUTIONS",
    "FIELDS",
    "FORMAT",
    "SUPPORT_FAMILIES",
    "TRANSFORM_NAMES",
    "VERSION",
    "DatasetError",
    "DatasetWriter",
    "ProblemDistribution",
    "TopologyDataset",
    "alternatives_summary",
    "augment_batch",
    "clean_dataset",
    "clean_info",
    "distribution",
    "generate",
    "has_problems",
    "ill_posed_samples",
    "import_arrays",
    "import_images",
    "import_info",
    "random_codes",
    "read_header",
    "sample_problem",
    "symmetric_copies",
    "transform_design",
    "transform_problem",
    "transforms",
]


def __getattr__(name: str) -> Any:
    if name == "TopologyDataset":
        from ._torch import TopologyDataset

        return TopologyDataset
    raise AttributeError(f"module 'topovae.datasets' has no attribute {name!r}")
