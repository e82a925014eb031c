"""The quality gates contributors run (pre-commit runs the same): lint, format, types."""

import subprocess
import sys

import pytest

from helpers import REPO

GATES = {
    "ruff check": ["ruff", "check", "--no-cache", "."],
    "ruff format": ["ruff", "format", "--check", "--no-cache", "."],
    # strict on the typed core (pyproject [tool.mypy] overrides)
    "mypy": ["mypy", "spectra_lightning/grid.py", "spectra_lightning/batch.py", "spectra_lightning/metrics"],
}


@pytest.mark.parametrize("gate", GATES)
def test_gate_is_clean(gate):
    done = subprocess.run([sys.executable, "-m", *GATES[gate]], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, f"{gate} found problems:\n{done.stdout}{done.stderr}"
