"""DESI coadds: cameras B, R, Z each with ``*_WAVELENGTH`` (L_c,), ``*_FLUX``, ``*_IVAR``, ``*_MASK`` (fibres ×
L_c) on one linear 0.8 Å lattice (vacuum) that the cameras share where they overlap. Each fibre is one spectrum
(ids ``…_<TARGETID>``), the cameras merged onto the union of their pixels: where two cover a pixel the flux is
their inverse-variance-weighted mean and the inverse variances add. A pixel is bad where the inverse variance is 0
or the mask is non-zero. ``*_RESOLUTION`` is not kept. The redshift comes from a ``REDSHIFTS`` / ``ZBEST`` table
when the file has one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from astropy.io import fits

from spectra_lightning.ingest.readers.survey import (
    RejectError,
    Spectrum,
    base_meta,
    extension_names,
    good_ivar,
    survey_spectrum,
)

PRODUCT = "desi"
CAMERAS = ("B", "R", "Z")
STEP = 0.8


def detect(hdul: fits.HDUList, header: fits.Header) -> bool:
    """Is it this format (``header``: the primary header, perhaps only :data:`~.archive.PRIMARY_CARDS` of it)?"""
    names = extension_names(hdul)
    return all(f"{c}_{k}" in names for c in CAMERAS for k in ("WAVELENGTH", "FLUX", "IVAR"))


def _redshifts(hdul: fits.HDUList) -> dict:
    names = extension_names(hdul)
    table = next((hdul[n].data for n in ("REDSHIFTS", "ZBEST") if n in names), None)
    if table is None:
        return {}
    cols = {c.upper(): c for c in table.columns.names}
    return {int(r[cols["TARGETID"]]): (float(r[cols["Z"]]), float(r[cols.get("ZERR", cols["Z"])])) for r in table}


def read(hdul: fits.HDUList, path: Path) -> list[Spectrum]:
    waves = [np.asarray(hdul[f"{c}_WAVELENGTH"].data, np.float64) for c in CAMERAS]
    lo = min(w[0] for w in waves)
    for c, w in zip(CAMERAS, waves):  # the cameras are merged pixel by pixel: each must sit on the one lattice
        off = (w - lo) / STEP
        if w.size < 2 or np.max(np.abs(off - np.rint(off))) > 1e-3 or np.any(np.diff(np.rint(off)) != 1):
            step = float(np.median(np.diff(w))) if w.size > 1 else float("nan")
            raise RejectError(
                f"DESI camera {c}: pixels {step:g} Å apart or off the {STEP} Å lattice the cameras are merged on"
            )
    n = int(round((max(w[-1] for w in waves) - lo) / STEP)) + 1
    wave = lo + STEP * np.arange(n)
    fibres = hdul["FIBERMAP"].data
    ids = np.asarray(fibres["TARGETID"]) if fibres is not None else np.arange(len(hdul["B_FLUX"].data))
    z = _redshifts(hdul)
    out = []
    for f, target in enumerate(ids):
        num, den = np.zeros(n), np.zeros(n)
        for c, w in zip(CAMERAS, waves):
            flux = np.asarray(hdul[f"{c}_FLUX"].data[f], np.float64)
            mask = hdul[f"{c}_MASK"].data[f] != 0 if f"{c}_MASK" in hdul else None
            ivar = good_ivar(hdul[f"{c}_IVAR"].data[f], flux, mask)
            idx = np.rint((w - lo) / STEP).astype(int)
            num[idx] += np.where(ivar > 0, flux * ivar, 0.0)
            den[idx] += ivar
        with np.errstate(invalid="ignore", divide="ignore"):
            flux = np.where(den > 0, num / den, np.nan)
        zz, zerr = z.get(int(target), (None, None))
        meta = base_meta(
            path, PRODUCT, f"_{int(target)}", z=zz, z_err=zerr, targetid=int(target), object=f"desi:{int(target)}"
        )
        out.append(survey_spectrum(wave, flux, den, "vacuum", None, meta))
    return out
