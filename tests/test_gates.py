"""The quality gates contributors run (pre-commit runs the same): lint, format, types.

mypy reads torch's and Lightning's types, ~35 s of one core: it runs under ``-m slow``, which CI runs after
the default suite (``.ci/run``).
"""

import subprocess
import sys

import pytest

from helpers import REPO

GATES = {
    "ruff check": ["ruff", "check", "--no-cache", "."],
    "ruff format": ["ruff", "format", "--check", "--no-cache", "."],
    # the whole package at [tool.mypy]'s level; strict's flags on the typed core (pyproject overrides)
    "mypy": ["mypy", "spectra_lightning", "data_modules", "callbacks"],
}


@pytest.mark.parametrize("gate", [pytest.param(g, marks=[pytest.mark.slow] if g == "mypy" else []) for g in GATES])
def test_gate_is_clean(gate):
    done = subprocess.run([sys.executable, "-m", *GATES[gate]], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, f"{gate} found problems:\n{done.stdout}{done.stderr}"
