"""Spectra already in memory, placed exactly as ``ingest`` places a file's: the same checks, resampling,
median normalisation and stored dtype (:func:`.placement.place`), so that the Python API's codes equal the CLI's."""

from __future__ import annotations

import numpy as np

from spectra_lightning.ingest.placement import IVAR_KEY, WARNINGS_KEY, Placement, place
from spectra_lightning.ingest.readers import RejectError, Spectrum
from spectra_lightning.ingest.readers.plain_table import spectrum_from_arrays
from spectra_lightning.ingest.writer import meta_columns
from spectra_lightning.physics.grid import SpectralGrid
from spectra_lightning.store.spectra_store import SpectraStore

GRID_LENGTH_MULTIPLE = 256  # an inferred grid is padded to a multiple of this (a network halves its length often)


def rows_of(array: np.ndarray, n: int, name: str) -> list[np.ndarray]:
    """``(M,)`` shared by all, or ``(N, M)`` one per spectrum -> N arrays."""
    a = np.asarray(array)
    if a.ndim == 1:
        return [a] * n
    if a.ndim != 2 or len(a) != n:
        raise ValueError(f"{name}: expected (M,) or ({n}, M), got {a.shape}")
    return list(a)


def spectra_of(
    wave: np.ndarray,
    flux: np.ndarray,
    ivar: np.ndarray | None = None,
    medium: str = "air",
    ids: list[str] | None = None,
    labels: dict[str, np.ndarray] | None = None,
) -> list[Spectrum]:
    """``flux (M,)`` or ``(N, M)`` with ``wave (M,)`` or ``(N, M)`` Å and ``ivar`` like ``flux`` -> N spectra,
    named ``ids`` (default ``spectrum0`` …) with ``labels {name: (N,)}``."""
    flux = np.asarray(flux)
    n = 1 if flux.ndim == 1 else len(flux)
    fluxes = [flux] if flux.ndim == 1 else list(flux)
    ids = list(ids) if ids is not None else [f"spectrum{i}" for i in range(n)]
    if len(ids) != n:
        raise ValueError(f"ids: {len(ids)} names for {n} spectra")
    columns = {k: np.asarray(v) for k, v in (labels or {}).items()}
    for name, column in columns.items():
        if column.shape != (n,):
            raise ValueError(f"labels[{name!r}]: expected ({n},), got {column.shape}")
    out = []
    ivars: list = [None] * n if ivar is None else rows_of(ivar, n, "ivar")
    for i, (w, f, iv) in enumerate(zip(rows_of(wave, n, "wave"), fluxes, ivars)):
        meta = {"id": ids[i], "object": ids[i], "source": "arrays", **{k: v[i].item() for k, v in columns.items()}}
        try:
            out.append(spectrum_from_arrays(w, f, iv, medium=medium, meta=meta, where=f"spectrum {i} ({ids[i]})"))
        except RejectError as e:  # arrays from a caller: a ValueError, as any bad argument
            raise ValueError(str(e)) from None
    return out


def place_all(spectra: list[Spectrum], how: Placement) -> tuple[np.ndarray, list[dict]]:
    """Every spectrum on ``how.grid`` -> rows ``(N, L)`` in ``how.dtype`` and their metadata; a spectrum that
    ingest would reject is a one-line ``ValueError`` naming it and why (nothing is half-placed)."""
    rows, metas = [], []
    for s in spectra:
        try:
            result = place(s, how)
        except RejectError as e:
            result = ("reject", str(e))
        if result[0] != "ok":
            why = result[1] if result[0] == "reject" else "the same spectrum as another given"
            raise ValueError(f"spectrum {s.meta.get('id')}: cannot be placed on the grid: {why}")
        rows.append(result[1].copy())  # place may reuse its buffer
        metas.append(result[2])
    return np.stack(rows), metas


def grid_for(wave: np.ndarray) -> SpectralGrid:
    """A grid for spectra given on ``wave (M,)`` Å: its range at its median step, logarithmic when the step of
    log10 λ is constant (to 0.1 %), padded to a multiple of :data:`GRID_LENGTH_MULTIPLE`."""
    w = np.asarray(wave, np.float64)
    w = w[np.isfinite(w)]
    if w.size < 2 or np.any(np.diff(w) <= 0):
        raise ValueError("wave: need at least two finite, increasing wavelengths to infer a grid (or pass grid=)")
    log_steps = np.diff(np.log10(w))
    log = bool(np.allclose(log_steps, np.median(log_steps), rtol=1e-3))
    step = float(np.median(log_steps) if log else np.median(np.diff(w)))
    first = SpectralGrid(float(w[0]), float(w[-1]), step, 10**9, mask_gap=False, log=log)  # to count its pixels
    length = -(-first.n_pixels // GRID_LENGTH_MULTIPLE) * GRID_LENGTH_MULTIPLE
    return SpectralGrid(float(w[0]), float(w[-1]), step, length, mask_gap=False, log=log)


def write_store(path: str, spectra: list[Spectrum], grid: SpectralGrid, dtype: str = "float16") -> SpectraStore:
    """A new store at ``path`` holding ``spectra`` placed on ``grid`` (inverse variances kept when any has one),
    created whole or not at all; returned open for reading."""
    keep_ivar = any(s.ivar is not None for s in spectra)
    rows, metas = place_all(spectra, Placement(grid, dtype=dtype, keep_ivar=keep_ivar))
    ivar = np.stack([m.pop(IVAR_KEY, np.zeros(grid.length, np.float32)) for m in metas]) if keep_ivar else None
    for m in metas:
        m.pop(WARNINGS_KEY, None)
    attrs = {"producer": "arrays", "rejects": {}}
    with SpectraStore.create_atomic(path, grid, dtype=dtype, attrs=attrs, ivar=keep_ivar) as store:
        store.append(rows, meta_columns(metas), ivar)
    return SpectraStore.open(store.path)
