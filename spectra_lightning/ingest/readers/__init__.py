"""Readers, one per file format, behind one registry (astropy only); readers never write anything.

:func:`read` opens a file once and gives it to the first format that recognises it, the survey formats first
(their tables look like generic ones), then the archive formats, each returning a list of :class:`Spectrum`:

- :mod:`.lamost` (low and medium resolution), :mod:`.sdss` (SDSS/BOSS/eBOSS ``spec``), :mod:`.manga` (spaxel
  rows), :mod:`.apogee` (apStar), :mod:`.desi` (coadds, cameras merged): logarithmic grids (DESI: linear) with
  inverse variance and their labels, one or more spectra per file;
- :mod:`.archive`: ESO Phase-3 ADP, HARPS DRS s1d and e2ds, and any other 1-D FITS spectrum (an image with a linear
  WCS, or a table with wavelength and flux columns): one spectrum per file;
- :mod:`.plain_table`: CSV, ECSV and ``.npz`` tables of wavelength, flux and optionally ivar or σ.

FITS formats are told from a file's content, never its name; plain tables by their suffix (a CSV has no
signature). A file none of them can read raises :class:`RejectError`
with a one-line reason; a valid product that is not a science spectrum (a CCF, a calibration frame),
:class:`NotASpectrum`. A new format is a module with ``detect(hdul, header) -> bool`` and ``read(hdul, path) ->
list[Spectrum]``, named in :data:`SURVEY_FORMATS` (docs/architecture.md).
"""

from __future__ import annotations

from pathlib import Path

from spectra_lightning.ingest.readers import apogee, archive, desi, lamost, manga, sdss
from spectra_lightning.ingest.readers.archive import (
    ARCHIVE_PRODUCTS,
    PRIMARY_CARDS,
    NotASpectrum,
    RejectError,
    Spectrum,
    truncation,
)
from spectra_lightning.ingest.readers.plain_table import TABLE_SUFFIXES, is_table, read_table

SURVEY_FORMATS = (lamost, sdss, manga, apogee, desi)  # LAMOST first: its tables look like SDSS's
FORMAT_NAMES = (
    "ESO ADP, HARPS s1d/e2ds, 1-D FITS images and tables, SDSS/BOSS, LAMOST, MaNGA, APOGEE apStar, DESI, "
    "plain CSV/ECSV/.npz tables"
)

__all__ = [
    "ARCHIVE_PRODUCTS",
    "FORMAT_NAMES",
    "PRIMARY_CARDS",
    "SURVEY_FORMATS",
    "NotASpectrum",
    "RejectError",
    "Spectrum",
    "TABLE_SUFFIXES",
    "read",
    "truncation",
]

READ_ERRORS = (OSError, TypeError, ValueError, IndexError, KeyError, EOFError)


def read(path: str | Path, all_cards: bool = False) -> list[Spectrum]:
    """Every spectrum of one FITS file (optionally gzip-compressed), opened once, or of a plain table.

    Of an archive file's primary header only :data:`PRIMARY_CARDS` are parsed (``all_cards``: all of it, as
    ``fits.open`` does: the same result, ~10x slower on ESO headers); a survey format reads what it needs."""
    path = Path(path)
    if is_table(path):
        return read_table(path)
    try:
        with archive.open_hdus(path, all_cards) as (primary, hdul):
            fmt = next((f for f in SURVEY_FORMATS if f.detect(hdul, primary)), None)
            if fmt is None:
                return [archive.read_hdus(primary, hdul, path)]
            try:
                return fmt.read(hdul, path)
            except (RejectError, *READ_ERRORS) as e:
                if isinstance(e, RejectError):
                    raise
                name = fmt.__name__.rsplit(".", 1)[-1]
                raise RejectError(f"a {name} file that cannot be read ({_first_line(e)})") from None
    except RejectError:
        raise
    except READ_ERRORS as e:
        raise RejectError(f"not a readable FITS file ({_first_line(e)})") from None


def _first_line(e: BaseException) -> str:
    return (str(e).splitlines()[0] if str(e) else type(e).__name__)[:160]
