"""SDSS / BOSS / eBOSS ``spec-PLATE-MJD-FIBER.fits``, lite and full.

HDU 1 (``COADD``): ``flux`` (1e-17 erg/cm²/s/Å), ``loglam`` (log10 Å, vacuum, a 1e-4 dex lattice), ``ivar``,
``and_mask``; HDU 2 (``SPECOBJ`` / ``SPALL``, unnamed in some files): ``CLASS``, ``SUBCLASS``, ``Z``, ``Z_ERR``,
``ZWARNING``, ``ELODIE_TEFF`` / ``_LOGG`` / ``_FEH``. A pixel is bad where ``ivar`` is 0 or ``and_mask`` has any
bit set (bad in every exposure). A full file's per-exposure HDUs are not read: the coadd is the spectrum.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from astropy.io import fits

from spectra_lightning.ingest.readers.survey import (
    RejectError,
    Spectrum,
    base_meta,
    column,
    good_ivar,
    sky_object,
    survey_spectrum,
)

PRODUCT = "sdss"


def detect(hdul: fits.HDUList, header: fits.Header) -> bool:
    """Is it this format (``header``: the primary header, perhaps only :data:`~.archive.PRIMARY_CARDS` of it)?"""
    if len(hdul) < 2 or not isinstance(hdul[1], fits.BinTableHDU) or hdul[1].columns is None:
        return False
    names = {n.lower() for n in hdul[1].columns.names}
    return {"flux", "loglam"} <= names  # without ivar too: then refused, not read as a table of unknown weights


def _labels(hdul: fits.HDUList) -> dict:
    if len(hdul) < 3 or not isinstance(hdul[2], fits.BinTableHDU) or len(hdul[2].data) == 0:
        return {}
    row = hdul[2].data[0]
    names = {n.upper() for n in hdul[2].columns.names}

    def get(key):
        return row[key] if key in names else None

    values = {
        # the object, for splits that keep repeat spectra together: the plug position rounded to 1″ (every file has
        # it; THING_ID is missing from older files, so one star would be two objects across them)
        "object": sky_object(get("PLUG_RA"), get("PLUG_DEC")),
        "class": get("CLASS"),
        "subclass": get("SUBCLASS"),
        "z": get("Z"),
        "z_err": get("Z_ERR"),
        "zwarning": get("ZWARNING"),
        "teff": get("ELODIE_TEFF"),
        "logg": get("ELODIE_LOGG"),
        "feh": get("ELODIE_FEH"),
    }
    if values["teff"] is not None and not float(values["teff"]) > 0:  # ELODIE fits: 0 where none was made
        values.update(teff=None, logg=None, feh=None)
    return {k: (int(v) if k == "zwarning" and v is not None else v) for k, v in values.items()}


def _object_from_header(header) -> str:
    return sky_object(header.get("PLUG_RA", header.get("RA")), header.get("PLUG_DEC", header.get("DEC")))


def read(hdul: fits.HDUList, path: Path) -> list[Spectrum]:
    data = hdul[1].data
    flux = np.asarray(column(data, "flux"), np.float64)
    loglam = np.asarray(column(data, "loglam"), np.float64)
    names = {n.lower() for n in data.columns.names}
    if "ivar" not in names:
        raise RejectError("an SDSS spectrum without its ivar column: the pixels' weights are unknown")
    bad = np.asarray(column(data, "and_mask")) != 0 if "and_mask" in names else None
    ivar = good_ivar(column(data, "ivar"), flux, bad)
    meta = base_meta(path, PRODUCT, **_labels(hdul))
    header = hdul[0].header
    if not meta["object"]:  # a lite file without its SPECOBJ row: the primary header's
        meta["object"] = _object_from_header(header)
    meta.update(plate=header.get("PLATEID", -1), mjd=float(header.get("MJD", np.nan)), fiber=header.get("FIBERID", -1))
    return [survey_spectrum(10**loglam, flux, ivar, "vacuum", 1e-4, meta)]
