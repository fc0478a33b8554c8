"""The layering contract (pyproject's [tool.importlinter]) holds, and it would catch an upward import."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def lint_imports(cwd: Path) -> subprocess.CompletedProcess[str]:
    executable = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which(
        "lint-imports"
    )
    if executable is None:
        pytest.fail("lint-imports is missing: install the development extras (pip install -e '.[dev]')")
    environment = {**os.environ, "PYTHONPATH": str(cwd)}
    return subprocess.run(
        [executable, "--no-cache"], cwd=cwd, env=environment, capture_output=True, text=True, timeout=120
    )


def test_the_package_keeps_its_layers_and_has_no_cycles() -> None:
    outcome = lint_imports(ROOT)
    assert outcome.returncode == 0, outcome.stdout + outcome.stderr
    assert "2 kept, 0 broken" in outcome.stdout


def test_an_upward_import_breaks_the_contract(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "pytest_gashammer", tmp_path / "pytest_gashammer")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    rpc = tmp_path / "pytest_gashammer" / "chain" / "rpc.py"
    rpc.write_text(rpc.read_text() + "\n\ndef _upward() -> None:\n    import pytest_gashammer.hive.local\n")
    outcome = lint_imports(tmp_path)
    assert outcome.returncode != 0
    assert "pytest_gashammer.chain is not allowed to import pytest_gashammer.hive" in outcome.stdout
