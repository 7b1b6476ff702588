"""The layout is enforced, not just described: import direction (import-linter
contracts in pyproject.toml), the README's layout table naming every room, and
`transcripts/` knowing nothing of the application's environment."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_hold(monkeypatch, capsys):
    importlinter_cli = pytest.importorskip(
        "importlinter.cli", reason="import-linter is in the dev extra"
    )
    monkeypatch.chdir(ROOT)
    code = importlinter_cli.lint_imports(
        config_filename=str(ROOT / "pyproject.toml"), no_cache=True
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "0 broken" in out and "5 kept" in out, out


def test_readme_layout_table_names_every_room():
    readme = (ROOT / "README.md").read_text()
    rooms = sorted(p.name for p in (ROOT / "coldstart").iterdir() if (p / "__init__.py").exists())
    assert rooms, "coldstart has sub-packages"
    for room in rooms:
        assert re.search(rf"\| `coldstart/{room}/` \|", readme), (
            f"README layout table lacks coldstart/{room}/"
        )


def test_transcripts_does_not_read_the_application_environment():
    for path in (ROOT / "transcripts").rglob("*.py"):
        text = path.read_text()
        assert "COLDSTART_" not in text, (
            f"{path.relative_to(ROOT)} reads the application's environment"
        )
        assert "os.environ" not in text or path.name == "__init__.py", path


def test_no_module_outside_demo_names_the_demo_package():
    """Belt and braces for the import contract: lazy imports inside functions count too."""
    offenders = []
    for path in (ROOT / "coldstart").rglob("*.py"):
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith("coldstart/demo/") or rel == "coldstart/cli/demo.py":
            continue
        if re.search(r"^\s*(from|import) coldstart\.demo\b", path.read_text(), re.M):
            offenders.append(rel)
    assert offenders == []


def test_single_definitions():
    """The spoken-word kinds and the episode -> show remapping are written once."""
    hits = {"SPOKEN_KINDS =": [], "def episodes_to_shows": []}
    for top in ("coldstart", "training", "graph", "transcripts"):
        for path in (ROOT / top).rglob("*.py"):
            text = path.read_text()
            for needle in hits:
                if needle in text:
                    hits[needle].append(path.relative_to(ROOT).as_posix())
    assert all(len(v) == 1 for v in hits.values()), hits
