"""The command line, on top of every wing: ``python -m spectra_lightning <command>``. Nothing imports it."""

from spectra_lightning.cli.commands import main

__all__ = ["main"]
