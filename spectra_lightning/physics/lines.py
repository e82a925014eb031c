"""Named wavelength windows around strong stellar lines (Å, air; in vacuum on request): the one table that
figures zoom into and the explorer offers as presets."""

from __future__ import annotations

import numpy as np

from spectra_lightning.physics.grid import air_to_vacuum

WINDOWS: dict[str, tuple[float, float]] = {
    "Ca II H&K": (3925.0, 3975.0),
    "Hβ": (4851.0, 4871.0),
    "Mg b": (5160.0, 5190.0),
    "Fe I 5270-5330": (5265.0, 5300.0),
    "Fe I 5400": (5390.0, 5435.0),
    "Na D": (5885.0, 5900.0),
    "Hα": (6552.0, 6573.0),
}


def windows_within(lo: float, hi: float, medium: str = "air") -> dict[str, tuple[float, float]]:
    """The windows that lie wholly inside ``lo``–``hi`` Å, in wavelength order, in ``medium`` (air or vacuum)."""
    out = {}
    for name, (a, b) in WINDOWS.items():
        if medium == "vacuum":
            a, b = (float(x) for x in air_to_vacuum(np.array([a, b])))
        if a >= lo and b <= hi:
            out[name] = (a, b)
    return out
