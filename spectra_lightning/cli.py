"""Command line: ``python -m spectra_lightning <command> ...``.

``fit``/``validate``/``test``/``predict`` are LightningCLI subcommands configured by
YAML (``--config experiments/quickstart.yaml``, :mod:`spectra_lightning.trainer_cli`); the other
commands are plain tools that dispatch from the same entry point. Only the training commands import
torch and Lightning: ``synth``, ``ingest`` and ``verify`` start in 0.2–2 s, not ~10 (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import importlib
import sys
import typing
from dataclasses import fields

from .allocator import keep_freed_memory

PROG = "python -m spectra_lightning"
TRAINER_COMMANDS = ("fit", "validate", "test", "predict")
TENSOR_COMMANDS = (*TRAINER_COMMANDS, "encode")  # run networks: the allocator keeps their freed activations


SYNTH_HELP = {
    "n": "spectra to write",
    "seed": "the only source of randomness",
    "rv_dist": "radial velocities: uniform on ±rv-max, or archive (a 20 km/s core and a 50 km/s halo, cut at ±rv-max)",
    "rv_max": "largest |RV|, km/s",
    "snr_min": "lowest signal-to-noise ratio (log-uniform)",
    "snr_max": "highest signal-to-noise ratio",
    "giant_fraction": "share of giants among the stars",
    "spectra_per_star": "epochs per star (same labels, new noise)",
    "resolution": "resolving power R of the instrument profile (HARPS: 115,000)",
    "dtype": "stored flux dtype: float16 (the archive format, half the bytes) or float32",
}


def count(text: str) -> int:
    """A whole number from the command line, in any notation that names one (``20000``, ``2e4``)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value.is_integer():
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}")
    return int(value)


def synth_main(argv: list[str]) -> int:
    """``synth``: write a synthetic store."""
    from .grid import GRIDS
    from .synth import SynthSpec, synthesize

    defaults = SynthSpec()
    p = argparse.ArgumentParser(
        prog="python -m spectra_lightning synth",
        description="Write HARPS-like synthetic spectra with known labels to a Zarr store.",
    )
    p.add_argument("--output", required=True, help="store path to create (must not exist)")
    hints = typing.get_type_hints(SynthSpec)
    for f in fields(SynthSpec):
        if f.name == "grid":
            p.add_argument(
                "--grid",
                default=defaults.grid,
                help=f"a named grid ({', '.join(GRIDS)}), START:STOP:STEP[:LENGTH] in Å or "
                "log:START:STOP:STEP[:LENGTH] with STEP in dex (default %(default)s)",
            )
            continue
        choices = typing.get_args(hints[f.name]) if typing.get_origin(hints[f.name]) is typing.Literal else None
        kind = type(getattr(defaults, f.name))
        p.add_argument(
            f"--{f.name.replace('_', '-')}",
            dest=f.name,
            type=count if kind is int else kind,
            default=getattr(defaults, f.name),
            choices=choices,
            help=(SYNTH_HELP.get(f.name, "") + " (default %(default)s)").strip(),
        )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    a = p.parse_args(argv)
    try:
        spec = SynthSpec(**{f.name: getattr(a, f.name) for f in fields(SynthSpec)})
        synthesize(a.output, spec, progress=not a.quiet)
    except (ValueError, OSError) as e:  # StoreError, a held lock, unknown grid, a bad value
        p.exit(2, f"synth: error: {e}\n")
    except KeyboardInterrupt:
        p.exit(130, f"synth: interrupted: nothing written at {a.output}\n")
    print(f"wrote {spec.n} spectra to {a.output}")
    return 0


# Tool commands, imported only when called: "module:function" under spectra_lightning.
TOOLS = {
    "synth": "cli:synth_main",
    "verify": "verify:main",
    "ingest": "ingest:main",
    "encode": "encode:main",
    "analyze": "analyze:main",
    "sweep": "sweep:main",
    "sweep-report": "sweep:report_main",
    "explore": "explore:main",
}


def run_tool(name: str, argv: list[str]) -> int:
    module, function = TOOLS[name].split(":")
    return getattr(importlib.import_module(f"spectra_lightning.{module}"), function)(argv)


OVERVIEW = f"""usage: {PROG} COMMAND [options]

Train and read autoencoders of stellar spectra (Sedaghat et al. 2021).

training (LightningCLI; see `COMMAND --help`, `--print_config`):
  fit        train, e.g. `fit --config experiments/quickstart.yaml`
  validate   evaluate a checkpoint on the validation split (--ckpt_path)
  test       evaluate on the test split
  predict    run the model over the validation split

tools:
  synth      write a synthetic HARPS-like store with known labels
  verify     check a store: every row against its checksum, duplicate ids
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
    args = list(sys.argv[1:] if args is None else args)
    if not args or args[0] in ("-h", "--help"):
        print(OVERVIEW)
        return 0
    if args[0] not in TOOLS and args[0] not in TRAINER_COMMANDS:
        print(f"spectra_lightning: unknown command {args[0]!r}\n\n{OVERVIEW}", file=sys.stderr)
        return 2
    if args[0] in TENSOR_COMMANDS:  # before torch allocates: a quarter of a CPU step was page faults
        keep_freed_memory()
    if args[0] in TOOLS:
        return run_tool(args[0], args[1:])
    from .trainer_cli import run  # torch and Lightning: only for the training commands

    return run(args, from_argv)
