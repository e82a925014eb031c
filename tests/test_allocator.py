"""The training commands keep freed memory mapped: a step's activations stop page-faulting afresh every step."""

import subprocess
import sys

import pytest

from spectra_lightning.cli import commands as cli

# Allocate and free a step's worth of few-MB arrays again and again, touching every page; print the minor page
# faults of the last 20 rounds. argv[1] == "1": keep_freed_memory() first.
PROBE = """
import resource, sys
from spectra_lightning.common.allocator import keep_freed_memory
took = keep_freed_memory() if sys.argv[1] == "1" else None
import numpy as np
def rounds(n):
    for _ in range(n):
        arrays = [np.ones(k, np.float32) for k in (1 << 21, 3 << 20, 1 << 20, 1 << 18)]
        del arrays
rounds(3)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
rounds(20)
print(took, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def faults(keep: bool) -> tuple[str, int]:
    out = subprocess.run([sys.executable, "-c", PROBE, str(int(keep))], capture_output=True, text=True, check=True)
    took, n = out.stdout.split()
    return took, int(n)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt is glibc's; elsewhere it is a no-op")
def test_kept_memory_is_reused_without_page_faults():
    took, kept = faults(True)
    _, default = faults(False)
    assert took == "True"
    # 20 rounds × 28 MB: glibc's defaults fault most pages anew (~6,800 per round); kept, the pages are reused
    assert default > 20 * 1000
    assert kept < default / 20


def test_commands_that_run_networks_set_the_allocator_first(monkeypatch):
    calls = []
    monkeypatch.setattr(cli, "keep_freed_memory", lambda: calls.append(1) or True)
    for command, expected in (("synth", 0), ("verify", 0), ("encode", 1)):
        calls.clear()
        with pytest.raises(SystemExit):
            cli.main([command, "--help"])
        assert len(calls) == expected, command
