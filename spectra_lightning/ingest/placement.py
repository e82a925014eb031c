"""How one input goes on the grid, in a reading worker: read it (one registry of formats), check what it is —
usable, a repeat of a stored spectrum (by content), placeholder inverse variances, a grid far finer than its
pixels — and put it on the grid exactly as the paper did: trimmed, resampled when not already on it
(``SpectralGrid.resample``: linear, or exact flux-conserving rebinning for finer inputs; non-finite pixels stay
masked), zero-padded (NaN = masked) and divided by the median of its unmasked flux. Spectra whose raw median is
below ``min_flux`` (the paper: 50) are flagged (``meta/low_flux``), not dropped — only for products whose flux is
detector counts (:data:`COUNT_PRODUCTS`). The store holds no infinite pixel: infinite inputs and pixels beyond the
stored dtype's range are masked and counted (``meta/n_masked_range``)."""

from __future__ import annotations

import dataclasses
import hashlib
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from spectra_lightning.ingest.readers import (
    ARCHIVE_PRODUCTS,
    NotASpectrum,
    RejectError,
    Spectrum,
    read,
    truncation,
)
from spectra_lightning.physics import grid_kernel
from spectra_lightning.physics.grid import SpectralGrid, air_to_vacuum, vacuum_to_air
from spectra_lightning.store.spectra_store import row_checksums

MIN_FLUX = 50.0  # the paper's raw median-flux cut
IVAR_KEY = "_ivar"  # a placed spectrum's inverse-variance row, carried in its metadata to the writer
WARNINGS_KEY = "_warnings"  # what the summary says of a placed spectrum, carried in its metadata likewise
MIN_USABLE = 0.2  # a spectrum with fewer usable pixels than this share of its own is rejected (real surveys: >= 0.5)
MIN_SIGMA_FRACTION = 1e-6  # σ below this share of the median flux is a placeholder (e.g. ivar 1e30), not a measurement
OVERSAMPLING_WARN = 10.0  # an input pixel spanning more grid pixels than this is worth a warning
# products whose flux is detector counts: only for these does a median below MIN_FLUX mean a faint exposure
# (generic 1-D images and tables — MILES, normalised HARPS sets, other archives — carry arbitrary units)
COUNT_PRODUCTS = ("adp", "s1d", "e2ds")


def onto_grid(spec: Spectrum, grid: SpectralGrid) -> np.ndarray:
    """A spectrum (1-D, or orders × pixels with weights in ``ivar``) on the grid, not yet normalised."""
    if spec.wave.ndim == 1:
        return grid.resample(spec.wave, spec.flux)
    total = np.zeros(grid.length)
    weight = np.zeros(grid.length)
    poisoned = np.zeros(grid.length, bool)
    weights = spec.ivar if spec.ivar is not None else np.ones_like(spec.flux)
    for w, f, wt in zip(spec.wave, spec.flux, weights):
        if not np.isfinite(w).all() or np.all(wt <= 0):
            continue
        fo = grid.resample(w, f, method="linear")
        wo = grid.resample(w, wt, method="linear")
        covered = np.isfinite(wo) & (wo > 0)
        poisoned |= covered & ~np.isfinite(fo)
        ok = covered & np.isfinite(fo)
        total[ok] += wo[ok] * fo[ok]
        weight[ok] += wo[ok]
    out = np.full(grid.length, np.nan)
    good = (weight > 0) & ~poisoned
    out[good] = total[good] / weight[good]
    return out


_scratch = threading.local()  # float64 buffers of grid length, reused per thread (fresh pages cost here)


def _buffers(length: int) -> tuple[np.ndarray, np.ndarray]:
    bufs = getattr(_scratch, "bufs", None)
    if bufs is None or bufs[0].shape[0] != length:
        bufs = _scratch.bufs = (np.empty(length), np.empty(length))
    return bufs


def on_grid_row(
    spec: Spectrum, grid: SpectralGrid, dtype: str = "float16", out: np.ndarray | None = None
) -> tuple[np.ndarray, int, float]:
    """``spec`` on the grid divided by the median of its unmasked flux -> (row ``(L,)`` in ``dtype``,
    written into ``out`` when given, unmasked pixels, raw median); the row is undefined when no pixel
    is unmasked.

    With numba (``grid_kernel``) a 1-D linear resampling, the median and the float16 cast run
    compiled (same numbers, ~3x faster); other cases, and installs without numba, use numpy.
    """
    placed = None
    if grid_kernel.available and not grid.log and spec.wave.ndim == 1 and grid.auto_method(spec.wave) == "linear":
        placed = _buffers(grid.length)[0]
        if not grid_kernel.place_linear(
            np.ascontiguousarray(spec.wave, float),
            np.ascontiguousarray(spec.flux),
            grid.valid,
            grid.wave_min,
            grid.step,
            grid.pad_left,
            placed,
        ):
            placed = None  # not ascending: the numpy path sorts
    if placed is None:
        placed = onto_grid(spec, grid)
    if grid_kernel.available and dtype == "float16":
        row = np.empty(grid.length, np.float16) if out is None else out
        n, median = grid_kernel.normalise_float16(placed, row.view(np.uint16), _buffers(grid.length)[1])
        return row, int(n), float(median)
    valid = np.isfinite(placed)
    n = int(valid.sum())
    median = float(np.median(placed[valid])) if n else float("nan")
    if out is None:
        return (placed / median).astype(dtype), n, median
    np.divide(placed, median, out=out, casting="same_kind")
    return out, n, median


def mask_out_of_range(row: np.ndarray) -> int:
    """Mask (NaN) the infinite pixels of a normalised row ``(L,)`` in place; returns how many. They are
    infinite input pixels, or pixels beyond the stored dtype's range (float16: above 65,504x the median,
    e.g. a cosmic-ray spike on a faint spectrum). The store holds no inf: NaN is its only mask."""
    bad = np.isinf(row)
    k = int(np.count_nonzero(bad))
    if k:
        row[bad] = np.nan
    return k


@dataclass(frozen=True)
class Known:
    """What a store already holds, to tell a repeat from a new spectrum: ``hashes`` maps each content hash to its
    spectrum's id; ``legacy`` maps the ids of rows ingested before content hashes were kept to their rows' CRC-32
    (a file with such an id is that row again when it places to the same bytes)."""

    hashes: dict[str, str] = field(default_factory=dict)
    legacy: dict[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, meta: dict[str, np.ndarray]) -> Known:
        ids = meta.get("id", np.array([], str)).astype(str)
        hashes = meta.get("content_hash", np.full(len(ids), "")).astype(str)
        crc = meta.get("crc32", np.full(len(ids), -1))
        return cls(
            {h: i for i, h in zip(ids, hashes) if h},
            {i: int(c) for i, h, c in zip(ids, hashes, crc) if not h},
        )


@dataclass(frozen=True)
class Placement:
    """How every input goes on the grid, shared by the reading workers: the grid, the paper's ``min_flux`` flag,
    the ``min_usable`` fraction of a spectrum's pixels below which it is rejected, the stored ``dtype``, whether
    the store keeps inverse variances, and what it already holds."""

    grid: SpectralGrid
    min_flux: float = MIN_FLUX
    min_usable: float = MIN_USABLE
    dtype: str = "float16"
    keep_ivar: bool = False
    known: Known = field(default_factory=Known)


def content_hash(spec: Spectrum) -> str:
    """A hash of a spectrum as read: SHA-256 of its flux (every value, its shape and type) and of its wavelengths
    (their count, ends and every 97th value: a wavelength axis is smooth, and hashing all of it cost as much as
    the rest of the grid work). Equal for the same spectrum under any file name or compression."""
    flux, wave = np.ascontiguousarray(spec.flux), np.asarray(spec.wave)
    h = hashlib.sha256(f"{flux.dtype.str}{flux.shape}{wave.shape}".encode())
    h.update(flux.data)
    flat = wave.ravel()
    h.update(np.ascontiguousarray(np.concatenate([flat[::97], flat[-1:]]), dtype=np.float64).data)
    return h.hexdigest()[:32]


def process(path: Path, how: Placement, out: np.ndarray | None = None) -> tuple:
    """One input -> ``("ok", flux (L,) in dtype, meta)``, ``("dup", id, hash)``, ``("skip"|"reject", reason)``,
    or for a survey file ``("many", [such results, one per spectrum])``; an archive file's flux is written into
    ``out`` when given. Any error reading or placing it is this file's reject: the rest of an ingest goes on."""
    try:
        spectra = read(path)
    except NotASpectrum as e:
        return ("skip", str(e))
    except RejectError as e:
        return ("reject", truncation(path) or str(e))
    try:
        if len(spectra) == 1 and spectra[0].product in ARCHIVE_PRODUCTS:
            return place(spectra[0], how, out)
        return ("many", [place(s, how) for s in spectra])
    except Exception as e:  # the grid's error on a malformed spectrum: this file's reject, named
        reason = " ".join(str(e).split())[:200] or "no message"
        return ("reject", f"cannot be ingested ({type(e).__name__}: {reason})")


def grid_input(spec: Spectrum, grid: SpectralGrid) -> Spectrum:
    """A spectrum as the grid work takes it: wavelengths in the grid's medium (air or vacuum); a survey format's
    bad pixels (zero inverse variance) masked (NaN)."""
    flux, wave = spec.flux, spec.wave
    if spec.ivar is not None and spec.product not in ARCHIVE_PRODUCTS:
        flux = np.where(spec.ivar > 0, spec.flux, np.nan)
    if spec.medium != grid.medium:
        wave = vacuum_to_air(wave) if spec.medium == "vacuum" else air_to_vacuum(wave)
    return dataclasses.replace(spec, wave=wave, flux=flux, medium=grid.medium)


def ivar_row(spec: Spectrum, grid: SpectralGrid, median: float, row: np.ndarray) -> np.ndarray:
    """The inverse variance ``(L,)`` float32 of a 1-D spectrum's stored row ``row`` (divided by ``median``): its
    variance carried onto the grid as its flux was (``SpectralGrid.resample(variance=True)``), in the row's
    units (× median²); 0 where the row is masked or a pixel carries no information."""
    assert spec.ivar is not None and spec.wave.ndim == 1
    with np.errstate(divide="ignore"):
        var = np.where(spec.ivar > 0, 1.0 / spec.ivar, np.nan)  # NaN: an output drawing on it is unusable
    var = grid.resample(spec.wave, var, variance=True)
    ok = np.isfinite(var) & (var > 0) & np.isfinite(row)
    return np.where(ok, median**2 / np.where(ok, var, 1.0), 0.0).astype(np.float32)


def unusable(spec: Spectrum, min_usable: float) -> str | None:
    """Why a spectrum as read cannot be used — empty, no finite flux, no pixel with weight, or fewer usable
    pixels (finite flux and, where given, inverse variance > 0) than ``min_usable`` of them — or None."""
    n = spec.flux.size
    if n == 0:
        return "the flux array is empty"
    if spec.ivar is not None and not np.any(spec.ivar > 0):
        return "no pixel with inverse variance > 0"
    finite = np.isfinite(spec.flux)
    if not finite.any():
        return "no finite flux value"
    usable = finite if spec.ivar is None else finite & (spec.ivar > 0)
    k = int(np.count_nonzero(usable))
    if k < min_usable * n:
        return f"only {k:,} of {n:,} pixels usable ({k / n:.1%}; --min-usable is {min_usable:.0%})"
    return None


def implausible_ivar(spec: Spectrum) -> int:
    """Mask (flux NaN, inverse variance 0), in place, a 1-D spectrum's pixels whose σ is below
    :data:`MIN_SIGMA_FRACTION` of its median |flux| — a placeholder such as 1e30, not a measurement; how many."""
    if spec.ivar is None or spec.wave.ndim != 1:
        return 0
    ok = (spec.ivar > 0) & np.isfinite(spec.flux)
    sample = np.abs(spec.flux[ok][::16])  # a scale, not a statistic: every 16th usable pixel is plenty
    scale = float(np.median(sample)) if sample.size else 0.0
    if not scale > 0:
        return 0
    bad = ok & (spec.ivar > (MIN_SIGMA_FRACTION * scale) ** -2)
    k = int(np.count_nonzero(bad))
    if k:
        spec.ivar = np.where(bad, 0.0, spec.ivar)
        spec.flux = np.where(bad, np.nan, spec.flux)
    return k


def oversampling(spec: Spectrum, grid: SpectralGrid) -> float:
    """How many grid pixels one input pixel spans, typically (1-D spectra; 0 when it cannot tell)."""
    wave = spec.wave if spec.wave.ndim == 1 else spec.wave[0]
    k = max(1, (wave.size - 1) // 1024)
    sample = wave[::k]  # ~1,000 spans: the typical step at no cost (as grid.auto_method reads it)
    steps = np.abs(np.diff(sample))
    steps = steps[np.isfinite(steps)]
    if steps.size == 0:
        return 0.0
    return float(np.median(steps)) / k / float(grid.pixel_width(float(np.nanmedian(sample))))


def place(spec: Spectrum, how: Placement, out: np.ndarray | None = None) -> tuple:
    """One read spectrum on the grid -> ``("ok", flux (L,) in dtype, meta)``, ``("dup", id, hash)`` or
    ``("reject", reason)``; ``meta`` carries its content hash and, under :data:`WARNINGS_KEY`, what the summary
    should say about it."""
    grid = how.grid
    ident, digest = str(spec.meta["id"]), content_hash(spec)
    if digest in how.known.hashes:
        return ("dup", ident, digest)
    if (why := unusable(spec, how.min_usable)) is not None:
        return ("reject", why)
    warnings = []
    if (masked := implausible_ivar(spec)) > 0:
        warnings.append(
            f"{masked} pixel(s) with an implausible inverse variance (σ < {MIN_SIGMA_FRACTION:g} × the median flux) "
            "masked"
        )
    if (ratio := oversampling(spec, grid)) > OVERSAMPLING_WARN:
        warnings.append(
            f"its pixels span {ratio:.0f} grid pixels: the grid oversamples it (a grid near its own pixels fits it)"
        )
    if spec.ivar is not None and spec.product not in ARCHIVE_PRODUCTS and not how.keep_ivar:
        warnings.append("its inverse variance is not kept: the store keeps none (a new store keeps it with --ivar yes)")
    spec = grid_input(spec, grid)
    row, n_valid, raw_median = on_grid_row(spec, grid, how.dtype, out)
    if n_valid == 0:
        finite_wave = spec.wave[np.isfinite(spec.wave)]
        lo, hi = (finite_wave.min(), finite_wave.max()) if finite_wave.size else (np.nan, np.nan)
        if hi < grid.wave_min or lo > grid.wave_max:
            return (
                "reject",
                f"wavelength {lo:.1f}–{hi:.1f} Å lies outside the grid {grid.wave_min:g}–{grid.wave_max:g} Å",
            )
        return ("reject", "no usable flux on the grid")
    if not raw_median > 0:
        return ("reject", f"median flux on the grid is {raw_median:g} (not positive)")
    n_range = mask_out_of_range(row)
    if ident in how.known.legacy and int(row_checksums(row[None])[0]) == how.known.legacy[ident]:
        return ("dup", ident, digest)  # the row of a store ingested before content hashes, placed again
    meta = dict(spec.meta)
    counts = spec.product in COUNT_PRODUCTS
    meta.update(
        product=spec.product,
        raw_median=raw_median,
        counts=int(counts),
        low_flux=int(counts and raw_median < how.min_flux),
        coverage=(n_valid - n_range) / grid.n_valid,
        n_masked_range=n_range,
        content_hash=digest,
    )
    if how.keep_ivar and spec.ivar is not None and spec.wave.ndim == 1:  # rides with the metadata to the writer
        meta[IVAR_KEY] = ivar_row(spec, grid, raw_median, row)
    if warnings:
        meta[WARNINGS_KEY] = warnings
    return ("ok", row, meta)
