"""What every survey reader shares: the spectrum it returns, its labels, and the bad-pixel rule.

A survey file may hold several spectra (MaNGA rows, DESI fibres, LAMOST's two medium-resolution arms);
its reader returns a list of :class:`~spectra_lightning.ingest.readers.archive.Spectrum`, one per spectrum, each
with its own id.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from spectra_lightning.ingest.readers.archive import RejectError, Spectrum


def survey_spectrum(
    wave: np.ndarray, flux: np.ndarray, ivar: np.ndarray, medium: str, log_step: float | None, meta: dict
) -> Spectrum:
    """One spectrum of a survey file, as the file gives it: ``wave (M,)`` Å in ``medium``; ``flux (M,)`` in the
    file's units; ``ivar (M,)`` in the flux's units⁻², 0 where a pixel is bad (zero inverse variance in the file,
    or flagged by its bad-pixel mask, see each reader); ``log_step`` the constant step of log10 λ when the file's
    grid is logarithmic (None for linear grids); ``meta`` as :func:`base_meta` fills it (its ``product``)."""
    return Spectrum(wave, flux, ivar, str(meta.get("product", "")), meta, medium, log_step)


def extension_names(hdul) -> set[str]:
    """The upper-case names of a file's extensions. Not the primary's: its name is its header's EXTNAME, and
    asking for it parses every card of a header that ``archive.open_hdus`` read only in part (~3,000 cards in an
    ESO file: most of a reader's time, ``benchmarks/ingest_speed.py``)."""
    return {h.name.upper() for i, h in enumerate(hdul) if i}


LABEL_KEYS = ("z", "z_err", "class", "subclass", "teff", "logg", "feh")


def base_meta(path: Path, product: str, suffix: str = "", **values) -> dict:
    """The metadata every reader fills: id (the file's name without extensions, ``suffix`` for its n-th
    spectrum), source, product, and the labels (NaN / "" unless given)."""
    name = path.name
    for ext in (".gz", ".fits", ".fit"):
        name = name[: -len(ext)] if name.lower().endswith(ext) else name
    meta: dict = {"id": name + suffix, "object": "", "source": str(path), "product": product}
    for key in LABEL_KEYS:
        meta[key] = "" if key in ("class", "subclass") else np.nan
    for key, value in values.items():
        if value is None:
            continue
        if isinstance(value, (bytes, np.bytes_)):
            value = value.decode(errors="replace")
        meta[key] = value.strip() if isinstance(value, str) else (float(value) if key in LABEL_KEYS else value)
    return meta


def sky_object(ra: float | None, dec: float | None) -> str:
    """An object name from a sky position rounded to 1″ (``"sky:RA″:DEC″"``): repeat spectra of one target share it;
    "" without a finite position."""
    if ra is None or dec is None or not (np.isfinite(ra) and np.isfinite(dec)):
        return ""
    return f"sky:{round(float(ra) * 3600) % (360 * 3600)}:{round(float(dec) * 3600):+d}"


def good_ivar(ivar: np.ndarray, flux: np.ndarray, bad: np.ndarray | None = None) -> np.ndarray:
    """``ivar`` with 0 wherever a pixel cannot be used: non-finite or non-positive ivar, non-finite flux, or
    ``bad`` (the file's mask, already reduced to a boolean)."""
    ivar = np.asarray(ivar, np.float64)
    ok = np.isfinite(ivar) & (ivar > 0) & np.isfinite(flux)
    if bad is not None:
        ok &= ~np.asarray(bad, bool)
    return np.where(ok, ivar, 0.0)


def header_log_wave(header, n: int) -> np.ndarray | None:
    """``(n,)`` Å from a header's logarithmic wavelength solution — ``COEFF0``/``COEFF1`` (SDSS, LAMOST) or an IRAF
    axis ``CRVAL1``/``CD1_1`` (or ``CDELT1``) with ``DC-FLAG = 1`` — or None when it has neither."""
    start, step = header.get("COEFF0"), header.get("COEFF1")
    crpix = 1.0
    if start is None or step is None:
        if header.get("DC-FLAG") != 1:
            return None
        start, step = header.get("CRVAL1"), header.get("CD1_1", header.get("CDELT1"))
        crpix = float(header.get("CRPIX1", 1.0))
        if start is None or step is None:
            return None
    return np.asarray(10 ** (float(start) + (np.arange(n) + 1 - crpix) * float(step)), np.float64)


def usable_wave(wave: np.ndarray) -> bool:
    """A wavelength row a spectrum can be placed with: finite, strictly increasing, within 1,000–100,000 Å."""
    return bool(np.all(np.isfinite(wave)) and np.all(np.diff(wave) > 0) and wave[0] > 1e3 and wave[-1] < 1e5)


def column(data, *names: str):
    """The first of ``names`` that a FITS table has (case-insensitive), or a :class:`RejectError`."""
    have = {n.lower(): n for n in data.columns.names}
    for name in names:
        if name.lower() in have:
            return data[have[name.lower()]]
    raise RejectError(f"no column {' / '.join(names)} (has {', '.join(data.columns.names)})")
