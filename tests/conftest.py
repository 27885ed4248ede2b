"""Shared fixtures: the CLI driven by click's CliRunner in a temporary folder."""

import pytest
from click.testing import CliRunner

from topovae.cli import main


@pytest.fixture
def run(tmp_path, monkeypatch):
    """run(*args) -> click Result of `topovae *args`, in tmp_path."""
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    def invoke(*args):
        return runner.invoke(main, [str(a) for a in args])

    return invoke


def assert_one_line_error(result, *fragments):
    """Bad input: exit code 2, one line ``Error: ...`` holding every fragment, no traceback."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = [ln for ln in result.output.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
