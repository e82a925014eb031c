"""MaNGA spaxel spectra as the DRP cubes and the DAP's test files give them: image HDUs ``WAVE`` (L,), ``FLUX``,
``IVAR``, ``MASK`` (N × L) and ``Z`` (N,). One spectrum per row (ids ``…_<row>``); vacuum, 1e-4 dex. The rows are
spaxels of one galaxy: one object (the header's ``MANGAID``, else the file), so a split never divides them. A pixel is
bad where the inverse variance is 0 or the DRP mask has any bit set. ``SRES`` (the resolution) is not kept.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from astropy.io import fits

from spectra_lightning.ingest.readers.survey import Spectrum, base_meta, extension_names, good_ivar, survey_spectrum

PRODUCT = "manga"


def detect(hdul: fits.HDUList, header: fits.Header) -> bool:
    """Is it this format (``header``: the primary header, perhaps only :data:`~.archive.PRIMARY_CARDS` of it)?"""
    names = extension_names(hdul)
    return {"WAVE", "FLUX", "IVAR", "MASK"} <= names and hdul["FLUX"].data is not None and hdul["FLUX"].data.ndim == 2


def read(hdul: fits.HDUList, path: Path) -> list[Spectrum]:
    wave = np.asarray(hdul["WAVE"].data, np.float64)
    flux = np.asarray(hdul["FLUX"].data, np.float64)
    ivar = np.asarray(hdul["IVAR"].data, np.float64)
    mask = np.asarray(hdul["MASK"].data)
    galaxy = f"manga:{hdul[0].header.get('MANGAID') or path.name.split('.')[0]}"
    z = np.asarray(hdul["Z"].data, np.float64) if "Z" in extension_names(hdul) else np.full(len(flux), np.nan)
    return [
        survey_spectrum(
            wave,
            flux[i],
            good_ivar(ivar[i], flux[i], mask[i] != 0),
            "vacuum",
            1e-4,
            base_meta(path, PRODUCT, f"_{i}", z=z[i], row=i, object=galaxy),
        )
        for i in range(len(flux))
    ]
