"""Plain tables of one spectrum each — CSV, ECSV, NumPy ``.npz`` — told by their suffix (:data:`TABLE_SUFFIXES`:
a CSV has no signature to detect), and spectra already in memory (:func:`spectrum_from_arrays`).

Columns (names case-insensitive): the wavelength ``wave`` / ``wavelength`` / ``lambda`` / ``loglam`` (log10 Å),
the ``flux``, and optionally ``ivar`` (inverse variance) or ``error`` / ``err`` / ``sigma`` / ``flux_err``
(σ, turned into 1/σ²; a pixel with σ ≤ 0 or not finite is unusable). Wavelengths are in Å unless an ECSV column
carries a unit (Å, nm, µm …); air unless the ECSV's meta says ``medium: vacuum`` (an ``.npz`` may hold a
``medium`` string). Numbers stored alone in an ``.npz`` (0-d arrays) and an ECSV's scalar meta become labels.
A table without a wavelength and a flux column is not a spectrum (a label table in the folder): skipped, named.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from spectra_lightning.ingest.readers.archive import NotASpectrum, RejectError, Spectrum, to_angstrom

TABLE_SUFFIXES = (".csv", ".ecsv", ".npz")
WAVE_COLUMNS = ("wave", "wavelength", "lambda", "loglam")
IVAR_COLUMNS = ("ivar", "inverse_variance", "invvar")
ERROR_COLUMNS = ("error", "err", "sigma", "flux_err", "uncertainty")
PRODUCT = "table"  # not an archive product: a pixel with ivar 0 is masked, as in the survey formats


def is_table(path: str | Path) -> bool:
    return str(path).lower().endswith(TABLE_SUFFIXES)


def spectrum_from_arrays(
    wave: np.ndarray,
    flux: np.ndarray,
    ivar: np.ndarray | None = None,
    error: np.ndarray | None = None,
    medium: str = "air",
    meta: dict | None = None,
    where: str = "arrays",
) -> Spectrum:
    """One :class:`Spectrum` from ``wave (M,)`` Å, ``flux (M,)`` and ``ivar (M,)`` or ``error (M,)`` (σ); a one-line
    :class:`RejectError` naming ``where`` for arrays that cannot be a spectrum."""
    if medium not in ("air", "vacuum"):
        raise RejectError(f"{where}: medium must be air or vacuum, got {medium!r}")
    wave, flux = np.asarray(wave, np.float64), np.asarray(flux)
    flux = flux.astype(np.float32 if flux.dtype == np.float32 else np.float64)  # as the FITS readers keep it
    if wave.ndim != 1 or flux.shape != wave.shape:
        raise RejectError(f"{where}: wave {wave.shape} and flux {flux.shape} must be 1-D and of one length")
    if error is not None:
        err = np.asarray(error, np.float64)
        ok = np.isfinite(err) & (err > 0)
        ivar = np.where(ok, 1.0 / np.where(ok, err, 1.0) ** 2, 0.0)
    if ivar is not None:
        ivar = np.asarray(ivar, np.float64)
        ivar = np.where(np.isfinite(ivar) & (ivar > 0), ivar, 0.0)
    return Spectrum(wave, flux, ivar, PRODUCT, dict(meta or {}), medium)


def _pick(names: dict[str, str], wanted: tuple[str, ...]) -> str | None:
    return next((names[n] for n in wanted if n in names), None)


def _columns(path: Path) -> tuple[dict[str, np.ndarray], dict[str, str], dict]:
    """The file's columns ``{name: (M,)}``, their units, and its scalar metadata."""
    if path.name.lower().endswith(".npz"):
        with np.load(path, allow_pickle=False) as z:  # data only: no pickled object is ever loaded
            arrays = {k: z[k] for k in z.files}
        columns = {k: v for k, v in arrays.items() if v.ndim == 1}
        scalars = {k: v.item() for k, v in arrays.items() if v.ndim == 0}
        return columns, {}, scalars
    from astropy.table import Table

    table = Table.read(path, format="ascii.ecsv" if path.name.lower().endswith(".ecsv") else "ascii.csv")
    units = {c: str(table[c].unit) for c in table.colnames if table[c].unit is not None}
    scalars = {k: v for k, v in table.meta.items() if isinstance(v, (str, int, float)) and not isinstance(v, bool)}
    return {c: np.asarray(table[c]) for c in table.colnames}, units, scalars


def read_table(path: str | Path) -> list[Spectrum]:
    """The one spectrum of a plain table file (module docstring)."""
    path = Path(path)
    try:
        columns, units, scalars = _columns(path)
    except (OSError, ValueError, TypeError, KeyError) as e:  # astropy's and numpy's parse errors
        raise RejectError(f"not a readable table ({type(e).__name__}: {str(e).splitlines()[0][:120]})") from None
    names = {k.lower(): k for k in columns}
    wcol, fcol = _pick(names, WAVE_COLUMNS), names.get("flux")
    if wcol is None or fcol is None:
        raise NotASpectrum(f"a table without wavelength and flux columns (has {', '.join(columns)[:120]})")
    wave = np.asarray(columns[wcol], np.float64)
    if wcol.lower() == "loglam":
        wave = 10**wave
    wave = to_angstrom(wave, units.get(wcol), f"{path.name} column {wcol}")
    ivar_col, err_col = _pick(names, IVAR_COLUMNS), _pick(names, ERROR_COLUMNS)
    medium = str(scalars.pop("medium", "air")).lower()
    stem = path.name[: -len(next(s for s in TABLE_SUFFIXES if path.name.lower().endswith(s)))]
    labels = {k: v for k, v in scalars.items() if isinstance(v, (int, float, str))}
    meta = {"object": stem, **labels, "id": stem, "source": str(path), "product": PRODUCT}
    return [
        spectrum_from_arrays(
            wave,
            columns[fcol],
            ivar=None if ivar_col is None else columns[ivar_col],
            error=None if err_col is None or ivar_col is not None else columns[err_col],
            medium=medium,
            meta=meta,
            where=path.name,
        )
    ]
