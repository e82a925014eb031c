"""What a run directory holds, found the same way by every tool that reads one (``analyze --run``, ``explore
--run``, ``export``): its final checkpoint, the store it trained on (``split.json``), its report, and its codes
(``codes.zarr``, encoded once from the store with the final checkpoint)."""

from __future__ import annotations

import json
from pathlib import Path

from spectra_lightning.analysis.encode import encode
from spectra_lightning.common.run_layout import (
    checkpoint_dir,
    codes_store,
    is_run,
    last_checkpoint,
    report_file,
    split_file,
)


class RunError(ValueError):
    """A run directory that cannot be read as one; the message says why."""


def final_checkpoint(run: Path) -> Path:
    """The checkpoint of the run's final weights, which its report describes: ``checkpoints/last.ckpt``, or the
    newest checkpoint (Lightning's default callback keeps the last epoch's)."""
    last = last_checkpoint(run)
    if last.is_file():
        return last
    found = sorted(checkpoint_dir(run).glob("*.ckpt"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise RunError(f"{run}: no checkpoint in {checkpoint_dir(run)} (a run of `fit` writes them there)")
    return found[-1]


def resolve_run(path: str | Path) -> dict:
    """A run directory (or a folder of runs: the newest) -> ``{"run", "ckpt", "store", "report", "codes",
    "split_file"}``: its final checkpoint, the store named in its ``split.json``, its ``report.json`` (None when
    missing) and where its codes are (``codes.zarr``, made by :func:`run_codes`)."""
    path = Path(path)
    if not path.is_dir():
        raise RunError(f"{path}: no such run directory")
    runs = [path] if is_run(path) else sorted((p for p in path.iterdir() if is_run(p)), key=lambda p: p.name)
    if not runs:
        raise RunError(f"{path}: not a run directory (no checkpoints/ in it or its subfolders)")
    run = runs[-1]
    ckpt = final_checkpoint(run)
    try:
        store = json.loads(split_file(run).read_text())["store"]
    except (OSError, KeyError, json.JSONDecodeError):
        raise RunError(f"{run}: no split.json naming the training store; pass --ckpt, --codes and --store") from None
    report = report_file(run)
    return {
        "run": run,
        "ckpt": ckpt,
        "store": store,
        "report": report if report.exists() else None,
        "codes": codes_store(run),
        "split_file": split_file(run),
    }


def run_codes(found: dict, device: str = "cpu", progress: bool = True) -> Path:
    """The run's codes, encoded from its store with its final checkpoint the first time they are asked for."""
    codes = Path(found["codes"])
    if not codes.exists():
        print(f"encoding {found['store']} with {found['ckpt']} -> {codes}", flush=True)
        encode(found["ckpt"], found["store"], codes, device=device, progress=progress)
    return codes
