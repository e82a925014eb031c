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
from .archive import PRIMARY_CARDS, NotASpectrum, RejectError, Spectrum, read_spectrum, truncation
from .survey import SurveySpectrum

SURVEY_FORMATS = (lamost, sdss, manga, apogee, desi)  # LAMOST first: its tables look like SDSS's

__all__ = [
    "PRIMARY_CARDS",
    "NotASpectrum",
    "NotASurvey",
    "RejectError",
    "Spectrum",
    "SurveySpectrum",
    "read_spectrum",
    "read_survey",
    "survey_format",
    "truncation",
]


class NotASurvey(RejectError):
    """A file none of the survey formats recognises (it may still be an archive spectrum)."""


def survey_format(hdul: fits.HDUList):
    """The survey reader module for an open file, or None."""
    return next((fmt for fmt in SURVEY_FORMATS if fmt.detect(hdul)), None)


def read_survey(path: str | Path) -> list[SurveySpectrum]:
    """The spectra of a survey file (one or more), with inverse variance and the labels it carries.
    :class:`NotASurvey` when no survey format recognises the file (or it does not open as FITS); a plain
    :class:`RejectError` when one does but the file cannot be read as that format."""
    path = Path(path)
    try:
        hdul = fits.open(path, memmap=False)
    except (OSError, TypeError, ValueError, IndexError, KeyError, EOFError) as e:
        raise NotASurvey(f"not readable as FITS ({_first_line(e)})") from None
    with hdul:
        try:
            fmt = survey_format(hdul)
        except (OSError, TypeError, ValueError, IndexError, KeyError, EOFError) as e:
            raise NotASurvey(f"not readable as FITS ({_first_line(e)})") from None
        if fmt is None:
            raise NotASurvey("not a survey format this reader knows (SDSS, LAMOST, MaNGA, APOGEE apStar, DESI)")
        try:
            return fmt.read(hdul, path)
        except RejectError:
            raise
        except (OSError, TypeError, ValueError, IndexError, KeyError, EOFError) as e:
            name = fmt.__name__.rsplit(".", 1)[-1]
            raise RejectError(f"a {name} file that cannot be read ({_first_line(e)})") from None


def _first_line(e: BaseException) -> str:
    return (str(e).splitlines()[0] if str(e) else type(e).__name__)[:160]
