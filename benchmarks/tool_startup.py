"""How long a command takes to start: the data tools against the training command, in one run.

Each command is run ``--rounds`` times as a fresh process (``python -m spectra_lightning CMD --help``:
everything a real call imports before it does its work); the baseline is ``fit --help``, which needs torch
and Lightning, measured alternately with the tools so a load that comes and goes hits all of them.

    python benchmarks/tool_startup.py --out docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import platform
import statistics
import subprocess
import sys
import time
from datetime import date

from report import publish

COMMANDS = ("fit", "synth", "ingest", "verify")  # fit first: the baseline


def start_seconds(command: str) -> float:
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "spectra_lightning", command, "--help"], check=True, capture_output=True)
    return time.perf_counter() - t


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--out", help="append the result to this markdown file")
    a = p.parse_args()
    for command in COMMANDS:
        start_seconds(command)  # warm the file cache: every round then reads the same
    runs: dict[str, list[float]] = {c: [] for c in COMMANDS}
    for _ in range(a.rounds):
        for command in COMMANDS:
            runs[command].append(start_seconds(command))
    base = statistics.median(runs["fit"])
    lines = [
        f"## Command start-up (tools vs training) ({date.today().isoformat()})",
        "",
        f"`python benchmarks/tool_startup.py --rounds {a.rounds}`. Machine: {platform.machine()}, "
        f"{platform.python_version()}. `python -m spectra_lightning CMD --help` as a fresh process, medians of "
        f"{a.rounds} alternating rounds; the baseline is `fit --help` (torch + Lightning), in the same run.",
        "",
        "| command | s to start: median | rounds (s) | ÷ `fit` |",
        "|---|---|---|---|",
    ]
    for command, seconds in runs.items():
        med = statistics.median(seconds)
        rounds = ", ".join(f"{s:.2f}" for s in seconds)
        lines.append(f"| `{command}` | {med:.2f} | {rounds} | {med / base:.2f} |")
    publish(lines, a.out)


if __name__ == "__main__":
    main()
