"""Readers for archive spectra (astropy only): FITS file -> wavelength, flux, metadata.

Supported products, detected from the file's content, never its name:

* ``adp``   ESO Phase-3 1-D spectrum: a BinTable with one row of array columns WAVE,
            FLUX (and ERR, used as inverse variance only where finite and positive);
* ``s1d``   HARPS DRS s1d: a 1-D primary image with CRVAL1/CDELT1/CRPIX1;
* ``e2ds``  HARPS DRS e2ds (orders × pixels) with the wavelength and blaze files named by
            its ``ESO DRS CAL TH FILE`` / ``ESO DRS BLAZE FILE`` keywords, in its directory;
            orders are de-blazed and merged after the BERV correction (the s1d's frame);
* ``image1d`` / ``table1d``: any other 1-D spectrum, as an image with a linear WCS (log-linear where IRAF's
            ``DC-FLAG = 1``: CRVAL1 and CD1_1 in log10 λ; vacuum where ``VACUUM = T``) or a
            table with wavelength and flux columns; Å or nm, told by the header units
            (CUNIT1, TUNITn, CTYPE1) or, failing those, by the values.

Readers never write anything; :class:`RejectError` carries a one-line reason.
"""

from __future__ import annotations

import gzip
import re
import zlib
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.io import fits

from spectra_lightning.physics.grid import C_KMS

try:  # how fits.open reads one HDU (and its file); used to read all but the needed primary cards lazily
    from astropy.io.fits.file import _File
    from astropy.io.fits.hdu.base import _BaseHDU
except ImportError:  # a future astropy without them: every header is parsed in full (slower, same result)
    _File = _BaseHDU = None

WAVE_NAMES = ("wave", "wavelength", "lambda", "wavelength_air", "loglam")
FLUX_NAMES = ("flux", "flux_reduced", "spec", "fluxes")


class RejectError(Exception):
    """An input that cannot be ingested; ``str(e)`` is the one-line reason."""


class NotASpectrum(RejectError):
    """A valid archive product that is not a science spectrum (CCF, calibration frame)."""


CALIBRATION_OBJECTS = ("WAVE", "LAMP", "FLAT", "BIAS", "DARK", "THAR")

# Every primary-header card the archive readers and the survey formats' detection use. An ESO archive header has
# ~3,000 cards and astropy's fits.open parses all of them (70-80 % of the time it takes to open an ADP or DRS s1d
# file); the readers parse only these (same values, tested against the full parse for every real file).
PRIMARY_CARDS = (
    "TELESCOP",  # the survey formats' detection: LAMOST
    "RV_TEFF",  # APOGEE apStar
    "APRED_VERSION",
    "NVISITS",
    "ARCFILE",
    "OBJECT",
    "INSTRUME",
    "DATE-OBS",
    "MJD-OBS",
    "EXPTIME",
    "AIRMASS",
    "SNR",
    "SN50",
    "CRVAL1",
    "CDELT1",
    "CD1_1",
    "CRPIX1",
    "CUNIT1",
    "CTYPE1",
    "DC-FLAG",  # IRAF: 1 when the axis is log10 λ
    "VACUUM",  # SDSS-made images: True when the wavelengths are vacuum's
    "ESO TEL AIRM START",
    "ESO TEL AIRM END",
    "ESO DRS SPE EXT SN50",
    "ESO DRS BERV",
    "ESO DRS CCF RVC",
    "ESO DRS CCF MASK",
    "ESO DRS CAL TH FILE",
    "ESO DRS BLAZE FILE",
)
_SHORT_CARDS = np.array([k.ljust(8).encode() for k in PRIMARY_CARDS if " " not in k], "S8")
_HIERARCH_CARDS = re.compile(
    r"HIERARCH +(?:" + "|".join(r" +".join(k.split()) for k in PRIMARY_CARDS if " " in k) + r") *="
)


@dataclass
class Spectrum:
    """A spectrum as read, whatever its format.

    ``wave (M,)`` float64 Å in ``medium`` (``"air"``: the archive formats; ``"vacuum"``: the surveys') and
    ``flux (M,)`` float32 or float64 in the file's units, or ``(orders, M)`` for an e2ds with its blaze as per-pixel
    weights in ``ivar``; for a 1-D spectrum ``ivar (M,)`` is its inverse variance where the file gives one (ESO ADP
    ``ERR`` as 1/σ², the survey formats: 0 where a pixel is bad), else None. ``product`` names the format
    (``adp``, ``s1d``, ``e2ds``, ``image1d``, ``table1d``, ``sdss``, ``lamost_lrs`` ...); ``log_step`` the constant
    step of log10 λ of a file on a logarithmic grid (None otherwise); ``meta`` its ``id``, ``object``, ``source``
    and the labels the file carries."""

    wave: np.ndarray
    flux: np.ndarray
    ivar: np.ndarray | None
    product: str
    meta: dict = field(default_factory=dict)
    medium: str = "air"
    log_step: float | None = None

    def __post_init__(self) -> None:
        shapes = {"wave": np.shape(self.wave), "flux": np.shape(self.flux)}
        if self.ivar is not None:
            shapes["ivar"] = np.shape(self.ivar)
        if len(set(shapes.values())) > 1:
            raise RejectError(
                "arrays of unequal length: " + ", ".join(f"{k} {v}" for k, v in shapes.items()) + " (a malformed file)"
            )


ARCHIVE_PRODUCTS = ("adp", "s1d", "e2ds", "image1d", "table1d")  # this module's: the rest are survey formats'


def _num(header, *keys):
    for k in keys:
        v = header.get(k)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return float(v)
    return float("nan")


def header_meta(header: fits.Header, path: Path) -> dict:
    """Per-spectrum metadata from a (primary) header; NaN or "" when absent."""
    name = path.name
    for ext in (".gz", ".fits", ".fit", ".fts"):
        name = name[: -len(ext)] if name.lower().endswith(ext) else name
    arcfile = str(header.get("ARCFILE", "") or "").strip()
    ident = arcfile[:-5] if arcfile.lower().endswith(".fits") else arcfile
    start, end = _num(header, "ESO TEL AIRM START"), _num(header, "ESO TEL AIRM END")
    airmass = _num(header, "AIRMASS")
    if np.isnan(airmass) and np.isfinite(start):
        airmass = np.nanmean([start, end])
    return {
        "id": ident or name,
        "object": str(header.get("OBJECT", "") or "").strip(),
        "instrument": str(header.get("INSTRUME", "") or "").strip(),
        "date_obs": str(header.get("DATE-OBS", "") or "").strip(),
        "mjd": _num(header, "MJD-OBS"),
        "exptime": _num(header, "EXPTIME"),
        "snr": _num(header, "ESO DRS SPE EXT SN50", "SNR", "SN50"),
        "airmass": airmass,
        "berv": _num(header, "ESO DRS BERV"),
        "drs_rv": _num(header, "ESO DRS CCF RVC"),
        "source": str(path),
    }


@lru_cache(maxsize=256)
def _to_angstrom_factor(unit: str) -> float | None:
    """Å per unit of a header unit string; None when it does not parse as a length (parsing is slow)."""
    text = unit.strip().lower()
    text = {"angstrom": "Angstrom", "angstroms": "Angstrom", "a": "Angstrom", "aa": "Angstrom"}.get(text, text)
    try:
        q = u.Unit(text)
    except ValueError:
        return None
    return float(q.to(u.AA)) if q.physical_type == "length" else None


def to_angstrom(wave: np.ndarray, unit: str | None, where: str) -> np.ndarray:
    """Convert to Å using a header unit when it parses, else the values' range."""
    factor = _to_angstrom_factor(unit) if unit else None
    if factor is not None:
        return wave if factor == 1.0 else wave * factor
    if not np.isfinite(wave).any():
        raise RejectError(f"{where}: no finite wavelengths")
    lo, hi = np.nanmin(wave), np.nanmax(wave)
    if 2500 <= lo and hi <= 12000:
        return wave
    if 250 <= lo and hi <= 1200:
        return wave * _to_angstrom_factor("nm")
    raise RejectError(f"{where}: cannot tell the wavelength unit ({lo:.4g}–{hi:.4g}, no unit keyword)")


def _native(values) -> np.ndarray:
    """Flux in native byte order; float32 stays float32 (the grid work widens it pixel by pixel, so no
    float64 copy of every pixel is made), anything else becomes float64."""
    values = np.asarray(values)
    return values.astype(np.float32 if values.dtype.kind == "f" and values.dtype.itemsize == 4 else float)


def _linear_wcs(header, n: int) -> np.ndarray | None:
    crval = header.get("CRVAL1")
    cdelt = header.get("CDELT1", header.get("CD1_1"))
    if crval is None or cdelt is None:
        return None
    crpix = header.get("CRPIX1", 1.0)
    wave = np.arange(n, dtype=float)  # crval + (i + 1 - crpix) * cdelt, in place
    wave += 1 - crpix
    wave *= cdelt
    wave += crval
    return wave


def primary_cards(header_text: str) -> fits.Header:
    """The :data:`PRIMARY_CARDS` of a raw header (80-character cards), each with its CONTINUE cards."""
    if len(header_text) % 80:
        return fits.Header.fromstring(header_text)
    keys = np.frombuffer(header_text.encode("latin-1"), "S8")[::10]  # the keyword field of each card
    first = set(np.flatnonzero(np.isin(keys, _SHORT_CARDS)).tolist())
    first.update(m.start() // 80 for m in _HIERARCH_CARDS.finditer(header_text) if m.start() % 80 == 0)
    take = []
    for i in sorted(first):
        take.append(i)
        while i + 1 < len(keys) and keys[i + 1] == b"CONTINUE":
            i += 1
            take.append(i)
    return fits.Header.fromstring("".join(header_text[80 * i : 80 * i + 80] for i in take))


@contextmanager
def open_hdus(path: Path, all_cards: bool = False):
    """``(primary header, HDU list)`` of a FITS file, read as ``fits.open`` reads it; the header holds only
    :data:`PRIMARY_CARDS` unless ``all_cards`` (the list's own primary HDU keeps its whole header, parsed when a
    survey reader first asks for it)."""
    if not all_cards and _BaseHDU is not None:
        f = _File(path, memmap=False)
        try:
            primary = _primary(f)
            if primary is not None:
                text = getattr(primary, "_header_str", None)  # None when astropy had to parse it in full
                hdul = fits.HDUList()
                # list's own extend, not HDUList's: its update_extend reads the primary's header, which parses every
                # card of it (astropy 8) — the cost this path exists to avoid (benchmarks/ingest_speed.py)
                list.extend(hdul, [primary, *_extensions(f)])
                yield (primary_cards(text) if text else primary.header), hdul
                return
        finally:
            f.close()
    with fits.open(path, memmap=False) as hdul:  # also astropy's own reason for refusing a file
        yield hdul[0].header, hdul


def _primary(f):
    try:
        hdu = _BaseHDU.readfrom(f)
    except (OSError, ValueError, EOFError, fits.VerifyError):
        return None
    return hdu if isinstance(hdu, fits.PrimaryHDU) else None


def _extensions(f):
    while True:
        try:
            yield _BaseHDU.readfrom(f)
        except (EOFError, ValueError, fits.VerifyError):  # the end, or trailing bytes (fits.open: a warning)
            return


FITS_BLOCK = 2880  # bytes: every FITS file is a whole number of these


def truncation(path: str | Path) -> str | None:
    """Why a FITS file (optionally gzip-compressed) is cut short, or None (also for a file that does not start as
    FITS): a gzip stream without its end marker, or a size that is not a whole number of FITS blocks. Reads the
    whole file: meant for files that already failed to read."""
    size, head = 0, b""
    try:
        with open(path, "rb") as f:
            gzipped = f.read(2) == b"\x1f\x8b"
        with gzip.open(path) if gzipped else open(path, "rb") as stream:
            while chunk := stream.read(1 << 22):
                head = head or chunk[:6]
                size += len(chunk)
    except EOFError:
        return f"truncated: its gzip stream ends before the end marker (after {size:,} bytes)"
    except (OSError, zlib.error) as e:
        return f"damaged: {' '.join(str(e).split()) or type(e).__name__}"
    if head == b"SIMPLE" and size % FITS_BLOCK:
        what = "decompressed " if gzipped else ""
        return f"truncated: its {what}size, {size:,} bytes, is not a whole number of {FITS_BLOCK}-byte FITS blocks"
    return None


def read_hdus(primary: fits.Header, hdul: fits.HDUList, path: Path) -> Spectrum:
    """The one spectrum of an archive file (its ``primary`` header: at least :data:`PRIMARY_CARDS`)."""
    meta = header_meta(primary, path)
    hdu0 = hdul[0]
    for hdu in hdul[1:]:
        if isinstance(hdu, fits.BinTableHDU) and hdu.columns is not None:
            names = {c.name.lower(): c.name for c in hdu.columns}
            wcol = next((names[n] for n in WAVE_NAMES if n in names), None)
            fcol = next((names[n] for n in FLUX_NAMES if n in names), None)
            if wcol is None or fcol is None:
                if "wave" in names or "flux" in names:
                    raise RejectError(f"table {hdu.name!r} lacks a {'FLUX' if wcol else 'WAVE'} column")
                continue
            table = hdu.data
            if table is None or len(table) == 0:
                raise RejectError(f"table {hdu.name!r} has no rows")
            unit = hdu.columns[wcol].unit
            if len(table) == 1 and np.ndim(table[wcol][0]) == 1:  # ESO Phase 3: one row of arrays
                wave, flux = np.asarray(table[wcol][0], float), _native(table[fcol][0])
                product = "adp"
            else:
                wave, flux = np.asarray(table[wcol], float).ravel(), _native(table[fcol]).ravel()
                product = "table1d"
            if wcol.lower() == "loglam":
                wave, unit = 10**wave, "Angstrom"
            ivar = None
            if product == "adp" and "err" in names:  # the ESO product's σ per pixel: inverse variance, 0 if unusable
                err = np.asarray(table[names["err"]][0], float)
                usable = np.isfinite(err) & (err > 0)
                # an ERR column without one usable value (all NaN in some archive files) says nothing: no ivar
                ivar = np.where(usable, 1.0 / np.where(usable, err, 1.0) ** 2, 0.0) if usable.any() else None
            return Spectrum(to_angstrom(wave, unit, f"{product} WAVE"), flux, ivar, product, meta)
    if hdu0.data is None:
        raise RejectError("unknown layout: no image data and no table with WAVE/FLUX columns")
    data = _native(hdu0.data)
    if data.ndim == 2 and "ESO DRS CCF MASK" in primary:
        raise NotASpectrum("cross-correlation function (CCF), not a spectrum")
    if data.ndim == 2 and str(primary.get("OBJECT", "")).upper().startswith(CALIBRATION_OBJECTS):
        raise NotASpectrum(f"calibration frame (OBJECT={primary.get('OBJECT')!r})")
    if data.ndim == 2 and ("ESO DRS CAL TH FILE" in primary and "ESO DRS BLAZE FILE" in primary):
        return _read_e2ds(data, primary, path, meta)
    if data.ndim == 2:
        raise RejectError(f"unknown layout: 2-D image {data.shape} without DRS calibration keywords")
    if data.ndim != 1:
        raise RejectError(f"unknown layout: {data.ndim}-D image")
    linear = _linear_wcs(primary, data.size)
    if linear is None:
        raise RejectError("1-D image without CRVAL1/CDELT1 wavelength keywords")
    wave = 10**linear if primary.get("DC-FLAG") == 1 else linear  # IRAF's log-linear axis: CRVAL1 is log10 λ
    unit = primary.get("CUNIT1") or (
        primary.get("CTYPE1") if str(primary.get("CTYPE1", "")).lower().startswith("ang") else None
    )
    is_s1d = meta["instrument"].upper().startswith("HARPS") and "ESO DRS BERV" in primary
    medium = "vacuum" if primary.get("VACUUM") is True else "air"
    product = "s1d" if is_s1d else "image1d"
    return Spectrum(to_angstrom(wave, unit, "CRVAL1/CDELT1"), data, None, product, meta, medium)


def _read_e2ds(data: np.ndarray, header, path: Path, meta: dict) -> Spectrum:
    wave_file = path.parent / str(header["ESO DRS CAL TH FILE"]).strip()
    blaze_file = path.parent / str(header["ESO DRS BLAZE FILE"]).strip()
    cal = {}
    for kind, f in (("wavelength", wave_file), ("blaze", blaze_file)):
        try:
            cal[kind] = np.asarray(fits.getdata(f), float)
        except (OSError, TypeError, ValueError) as e:
            raise RejectError(f"e2ds {kind} calibration {f.name} unreadable ({type(e).__name__})") from None
        if cal[kind].shape != data.shape:
            raise RejectError(f"e2ds {kind} calibration {f.name} has shape {cal[kind].shape}, orders are {data.shape}")
    blaze = cal["blaze"]
    usable = np.isfinite(blaze) & (blaze > 0.05 * np.nanmax(blaze, axis=1, keepdims=True))
    berv = meta["berv"] if np.isfinite(meta["berv"]) else 0.0
    wave = cal["wavelength"] * (1.0 + berv / C_KMS)  # to the barycentric frame, as the s1d
    flux = np.where(usable, data / np.where(usable, blaze, 1.0), np.nan)
    return Spectrum(wave, flux, blaze * usable, "e2ds", meta)
