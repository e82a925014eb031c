"""LAMOST low resolution (``spec-*.fits``) and medium resolution (``med-*.fits``).

- Low resolution, DR1–DR7: a primary image of 5 rows (flux, invvar, wavelength, andmask, ormask) — where the
  wavelength row is unusable (not finite, not increasing, not optical Å: some DR1 files), the header's solution
  ``COEFF0``/``COEFF1`` (log10 λ) stands in for it; DR8 and later: an HDU ``COADD`` table (FLUX, IVAR,
  WAVELENGTH, ANDMASK, ...). Vacuum, 1e-4 dex, relative flux. Labels
  from the primary header: CLASS, SUBCLASS, Z, Z_ERR.
- Medium resolution: tables ``COADD_B`` and ``COADD_R`` (FLUX, IVAR, LOGLAM, ANDMASK), 1e-5 dex. The two arms
  (4950–5350 and 6300–6800 Å) are **two spectra** (ids ``…_B`` and ``…_R``): they share no pixel and a grid
  spanning both would be nine-tenths gap. Per-exposure tables are not read.

A pixel is bad where the inverse variance is 0 or ``andmask`` is non-zero.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from astropy.io import fits

from spectra_lightning.ingest.readers.archive import RejectError
from spectra_lightning.ingest.readers.survey import (
    Spectrum,
    base_meta,
    column,
    extension_names,
    good_ivar,
    header_log_wave,
    survey_spectrum,
    usable_wave,
)

LRS, MRS = "lamost_lrs", "lamost_mrs"


def detect(hdul: fits.HDUList, header: fits.Header) -> bool:
    """Is it this format (``header``: the primary header, perhaps only :data:`~.archive.PRIMARY_CARDS` of it)?"""
    if str(header.get("TELESCOP", "")).strip().upper() != "LAMOST":
        return False
    names = extension_names(hdul)
    data = hdul[0].data
    lrs_image = data is not None and data.ndim == 2 and data.shape[0] in (5, 6)
    return lrs_image or "COADD" in names or {"COADD_B", "COADD_R"} <= names


def _labels(header: fits.Header) -> dict:
    def get(key):
        v = header.get(key)
        return None if v is None or (isinstance(v, str) and not v.strip()) else v

    return {
        "class": get("CLASS"),
        "subclass": get("SUBCLASS"),
        "z": get("Z"),
        "z_err": get("Z_ERR"),
        "object": str(get("DESIG") or get("OBJNAME") or ""),
        "mjd": float(header.get("MJD", np.nan)),
    }


def read(hdul: fits.HDUList, path: Path) -> list[Spectrum]:
    header = hdul[0].header
    names = extension_names(hdul)
    medium = "vacuum" if header.get("VACUUM", True) else "air"
    if {"COADD_B", "COADD_R"} <= names:
        out = []
        for arm in ("B", "R"):
            data = hdul[f"COADD_{arm}"].data
            flux = np.asarray(column(data, "FLUX"), np.float64)
            bad = np.asarray(column(data, "ANDMASK")) != 0
            ivar = good_ivar(column(data, "IVAR"), flux, bad)
            wave = 10 ** np.asarray(column(data, "LOGLAM"), np.float64)
            meta = base_meta(path, MRS, f"_{arm}", **_labels(header))
            out.append(survey_spectrum(wave, flux, ivar, medium, 1e-5, {**meta, "arm": arm}))
        return out
    if "COADD" in names:  # DR8+: one row of arrays
        data = hdul["COADD"].data
        flux = np.asarray(column(data, "FLUX")[0], np.float64)
        wave = np.asarray(column(data, "WAVELENGTH")[0], np.float64)
        bad = np.asarray(column(data, "ANDMASK")[0]) != 0
        ivar = good_ivar(column(data, "IVAR")[0], flux, bad)
    else:
        rows = np.asarray(hdul[0].data, np.float64)
        flux, ivar, wave, andmask = rows[0], rows[1], rows[2], rows[3]
        ivar = good_ivar(ivar, flux, andmask != 0)
        if not usable_wave(wave):
            solution = header_log_wave(header, len(flux))
            if solution is None or not usable_wave(solution):
                raise RejectError("its wavelength row is unusable and its header has no COEFF0/COEFF1 solution")
            wave = solution
    return [survey_spectrum(wave, flux, ivar, medium, 1e-4, base_meta(path, LRS, **_labels(header)))]
