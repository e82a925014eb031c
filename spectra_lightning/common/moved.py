"""Module paths that moved in 0.5 (the package in wings), kept importing for one release: a config's or a
user's ``spectra_lightning.nets.ConvAutoencoder`` still names ``spectra_lightning.model.nets.ConvAutoencoder``.

Importing an old path gives the new module itself (the same classes: ``isinstance`` and the part checks hold)
with a :class:`~spectra_lightning.common.errors.MovedWarning`; a checkpoint's class paths are rewritten silently
(:func:`current`, in ``model.legacy``): a checkpoint is not the user's to edit.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

from spectra_lightning.common.errors import MovedWarning

PACKAGE = "spectra_lightning"
MOVED = {  # old module under spectra_lightning -> its module since 0.5
    "errors": "common.errors",
    "files": "common.files",
    "allocator": "common.allocator",
    "run_layout": "common.run_layout",
    "grid": "physics.grid",
    "grid_kernel": "physics.grid_kernel",
    "jit": "physics.jit",
    "lines": "physics.lines",
    "lock": "store.lock",
    "verify": "store.verify",
    "batch": "store.batch",
    "labels": "ingest.label_table",
    "synth": "ingest.synth",
    "readers": "ingest.readers",
    "module": "model.module",
    "nets": "model.nets",
    "losses": "model.losses",
    "kl_schedules": "model.kl_schedules",
    "parts": "model.parts",
    "checkpoints": "model.checkpoints",
    "legacy": "model.legacy",
    "encode": "analysis.encode",
    "analyze": "analysis.analyze",
    "sweep": "analysis.sweep",
    "plots": "analysis.plots",
    "codes": "analysis.codes",
    "loggers": "analysis.loggers",
    "explore": "explorer.command",
    "explorer_server": "explorer.server",
    "headless": "explorer.headless",
    "trainer_cli": "cli.training",
}


def current(name: str) -> str:
    """A dotted name (a module, or a class in one) with a moved module replaced by its new one; others unchanged."""
    if not name.startswith(PACKAGE + "."):
        return name
    rest = name[len(PACKAGE) + 1 :]
    for old, new in MOVED.items():
        if rest == old or rest.startswith(old + "."):
            return f"{PACKAGE}.{new}{rest[len(old) :]}"
    return name


def names_moved_to(package: str, names: dict[str, str]):
    """A package's ``__getattr__`` (PEP 562) that finds each of ``names`` in the submodule it names (a module that
    became this package in 0.5 had them), with a :class:`MovedWarning`; imported only when asked for."""

    def __getattr__(name: str):
        if name not in names:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        new = f"{package}.{names[name]}"
        warnings.warn(f"'{package}.{name}' is now '{new}.{name}'", MovedWarning, stacklevel=2)
        return getattr(importlib.import_module(new), name)

    return __getattr__


class _MovedFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds an old module path and loads it as the new module (warning once per old path)."""

    def find_spec(self, fullname, path=None, target=None):
        return importlib.util.spec_from_loader(fullname, self) if current(fullname) != fullname else None

    def create_module(self, spec):
        new = current(spec.name)
        warnings.warn(f"'{spec.name}' is now '{new}': update the import or config", MovedWarning, stacklevel=2)
        return importlib.import_module(new)

    def exec_module(self, module) -> None:
        pass  # the new module ran when it was imported


def install() -> None:
    """Let the old module paths import (once per process)."""
    if not any(isinstance(f, _MovedFinder) for f in sys.meta_path):
        sys.meta_path.append(_MovedFinder())
