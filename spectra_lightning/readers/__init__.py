"""Readers, one per file format (astropy only); readers never write anything.

- :mod:`.archive`: ESO Phase-3 ADP, HARPS DRS s1d and e2ds, and any other 1-D FITS spectrum
  (:func:`read_spectrum`, one :class:`Spectrum` per file; what ``ingest`` reads today);
- survey formats on logarithmic grids with inverse variance, each returning a list of :class:`SurveySpectrum`
  (:func:`read_survey`): :mod:`.sdss` (SDSS/BOSS/eBOSS spec), :mod:`.lamost` (low and medium resolution),
  :mod:`.manga` (spaxel rows), :mod:`.apogee` (apStar), :mod:`.desi` (coadds, cameras merged).

Formats are told from a file's content, never its name; a file none of them knows raises :class:`RejectError`.
"""

from __future__ import annotations

from pathlib import Path

from astropy.io import fits

from . import apogee, desi, lamost, manga, sdss
from .archive import PRIMARY_CARDS, NotASpectrum, RejectError, Spectrum, read_spectrum
from .survey import SurveySpectrum

SURVEY_FORMATS = (lamost, sdss, manga, apogee, desi)  # LAMOST first: its tables look like SDSS's

__all__ = [
    "PRIMARY_CARDS",
    "NotASpectrum",
    "RejectError",
    "Spectrum",
    "SurveySpectrum",
    "read_spectrum",
    "read_survey",
    "survey_format",
]


def survey_format(hdul: fits.HDUList):
    """The survey reader module for an open file, or None."""
    return next((fmt for fmt in SURVEY_FORMATS if fmt.detect(hdul)), None)


def read_survey(path: str | Path) -> list[SurveySpectrum]:
    """The spectra of a survey file (one or more), with inverse variance and the labels it carries."""
    path = Path(path)
    try:
        with fits.open(path, memmap=False) as hdul:
            fmt = survey_format(hdul)
            if fmt is None:
                raise RejectError("not a survey format this reader knows (SDSS, LAMOST, MaNGA, APOGEE apStar, DESI)")
            return fmt.read(hdul, path)
    except RejectError:
        raise
    except (OSError, TypeError, ValueError, IndexError, KeyError, EOFError) as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise RejectError(f"{path}: cannot read ({reason[:160]})") from None
