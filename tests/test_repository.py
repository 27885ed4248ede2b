"""What users of research software look for beside the code: the license pyproject names, a
citation file of the same version, a changelog."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def field(text: str, name: str) -> str:
    m = re.search(rf"^{name}\s*[:=]\s*\"?([^\"\n]+)\"?\s*$", text, re.MULTILINE)
    assert m, f"no {name} field"
    return m.group(1).strip()


def test_the_license_file_is_the_one_pyproject_names():
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert field(pyproject, "license") == "MIT"
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")


def test_the_citation_file_has_the_package_version_and_license():
    pyproject = (ROOT / "pyproject.toml").read_text()
    cff = (ROOT / "CITATION.cff").read_text()
    assert field(cff, "cff-version") == "1.2.0"
    assert field(cff, "version") == field(pyproject, "version")
    assert field(cff, "license") == field(pyproject, "license")
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", field(cff, "date-released"))


def test_the_changelog_starts_with_the_unreleased_changes():
    text = (ROOT / "CHANGELOG.md").read_text()
    assert text.startswith("# Changelog")
    assert re.search(r"^## Unreleased$", text, re.MULTILINE)
