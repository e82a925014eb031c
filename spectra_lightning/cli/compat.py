"""Configs written before 0.2 named the top-level folders as packages (``class_path: data_modules.X``): for the
training commands, those names stand in for ``spectra_lightning.data_modules`` and ``spectra_lightning.callbacks``
(with a warning) unless another installed package owns them. Module paths that moved in 0.5 are
:mod:`spectra_lightning.common.moved`'s."""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
import warnings
from pathlib import Path

from spectra_lightning.common.errors import MovedWarning

MOVED_PACKAGES = {"callbacks": "spectra_lightning.callbacks", "data_modules": "spectra_lightning.data_modules"}
REPO = Path(__file__).resolve().parents[2]  # where the folders data_modules/ and callbacks/ lie in a checkout


class _MovedPackage(types.ModuleType):
    """Stands in for a package that moved: ``callbacks.X`` warns once and is ``spectra_lightning.callbacks.X``."""

    def __init__(self, old: str, new: str):
        super().__init__(old)
        self.__path__: list[str] = []  # a package, so `old.submodule` fails as "no module" rather than oddly
        self._new = new

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        warnings.warn(
            f"'{self.__name__}.{name}' is now '{self._new}.{name}': update the config", MovedWarning, stacklevel=2
        )
        return getattr(importlib.import_module(self._new), name)


def alias_moved_packages() -> None:
    """Let old configs' class paths resolve, unless another installed package owns the old name."""
    for old, new in MOVED_PACKAGES.items():
        if old in sys.modules:
            continue
        try:
            spec = importlib.util.find_spec(old)
        except (ImportError, ValueError):
            spec = None
        if spec is None or (spec.origin and Path(spec.origin).resolve().parent.parent == REPO):
            sys.modules[old] = _MovedPackage(old, new)
