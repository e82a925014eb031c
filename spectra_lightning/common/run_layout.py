"""The run directory's layout, in one place: ``fit`` writes it; ``explore``, ``sweep``, ``analyze`` and the
callbacks read it.

::

    RUN/
      config.yaml        the resolved config (Lightning's SaveConfigCallback)
      run.json           the W&B run id, when the run started and was resumed
      split.json         the star-level train / val / test split
      checkpoints/       *.ckpt; last.ckpt, rewritten every epoch and on interruption
      figures/<tag>/     figures every few epochs (epoch_NNN) and at the end (final)
      report.json        the final latent-space report (docs/report-format.md)
      codes.zarr         codes of the run's store, made by ``explore --run``
      run.lock           held while a ``fit`` writes the run (a second one into it is refused)
"""

from __future__ import annotations

from pathlib import Path

RUN_FILE = "run.json"


def override_name(option: str) -> str:
    """A command-line override's part of a run's name: ``--model.kl_schedule.init_args.weight`` ->
    ``kl_schedule.weight`` (the section and ``init_args`` dropped)."""
    return ".".join(p for p in option.lstrip("-").split(".")[1:] if p != "init_args")


CHECKPOINTS = "checkpoints"
LAST = "last.ckpt"


def checkpoint_dir(run: str | Path) -> Path:
    return Path(run) / CHECKPOINTS


def last_checkpoint(run: str | Path) -> Path:
    return checkpoint_dir(run) / LAST


def is_run(path: str | Path) -> bool:
    """Does ``path`` look like a run directory (it has checkpoints)?"""
    return checkpoint_dir(path).is_dir()


def run_of(ckpt: str | Path) -> Path | None:
    """The run directory a checkpoint lies in, or None when it is not in one."""
    ckpt = Path(ckpt)
    return ckpt.parent.parent if ckpt.parent.name == CHECKPOINTS else None


def new_run_dir(base: str | Path) -> Path:
    """A run directory made here and now, atomically: ``base``, or ``base-2``, ``base-3`` ... when another run
    took that name first (two runs started in the same second)."""
    base = Path(base)
    base.parent.mkdir(parents=True, exist_ok=True)
    for k in range(1, 1000):
        path = base if k == 1 else base.with_name(f"{base.name}-{k}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise FileExistsError(f"{base}: 999 runs of this name already")


def run_lock_target(run: str | Path) -> Path:
    """What a fit's writer lock is named after: its lock is the file ``RUN/run.lock``."""
    return Path(run) / "run"


def run_file(run: str | Path) -> Path:
    return Path(run) / RUN_FILE


def split_file(run: str | Path) -> Path:
    return Path(run) / "split.json"


def report_file(run: str | Path) -> Path:
    return Path(run) / "report.json"


def codes_store(run: str | Path) -> Path:
    return Path(run) / "codes.zarr"


def figures_dir(run: str | Path, tag: str) -> Path:
    return Path(run) / "figures" / tag
