"""APOGEE ``apStar`` files (DR17): image HDUs 1 FLUX, 2 ERR (σ), 3 MASK, each rows × 8,575 on a log-linear grid
(``CRVAL1`` + ``CDELT1``·i in log10 Å, vacuum, 15,100–17,000 Å). Row 0 is the combined spectrum (the one read;
the visits in rows 2+ are not). Inverse variance is 1/σ²; a pixel is bad where σ is not positive or the mask has
any of the bits 0–7 (BADPIX, CRPIX, SATPIX, UNFIXABLE, BADDARK, BADFLAT, BADERR, NOSKY). Labels: the primary
header's RV_TEFF / RV_LOGG / RV_FEH (the Doppler RV fit's grid values) and VHELIO as ``rv`` (km/s).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from astropy.io import fits

from spectra_lightning.ingest.readers.survey import Spectrum, base_meta, good_ivar, survey_spectrum

PRODUCT = "apstar"
BAD_BITS = 0xFF


def detect(hdul: fits.HDUList, header: fits.Header) -> bool:
    """Is it this format (``header``: the primary header, perhaps only :data:`~.archive.PRIMARY_CARDS` of it)?"""
    if "RV_TEFF" not in header and "APRED_VERSION" not in header and "NVISITS" not in header:
        return False
    return len(hdul) > 3 and str(hdul[1].header.get("CTYPE1", "")).upper() == "LOG-LINEAR"


def read(hdul: fits.HDUList, path: Path) -> list[Spectrum]:
    h0, h1 = hdul[0].header, hdul[1].header
    flux = np.atleast_2d(np.asarray(hdul[1].data, np.float64))[0]
    err = np.atleast_2d(np.asarray(hdul[2].data, np.float64))[0]
    mask = np.atleast_2d(np.asarray(hdul[3].data, np.int64))[0]
    with np.errstate(divide="ignore", invalid="ignore"):
        ivar = np.where(err > 0, 1.0 / err**2, 0.0)
    i = np.arange(flux.size, dtype=np.float64) + 1 - h1.get("CRPIX1", 1)
    step = float(h1["CDELT1"])
    wave = 10 ** (float(h1["CRVAL1"]) + step * i)
    meta = base_meta(
        path,
        PRODUCT,
        object=str(h0.get("OBJID", "")),
        teff=h0.get("RV_TEFF"),
        logg=h0.get("RV_LOGG"),
        feh=h0.get("RV_FEH"),
        rv=float(h0.get("VHELIO", np.nan)),
        snr=float(h0.get("SNR", np.nan)),
    )
    return [survey_spectrum(wave, flux, good_ivar(ivar, flux, (mask & BAD_BITS) != 0), "vacuum", step, meta)]
