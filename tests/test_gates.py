"""The quality gates contributors run (pre-commit runs the same): lint, format, types.

mypy takes ~35 s of one core; when its test is collected it starts in the background at collection
(``conftest.py``) and runs beside the tests before it, most of which keep only one core busy.
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
EARLY = "mypy"  # the gate conftest.py starts at collection


def start_gate(gate: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", *GATES[gate]], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


@pytest.mark.parametrize("gate", GATES)
def test_gate_is_clean(gate, request):
    started = request.config.stash.get(EARLY_GATE, None) if gate == EARLY else None
    proc = started or start_gate(gate)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, f"{gate} found problems:\n{out}"


EARLY_GATE = pytest.StashKey[subprocess.Popen]()
