"""The README's main command, timed end to end as a new user runs it (the install excluded).

    python benchmarks/main_command.py [--baseline REV] [--out docs/benchmarks.md]

Runs the last step of the README's first command (``python -m spectra_lightning fit --config
experiments/quickstart.yaml``) in a fresh folder with an empty synthetic-data cache, so the store is generated as
on a new machine, and W&B offline as without an API key. With ``--baseline REV`` the same command at git revision
REV (a temporary worktree of this repository: its code and its recipe, this interpreter and packages) runs first,
and the table gives the ratio. Wall times depend on the machine and on what else runs on it: run it alone.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shlex
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from report import publish

REPO = Path(__file__).resolve().parents[1]


def readme_command() -> list[str]:
    """The README's main command after its install steps, with this interpreter."""
    text = (REPO / "README.md").read_text()
    block = re.search(r"```bash\n(.*?)\n```", text, re.S)
    if block is None:
        raise SystemExit("README.md: no bash block")
    last = block.group(1).split("&&")[-1].strip()
    args = shlex.split(last)
    if args[:3] != [".venv/bin/python", "-m", "spectra_lightning"]:
        raise SystemExit(f"README.md: the first command does not end in a spectra_lightning call: {last}")
    return [sys.executable, *args[1:]]


def timed(tree: Path, command: list[str]) -> tuple[float, int, str]:
    """Seconds, exit code and the last lines of ``command`` run on the code and recipes of ``tree``."""
    with tempfile.TemporaryDirectory() as work:
        env = {**os.environ, "PYTHONPATH": str(tree), "WANDB_MODE": "offline", "SPECTRA_LIGHTNING_CACHE": work}
        env.pop("WANDB_API_KEY", None)
        args = [a if not a.startswith("experiments/") else str(tree / a) for a in command]
        t = time.perf_counter()
        done = subprocess.run(args, cwd=work, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - t
    tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-3:])
    return seconds, done.returncode, tail


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--baseline", help="a git revision whose main command runs first, as the baseline")
    p.add_argument("--out", help="append the result to this markdown file")
    a = p.parse_args()
    command = readme_command()
    rows: list[tuple[str, float]] = []
    if a.baseline:
        with tempfile.TemporaryDirectory() as tmp:
            tree = Path(tmp) / "baseline"
            git = ["git", "-C", str(REPO), "worktree"]  # its messages on stderr: stdout is the section
            subprocess.run([*git, "add", "--detach", str(tree), a.baseline], check=True, stdout=sys.stderr)
            for sub in ("callbacks", "data_modules"):  # where the wheel puts them: else the editable install's win
                if (tree / sub).is_dir() and not (tree / "spectra_lightning" / sub).exists():
                    (tree / "spectra_lightning" / sub).symlink_to(tree / sub)
            try:
                seconds, rc, tail = timed(tree, command)
            finally:
                subprocess.run([*git, "remove", "--force", str(tree)], check=True, stdout=sys.stderr)
            if rc:
                raise SystemExit(f"the baseline's command failed ({rc}):\n{tail}")
            rows.append((f"`{a.baseline}` (baseline)", seconds))
            print(f"baseline {a.baseline}: {seconds:.0f} s", file=sys.stderr, flush=True)
    seconds, rc, tail = timed(REPO, command)
    if rc:
        raise SystemExit(f"the main command failed ({rc}):\n{tail}")
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    rows.append((f"`{head.stdout.strip() or 'this tree'}` (this tree)", seconds))
    base = rows[0][1]
    shown = " ".join(shlex.quote(x) for x in ["python", *command[1:]])
    lines = [
        f"## The main command, end to end ({date.today().isoformat()})",
        "",
        f"`python benchmarks/main_command.py{f' --baseline {a.baseline}' if a.baseline else ''}`. Machine: "
        f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}. `{shown}` in a fresh "
        "folder with an empty synthetic-data cache (the store generated, as on a new machine), W&B offline; the "
        "install excluded.",
        "",
        "| code | wall time (s) | minutes | × baseline speed |",
        "|---|---|---|---|",
        *(f"| {name} | {s:.0f} | {s / 60:.1f} | {base / s:.2f} |" for name, s in rows),
    ]
    publish(lines, a.out)


if __name__ == "__main__":
    main()
