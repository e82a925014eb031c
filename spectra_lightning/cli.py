"""Command line: ``python -m spectra_lightning <command> ...``.

``fit``/``validate``/``test``/``predict`` are LightningCLI subcommands configured by
YAML (``--config experiments/quickstart.yaml``); the other commands are plain tools
that dispatch from the same entry point.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
from dataclasses import fields
from pathlib import Path

import yaml
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from data_modules import SpectraDataModule

from .module import SpectrumAutoencoder
from .store import StoreError

RUN_DIR_ENV = "SPECTRA_LIGHTNING_RUN_DIR"  # shared with DDP child processes
TRAINER_COMMANDS = ("fit", "validate", "test", "predict")


class SpectraCLI(LightningCLI):
    """LightningCLI with the grid length linked into the model and one directory per run.

    A run directory ``runs/<config name>/<YYYYmmdd-HHMMSS>`` (or ``--trainer.default_root_dir``)
    holds the resolved config, the split, checkpoints, figures and the W&B files.
    """

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.link_arguments("data.n_pixels", "model.n_pixels", apply_on="instantiate")
        parser.link_arguments("data.grid_spec", "model.grid", apply_on="instantiate")

    def before_instantiate_classes(self) -> None:
        cfg = self.config[self.subcommand]
        run_dir = os.environ.get(RUN_DIR_ENV) or cfg.trainer.default_root_dir
        if not run_dir:
            configs = [Path(str(c)) for c in (cfg.get("config") or [])]
            name = configs[-1].stem if configs else "default"
            run_dir = str(Path("runs") / name / time.strftime("%Y%m%d-%H%M%S"))
        os.environ[RUN_DIR_ENV] = run_dir
        cfg.trainer.default_root_dir = run_dir
        loggers = cfg.trainer.logger
        for logger in loggers if isinstance(loggers, list) else [loggers]:
            init = getattr(logger, "init_args", None)
            if init is not None and "save_dir" in init and init.save_dir in (None, "."):
                init.save_dir = run_dir
            if str(getattr(logger, "class_path", "")).endswith("WandbLogger") and init is not None:
                # sweep runs: grouped by sweep, named by their parameters
                if not init.get("group"):
                    init.group = os.environ.get("WANDB_RUN_GROUP") or Path(run_dir).parent.name
                if not init.get("name"):
                    init.name = os.environ.get("WANDB_NAME") or self.run_label or None

    run_label = ""  # set by main(): the dotted overrides, e.g. "kl_weight=0.3,latent_dim=8"

    def before_fit(self) -> None:
        from .loggers import AutoWandbLogger

        for logger in self.trainer.loggers:
            if isinstance(logger, AutoWandbLogger) and self.trainer.is_global_zero:
                parser = self._parser(self.subcommand)
                logger.log_config(yaml.safe_load(parser.dump(self.config[self.subcommand], skip_none=False)))
        for cb in self.trainer.checkpoint_callbacks:
            if cb.dirpath is None:
                cb.dirpath = str(Path(self.trainer.default_root_dir) / "checkpoints")

    def after_fit(self) -> None:
        log_dir = self.trainer.log_dir  # a collective under DDP: call it on every rank
        if not self.trainer.is_global_zero:
            return
        run_dir = Path(self.trainer.default_root_dir)
        lines = [f"run directory: {run_dir}", f"config:        {Path(log_dir or run_dir) / 'config.yaml'}"]
        for cb in self.trainer.checkpoint_callbacks:
            if cb.best_model_path:
                lines.append(f"best checkpoint: {cb.best_model_path}")
            if getattr(cb, "last_model_path", "") and Path(cb.last_model_path).exists():
                lines.append(f"last checkpoint: {cb.last_model_path}")
        for logger in self.trainer.loggers:
            if type(logger).__name__.endswith("WandbLogger"):
                exp = logger.experiment
                if getattr(exp, "dir", None):
                    mode = "offline: upload with `wandb sync " + str(Path(exp.dir).parent) + "`" \
                        if getattr(exp.settings, "mode", "") == "offline" or exp.offline else "online: " + str(exp.url)
                    lines.append(f"W&B run:       {mode}")
        if (run_dir / "checkpoints").is_dir():
            lines.append(f"explore:       python -m spectra_lightning explore --run {run_dir}")
        print("\n".join(lines), flush=True)


def synth_main(argv: list[str]) -> int:
    """``synth``: write a synthetic store."""
    from .synth import SynthSpec, synthesize

    defaults = SynthSpec()
    p = argparse.ArgumentParser(prog="python -m spectra_lightning synth",
                                description="Write HARPS-like synthetic spectra with known labels to a Zarr store.")
    p.add_argument("--output", required=True, help="store path to create (must not exist)")
    for f in fields(SynthSpec):
        if f.name == "grid":
            p.add_argument("--grid", default=defaults.grid, help="named grid: harps, quickstart or tiny (default %(default)s)")
        else:
            p.add_argument(f"--{f.name.replace('_', '-')}", dest=f.name, type=type(getattr(defaults, f.name)),
                           default=getattr(defaults, f.name), help="default %(default)s")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    a = p.parse_args(argv)
    spec = SynthSpec(**{f.name: getattr(a, f.name) for f in fields(SynthSpec)})
    try:
        synthesize(a.output, spec, progress=not a.quiet)
    except ValueError as e:  # StoreError, unknown grid
        p.exit(2, f"synth: error: {e}\n")
    print(f"wrote {spec.n} spectra to {a.output}")
    return 0


# Tool commands, imported only when called: "module:function" under spectra_lightning.
TOOLS = {"synth": "cli:synth_main", "ingest": "ingest:main", "encode": "encode:main", "analyze": "analyze:main",
         "sweep": "sweep:main", "sweep-report": "sweep:report_main", "explore": "explore:main"}


def run_tool(name: str, argv: list[str]) -> int:
    module, function = TOOLS[name].split(":")
    return getattr(importlib.import_module(f"spectra_lightning.{module}"), function)(argv)


OVERVIEW = f"""usage: python -m spectra_lightning COMMAND [options]

Train and read autoencoders of stellar spectra (Sedaghat et al. 2021).

training (LightningCLI; see `COMMAND --help`, `--print_config`):
  fit        train, e.g. `fit --config experiments/quickstart.yaml`
  validate   evaluate a checkpoint on the validation split (--ckpt_path)
  test       evaluate on the test split
  predict    run the model over the validation split

tools:
  synth      write a synthetic HARPS-like store with known labels
  ingest     put archive FITS spectra (ADP, s1d, e2ds, generic 1-D) on the grid in a store
  encode     latent codes of every spectrum in a store (--ckpt, --store, --output)
  analyze    MAD + mutual information of codes vs labels -> report.json + figures
  explore    local web page: sliders decode live, node scatter, nearest stored spectra (--run RUN_DIR)
  sweep      run a W&B sweep YAML locally (grid/random), each run a real fit; then Figure 4
  sweep-report  Figure 4 (informative nodes vs λ per latent size) from a sweep directory
"""


def main(args: list[str] | None = None) -> int:
    """Entry point; ``args`` defaults to ``sys.argv[1:]`` (tests pass a list)."""
    from_argv = args is None
    args = list(sys.argv[1:] if from_argv else args)
    if not args or args[0] in ("-h", "--help"):
        print(OVERVIEW)
        return 0
    if args[0] in TOOLS:
        return run_tool(args[0], args[1:])
    if args[0] not in TRAINER_COMMANDS:
        print(f"spectra_lightning: unknown command {args[0]!r}\n\n{OVERVIEW}", file=sys.stderr)
        return 2
    had_run_dir = RUN_DIR_ENV in os.environ
    SpectraCLI.run_label = ",".join(f"{key.split('.')[-1]}={value}" for key, value in
                                    (a.split("=", 1) for a in args if a.startswith(("--model.", "--data.")) and "=" in a))
    try:
        SpectraCLI(SpectrumAutoencoder, SpectraDataModule, subclass_mode_data=True, args=None if from_argv else args,
                   save_config_kwargs={"overwrite": True})
    except StoreError as e:  # a missing or foreign store: one line, not a traceback
        print(f"spectra_lightning {args[0]}: error: {e}", file=sys.stderr)
        return 2
    finally:
        if not had_run_dir:
            os.environ.pop(RUN_DIR_ENV, None)
    return 0
