"""Command line: ``python -m spectra_lightning <command> ...``.

``fit``/``validate``/``test``/``predict`` are training commands configured by YAML (``--config
experiments/quickstart.yaml``, :mod:`spectra_lightning.cli.training`); the other commands are plain tools, each
the ``main`` of its wing's module (:data:`TOOLS`), dispatched from the same entry point. Only the training
commands import torch and Lightning: ``synth``, ``ingest`` and ``verify`` start in 0.2–2 s, not ~10
(docs/benchmarks.md).
"""

from __future__ import annotations

import importlib
import sys

from spectra_lightning.cli.names import PROG, TENSOR_COMMANDS, TRAINER_COMMANDS
from spectra_lightning.common.allocator import keep_freed_memory
from spectra_lightning.common.version import VERSION

# Tool commands, imported only when called: "module:function" under spectra_lightning.
TOOLS = {
    "synth": "ingest.synth:main",
    "verify": "store.verify:main",
    "ingest": "ingest.command:main",
    "encode": "analysis.encode:main",
    "export": "analysis.export:main",
    "analyze": "analysis.analyze:main",
    "sweep": "analysis.sweep:main",
    "sweep-report": "analysis.sweep:report_main",
    "explore": "explorer.command:main",
}


def run_tool(name: str, argv: list[str]) -> int:
    module, function = TOOLS[name].split(":")
    return getattr(importlib.import_module(f"spectra_lightning.{module}"), function)(argv)


def overview() -> str:
    """The top-level help: commands, the formats ``ingest`` reads and the grids it places them on (from their
    registries), and the environment variables the commands read."""
    from spectra_lightning.ingest.readers import FORMAT_NAMES
    from spectra_lightning.physics.grid import GRIDS

    return f"""usage: {PROG} COMMAND [options]    ({PROG} --version: this one's)

Train and read autoencoders of stellar spectra (Sedaghat et al. 2021).

training (LightningCLI; see `COMMAND --help`, `--print_config`):
  fit        train, e.g. `fit --config experiments/quickstart.yaml`; then the test split's report
  validate   evaluate a checkpoint on the validation split (--ckpt_path)
  test       evaluate on the test split
  predict    run the model over the validation split

tools:
  synth      write a synthetic HARPS-like store with known labels
  verify     check a store: every row against its checksum, duplicate ids
  ingest     put spectra on a grid in a store: {FORMAT_NAMES}
  encode     latent codes of every spectrum in a store (--ckpt, --store, --output)
  export     a finished run's model as one file to share, with its model card (RUN --output NAME.ckpt)
  analyze    MAD + mutual information of codes vs labels -> report.json + figures
  explore    local web page: sliders decode live, node scatter, nearest stored spectra (--run RUN_DIR)
  sweep      run a W&B sweep YAML locally (grid/random), each run a real fit; then Figure 4
  sweep-report  Figure 4 (informative nodes vs λ per latent size) from a sweep directory

grids (--grid, synth and ingest): {", ".join(GRIDS)}, or START:STOP:STEP in Å, or log:START:STOP:STEP in dex

environment:
  SPECTRA_LIGHTNING_STORE          the store a config without one trains on
  SPECTRA_LIGHTNING_CACHE          where generated synthetic stores and downloaded models are kept
                                   (~/.cache/spectra_lightning)
  SPECTRA_LIGHTNING_ALLOW_MODULES  modules (comma-separated) whose classes configs and checkpoints may name
  SPECTRA_LIGHTNING_CHROMIUM       the Chromium the explorer's screenshots use (default: `chromium` on PATH)
  WANDB_MODE, WANDB_API_KEY        W&B's own: without a key, runs are logged offline
"""


def main(args: list[str] | None = None) -> int:
    """Entry point; ``args`` defaults to ``sys.argv[1:]`` (tests pass a list)."""
    args = list(sys.argv[1:] if args is None else args)
    if not args or args[0] in ("-h", "--help"):
        print(overview())
        return 0
    if args[0] == "--version":
        print(f"spectra_lightning {VERSION}")
        return 0
    if args[0] not in TOOLS and args[0] not in TRAINER_COMMANDS:
        print(f"spectra_lightning: unknown command {args[0]!r}\n\n{overview()}", file=sys.stderr)
        return 2
    if args[0] in TENSOR_COMMANDS:  # before torch allocates: a quarter of a CPU step was page faults
        keep_freed_memory()
    if args[0] in TOOLS:
        return run_tool(args[0], args[1:])
    from spectra_lightning.cli.training import run  # torch and Lightning: only for the training commands

    return run(args[0], args[1:])
