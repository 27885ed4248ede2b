"""Every script in examples/ runs, in order, at the tiny scale (TOPOVAE_EXAMPLE_SCALE=tiny), each
in its own interpreter as a user runs it, and writes what its docstring promises."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).parents[1] / "examples").glob("[0-9][0-9]_*.py"))
WRITES = {
    "01_solve_presets.py": ["presets.png"],
    "02_generate_dataset.py": ["designs.h5", "designs.png"],
    "03_train_vae_and_cvae.py": ["run-vae/best.pt", "run-cvae/best.pt", "run-cvae/loss.png"],
    "04_explore_manifold.py": ["samples.png", "map.png", "map_outliers.png", "sweep.png"],
    "05_search_problem.py": ["search.png"],
    "06_evaluate.py": ["evaluation/report.html", "evaluation/cases.png"],
}
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    return tmp_path_factory.mktemp("examples")


def test_every_example_is_listed_and_says_what_it_shows_and_how_long():
    assert [p.name for p in EXAMPLES] == sorted(WRITES)
    for path in EXAMPLES:
        text = path.read_text()
        doc = text.split('"""')[1]
        assert "Takes about" in doc, path.name
        assert text.count("# %%") >= 3, f"{path.name}: written as notebook cells"


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_the_example_runs_at_the_tiny_scale(path, out):
    env = {**os.environ, "TOPOVAE_EXAMPLE_SCALE": "tiny", "TOPOVAE_EXAMPLE_OUT": str(out),
           "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}  # fmt: skip
    r = subprocess.run([sys.executable, str(path)], cwd=out, env=env, capture_output=True,
                       text=True, timeout=300)  # fmt: skip
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    for name in WRITES[path.name]:
        f = out / name
        assert f.is_file() and f.stat().st_size > 0, f"{path.name} did not write {name}"
        if f.suffix == ".png":
            assert f.read_bytes().startswith(PNG), name
