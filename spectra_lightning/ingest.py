"""``ingest``: archive FITS files -> spectra on the grid in a store; parallel, resumable.

Each input is read (``readers``), put on the grid exactly as the paper did — trimmed to the
grid, resampled when not already on it (``SpectralGrid.resample``: linear, or a flux-conserving
box mean for much finer inputs; non-finite pixels stay masked), zero-padded (NaN in the store
= masked: padding, CCD gap, non-finite or absent pixels) and divided by the median of its
unmasked flux. Spectra whose raw median is below ``--min-flux`` (the paper: 50) are flagged
(``meta/low_flux``), not dropped — only for products whose flux is detector counts (ESO ADP, DRS s1d and
e2ds; ``meta/counts`` = 1): a normalised or flux-calibrated library (MILES, the normalised HARPS sets)
has a median near 1 that says nothing about the exposure. The store holds no infinite pixel: infinite
inputs and pixels beyond the stored dtype's range are masked and counted (``meta/n_masked_range``).

Nothing lost, nothing twice: spectra are written in input order, each chunk's rows as soon as
they are read, and committed in batches (metadata, then the store's commit point); ids already
in the store are skipped, so a rerun after a crash (even ``kill -9``) completes the store to the
content of an uninterrupted run. Each bad input is recorded with a one-line reason in the
store's ``rejects`` attribute; the exit code is 1 when anything was rejected.
"""

from __future__ import annotations

import argparse
import ctypes
import errno
import glob
import hashlib
import mmap
import multiprocessing
import os
import re
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import grid_kernel
from .allocator import keep_freed_memory
from .grid import SpectralGrid, air_to_vacuum, vacuum_to_air
from .labels import LabelTable, LabelTableError, read_csv
from .readers import (
    NotASpectrum,
    NotASurvey,
    RejectError,
    Spectrum,
    SurveySpectrum,
    read_spectrum,
    read_survey,
    truncation,
)
from .store import CODECS, DEFAULT_CHUNK_ROWS, DEFAULT_CODEC, SpectraStore, StoreError, row_checksums

FITS_SUFFIXES = (".fits", ".fit", ".fts", ".fits.gz", ".fit.gz", ".fts.gz")
MIN_FLUX = 50.0  # the paper's raw median-flux cut
IVAR_KEY = "_ivar"  # a placed spectrum's inverse-variance row, carried in its metadata to the writer
WARNINGS_KEY = "_warnings"  # what the summary says of a placed spectrum, carried in its metadata likewise
MIN_USABLE = 0.2  # a spectrum with fewer usable pixels than this share of its own is rejected (real surveys: >= 0.5)
MIN_SIGMA_FRACTION = 1e-6  # σ below this share of the median flux is a placeholder (e.g. ivar 1e30), not a measurement
OVERSAMPLING_WARN = 10.0  # an input pixel spanning more grid pixels than this is worth a warning
# products whose flux is detector counts: only for these does a median below MIN_FLUX mean a faint exposure
# (generic 1-D images and tables — MILES, normalised HARPS sets, other archives — carry arbitrary units)
COUNT_PRODUCTS = ("adp", "s1d", "e2ds")
TASK_FILES = 8  # files per worker task: enough to amortise a task's overhead, few enough to keep workers even


def broken_link(path: Path) -> str | None:
    """Why a symbolic link cannot be read (a loop, a missing target), or None when it can (or is no link)."""
    if not path.is_symlink():
        return None
    try:
        path.stat()
    except OSError as e:
        if e.errno == errno.ELOOP:
            return "symbolic link loop"
        return f"dangling symbolic link (its target {os.readlink(path)} does not exist)"
    return None


def expand_inputs(inputs: list[str]) -> tuple[list[Path], dict[str, str]]:
    """Files, directories (recursive, FITS suffixes) and globs -> (sorted unique paths, ``{path: reason}`` of
    the symbolic links among them that cannot be read: loops and dangling links, reported as rejects)."""
    out: set[Path] = set()
    broken: dict[str, str] = {}
    for item in inputs:
        matches = [Path(p) for p in glob.glob(item, recursive=True)] if any(c in item for c in "*?[") else [Path(item)]
        if not matches:
            raise FileNotFoundError(f"{item}: no such file, directory or glob match")
        for p in matches:
            if (reason := broken_link(p)) is not None:
                broken[str(p)] = reason
            elif p.is_dir():
                for f in p.rglob("*"):
                    if not f.name.lower().endswith(FITS_SUFFIXES):
                        continue
                    if f.is_file():
                        out.add(f)
                    elif (reason := broken_link(f)) is not None:
                        broken[str(f)] = reason
            elif p.exists():
                out.add(p)
            else:
                raise FileNotFoundError(f"{p}: no such file or directory")
    return sorted(out), broken


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
    or for a survey file ``("many", [such results, one per spectrum])``; a single spectrum's flux is written into
    ``out`` when given. Any error reading or placing it is this file's reject: the rest of an ingest goes on."""
    try:
        return _process(path, how, out)
    except Exception as e:  # a reader's or the grid's error: this file's reject, named
        reason = " ".join(str(e).split())[:200] or "no message"
        return ("reject", f"cannot be ingested ({type(e).__name__}: {reason})")


def _process(path: Path, how: Placement, out: np.ndarray | None) -> tuple:
    try:
        spec = read_spectrum(path)
    except NotASpectrum as e:
        return ("skip", str(e))
    except RejectError as e:
        spec, archive_reason = None, str(e)
    # a survey file reads as a generic table (SDSS, LAMOST MRS) or not at all (LAMOST LRS, MaNGA, APOGEE, DESI);
    # ESO products and 1-D images (MILES) are never one, and are not opened twice
    if spec is None or spec.product == "table1d":
        try:
            spectra = read_survey(path)
        except NotASurvey:
            spectra = None
        except RejectError as e:  # a survey format, but this file cannot be read as one
            return ("reject", truncation(path) or str(e))
        if spectra is not None:
            return ("many", [place(survey_spectrum(s, how), how, survey=True) for s in spectra])
        if spec is None:
            return ("reject", truncation(path) or archive_reason)
    return place(spec, how, out)


def survey_spectrum(s: SurveySpectrum, how: Placement) -> Spectrum:
    """A survey spectrum as the grid work takes it: pixels of zero inverse variance masked (NaN), wavelengths in
    the grid's medium (air or vacuum), the inverse variance kept (1-D: per pixel, :func:`ivar_row`)."""
    usable = s.ivar > 0
    flux = np.where(usable, s.flux, np.nan)
    wave = s.wave
    if s.medium != how.grid.medium:
        wave = vacuum_to_air(wave) if s.medium == "vacuum" else air_to_vacuum(wave)
    return Spectrum(wave, flux, np.where(usable, s.ivar, 0.0), s.product, dict(s.meta))


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


def place(spec: Spectrum, how: Placement, out: np.ndarray | None = None, survey: bool = False) -> tuple:
    """One read spectrum on the grid -> ``("ok", flux (L,) in dtype, meta)``, ``("dup", id, hash)`` or
    ``("reject", reason)``; ``meta`` carries its content hash and, under :data:`WARNINGS_KEY`, what the summary
    should say about it (``survey``: a survey format's spectrum, whose inverse variance a store should keep)."""
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
    if survey and not how.keep_ivar:
        warnings.append("its inverse variance is not kept: the store keeps none (a new store keeps it with --ivar yes)")
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


# what every file's task shares, set once per worker process by the pool's initializer (a task then pickles only
# its paths): the placement rules and the shared-memory row slots
_worker_setup: tuple[Placement, np.ndarray | None] | None = None


def _init_worker(how: Placement, slots: np.ndarray | None, parent: int) -> None:
    global _worker_setup
    _worker_setup = (how, slots)
    _follow(parent)
    # every file allocates ~20 MB of arrays of a few MB each: fresh pages cost as much as the grid work itself
    keep_freed_memory(trim=256 << 20)


def _follow(parent: int) -> None:
    """In a worker: end with the ingest process should it be killed (``kill -9``), rather than wait
    forever for tasks (each forked worker holds the task queue's write end too, so it never sees the
    end of the queue). Linux only (``prctl``); elsewhere an orphaned worker waits until killed."""
    if not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: this signal when the parent ends
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # it ended before prctl
        os._exit(1)


def _worker(group: int, paths: list[Path]) -> list[tuple]:
    """One task: a few files in a row (one round trip to the worker for several files). With shared
    ``slots``, each row is written into ``slots[group, j]`` and sent as None (the writer reads it there)."""
    assert _worker_setup is not None, "a worker runs after _init_worker"
    how, slots = _worker_setup
    if slots is None:
        return [process(p, how) for p in paths]
    results = [process(p, how, slots[group, j]) for j, p in enumerate(paths)]
    return [(r[0], None, r[2]) if r[0] == "ok" else r for r in results]  # "many": rows pickled, not in slots


def _shared_slots(groups: int, length: int, dtype) -> np.ndarray | None:
    """``(groups, TASK_FILES, L)`` rows in memory shared with forked workers (Linux), or None elsewhere
    (rows are then pickled). Rows cross to the writer without pickling, a pipe and a fresh array each."""
    if not sys.platform.startswith("linux"):  # macOS: forking is unsafe with its system libraries
        return None
    shape = (groups, TASK_FILES, length)
    return np.frombuffer(mmap.mmap(-1, int(np.prod(shape)) * np.dtype(dtype).itemsize), dtype).reshape(shape)


_MILES_ID = re.compile(r"(?:^|_)m(\d{4})V?$")
MILES_MISSING = (99999.0, 9999.0)  # MILES_params.db's "no value" for Teff and for logg / [Fe/H]


def miles_id(spectrum_id: str) -> str:
    """``MILES_res2.50_star_m0001V`` (a MILES file's id) -> ``m0001``; "" for other ids."""
    m = _MILES_ID.search(str(spectrum_id))
    return f"m{m.group(1)}" if m else ""


def read_miles_params(text: str) -> tuple[list[str], list[dict[str, str]]]:
    """The MILES parameter table as sdss-mangadap ships it (``MILES_params.db``: ``#`` comments, then
    ``NNNN Teff logg [Fe/H]`` per star, 99999 / 9999 for no value) -> ``(header, rows)`` keyed by ``miles_id``."""
    rows = []
    for line in text.splitlines():
        parts = line.split()
        if not parts or line.lstrip().startswith("#"):
            continue
        if len(parts) != 4 or not parts[0].isdigit():
            raise ValueError(f"MILES parameter table: unexpected line {line.strip()!r} (want: NNNN Teff logg [Fe/H])")
        values = [("" if float(v) in MILES_MISSING else v) for v in parts[1:]]
        rows.append({"miles_id": f"m{int(parts[0]):04d}", "teff": values[0], "logg": values[1], "feh": values[2]})
    return ["miles_id", "teff", "logg", "feh"], rows


class IngestLabels:
    """An external label table (:class:`~spectra_lightning.labels.LabelTable`, its rules) joined on spectrum
    id, file name, MILES id or object name; its columns are stored as ``meta/<column>``."""

    KEYS = ("id", "spectrum_id", "dp_id", "arcfile", "file", "miles_id", "object")

    def __init__(self, path: str | Path, text: tuple[str, ...] = ()):
        try:
            with open(path, encoding="utf-8-sig", newline="") as f:
                content = f.read()
        except (OSError, UnicodeDecodeError) as e:
            raise LabelTableError(
                f"{path}: cannot read the label table ({getattr(e, 'strerror', None) or e})"
            ) from None
        # MILES_params.db as sdss-mangadap ships it: its 99999 / 9999 are its "no value"
        miles = content.lstrip().startswith("#MILES")
        parsed = read_miles_params(content) if miles else read_csv(path, content)[:2]
        self.table = LabelTable(path, self.KEYS, text, self._norm, rows=parsed)
        self.table.require_key(self.KEYS)
        self.matched: set[int] = set()

    @staticmethod
    def _norm(key: str, value: str) -> str:
        value = value.strip()
        if key == "miles_id":
            return miles_id(value) or value
        if key in ("file", "arcfile"):
            value = Path(value).name
            for ext in (".gz", ".fits"):
                value = value[: -len(ext)] if value.endswith(ext) else value
        return value

    def match(self, meta: dict) -> int | None:
        """The table row of a spectrum (``meta``: its id, source and object), marked as matched; None if none."""
        i = self.table.row_of(
            {
                "id": meta["id"],
                "spectrum_id": meta["id"],
                "dp_id": meta["id"],
                "arcfile": meta["id"],
                "file": self._norm("file", meta["source"]),
                "object": meta["object"],
                "miles_id": miles_id(meta["id"]),
            }
        )
        if i is not None:
            self.matched.add(i)
        return i

    def mark_present(self, meta: dict[str, np.ndarray]) -> None:
        """Count as matched the rows that match spectra already in a store (``meta``: its columns)."""
        n = len(meta.get("id", []))
        blank = np.full(n, "")
        for sid, source, obj in zip(meta.get("id", blank), meta.get("source", blank), meta.get("object", blank)):
            self.match({"id": str(sid), "source": str(source), "object": str(obj).strip()})

    def lookup(self, meta: dict) -> dict:
        """The spectrum's labels ``{column: float or str}`` (NaN / "" when the table has no row for it)."""
        i = self.match(meta)
        out: dict = {}
        for name, values in self.table.numeric.items():
            out[f"label_{name}" if name in RESERVED else name] = float(values[i]) if i is not None else np.nan
        for name, cells in self.table.text.items():
            out[f"label_{name}" if name in RESERVED else name] = cells[i] if i is not None else ""
        if i is not None and not meta["object"] and "object" in self.table.keys:
            out["object"] = self.table.rows[i]["object"].strip()  # files without an OBJECT card
        return out

    def unmatched(self) -> list[str]:
        key = self.table.keys[0]
        return [self.table.rows[i][key] for i in range(len(self.table.rows)) if i not in self.matched]


RESERVED = {
    "id",
    "object",
    "instrument",
    "source",
    "product",
    "raw_median",
    "counts",
    "low_flux",
    "coverage",
    "n_masked_range",
    "snr",
    "mjd",
    "exptime",
    "airmass",
    "berv",
    "drs_rv",
    "date_obs",
    "crc32",
}


class IngestError(ValueError):
    """An ingest that cannot start or stored nothing; the message says why."""


def ingest(
    inputs: list[str],
    output: str,
    grid: SpectralGrid | str = "harps",
    workers: int = 1,
    labels: str | None = None,
    min_flux: float = MIN_FLUX,
    dtype: str = "float16",
    codec: str = DEFAULT_CODEC,
    progress: bool = True,
    batch: int = 16 * DEFAULT_CHUNK_ROWS,
    labels_text: tuple[str, ...] = (),
    ivar: bool | None = None,
    min_usable: float = MIN_USABLE,
) -> dict:
    """Ingest ``inputs`` into ``output``; returns a summary dict (also stored in the attributes).
    ``labels_text``: columns of the ``labels`` table kept as text (see :mod:`spectra_lightning.labels`).
    ``ivar``: a new store keeps each pixel's inverse variance (None: on a logarithmic grid, the surveys').
    No input file, or a new store that would hold no spectrum, is an :class:`IngestError` and leaves no store."""
    grid = SpectralGrid.parse(grid)
    if not 0 <= min_usable <= 1:
        raise IngestError(f"--min-usable must be a fraction in [0, 1], got {min_usable}")
    table = IngestLabels(labels, tuple(labels_text)) if labels else None
    paths, broken = expand_inputs(inputs)
    if not paths and not broken:
        raise IngestError(f"nothing to ingest: no FITS file ({', '.join(FITS_SUFFIXES)}) in {' '.join(inputs)}")
    created = False
    try:
        store = SpectraStore.open(output, mode="a")  # takes the writer lock: one writer at a time
    except StoreError as e:
        if "no store there" not in str(e):
            raise
        keep = grid.log if ivar is None else ivar
        attrs = {"producer": "ingest", "rejects": {}}
        store = SpectraStore.create(output, grid, dtype=dtype, codec=codec, attrs=attrs, ivar=keep)
        created = True
    with store:
        if store.grid != grid:
            raise StoreError(f"{output}: existing store is on grid {store.grid.describe()}, not {grid.describe()}")
        how = Placement(grid, min_flux, min_usable, str(store.flux.dtype), store.ivar is not None, Known.of(store.meta))
        try:
            summary = _ingest_into(store, paths, broken, how, workers, table, progress, batch)
        except BaseException:
            if created and store.n == 0:
                store.remove()
            raise
        if created and store.n == 0:  # every input rejected or skipped: no empty store is left to mistake
            store.remove()
            summary["store_removed"] = True
    return summary


class ReaderPool:
    """Files read and put on the grid in worker processes (even with one worker: this process then only
    writes), ``TASK_FILES`` per task, results taken in input order with a bounded number of tasks in
    flight. On Linux each task writes its rows into its own group of shared-memory slots, free again once
    the caller has copied them (rows cross without pickling). Use as a context manager."""

    def __init__(self, paths: list[Path], how: Placement, workers: int):
        self.paths, self.in_flight = paths, 2 * workers + 1
        self.slots = _shared_slots(self.in_flight, how.grid.length, how.dtype)
        grid_kernel.warm()  # once here rather than in every (forked) worker
        context = multiprocessing.get_context("fork") if self.slots is not None else None
        self.pool = ProcessPoolExecutor(
            workers, mp_context=context, initializer=_init_worker, initargs=(how, self.slots, os.getpid())
        )

    def __iter__(self) -> Iterator[tuple[int, tuple]]:
        """``(input index, result)`` in input order; an ``ok`` result's flux row ``(L,)`` is valid only until
        the next item is asked for (it may live in a slot the next task reuses)."""
        queue: deque = deque()
        free_groups = list(range(self.in_flight))
        for start in range(0, len(self.paths) + TASK_FILES, TASK_FILES):
            task = range(start, min(start + TASK_FILES, len(self.paths)))
            while queue and (len(queue) == self.in_flight or not task):
                done, group, fut = queue.popleft()
                for j, (i, result) in enumerate(zip(done, fut.result())):
                    if result[0] == "ok" and result[1] is None and self.slots is not None:
                        result = (result[0], self.slots[group, j], result[2])
                    yield i, result
                free_groups.append(group)
            if task:
                group = free_groups.pop()
                queue.append((task, group, self.pool.submit(_worker, group, [self.paths[i] for i in task])))

    def __enter__(self) -> ReaderPool:
        return self

    def __exit__(self, *exc) -> None:
        self.pool.shutdown(cancel_futures=True)


def meta_columns(rows: list[dict]) -> dict[str, np.ndarray]:
    """Per-spectrum metadata dicts -> columns over the union of their keys (different formats in one ingest
    carry different keys): a missing value is NaN in a numeric column, "" in a text one, -1 in an integer one."""
    columns = {}
    for key in dict.fromkeys(k for m in rows for k in m):
        sample = next(m[key] for m in rows if key in m)
        if isinstance(sample, str):
            fill: object = ""
        elif isinstance(sample, (bool, int, np.integer)):
            fill = -1
        else:
            fill = np.nan
        values = [m.get(key, fill) for m in rows]
        if fill == -1 and any(isinstance(v, (float, np.floating)) for v in values):
            values = [float(v) for v in values]
        columns[key] = np.array(values)
    return columns


class BatchWriter:
    """Rows into a store in input order: each chunk's rows are staged (compressed and written) as soon as the
    chunk is full, and every ``batch`` rows are committed (metadata, then the store's commit point), by one
    writer thread (compression and I/O release the GIL), so writing keeps pace with reading and a kill
    leaves whole committed spectra only. Rows go straight into one of two batch buffers: one fills while the
    writer commits the other (reusing them spares a fresh 80-170 MB array and its page faults per batch).
    Use as a context manager: leaving it finishes a batch being written, never cuts it."""

    def __init__(self, store: SpectraStore, batch: int):
        self.store, self.batch = store, batch
        self.buffers = [np.empty((batch, store.grid.length), store.flux.dtype) for _ in range(2)]
        # the inverse variances beside the rows, for a store that keeps them (0: a spectrum that came without)
        keep = store.ivar is not None
        self.ivar = [np.zeros((batch, store.grid.length), np.float32) for _ in range(2)] if keep else None
        self.pending: list[dict] = []  # metadata of the rows in buffers[0]
        self.chunk, self.position, self.staged = store.flux.chunks[0], store.n, 0  # position: row of pending[0]
        self.thread = ThreadPoolExecutor(1)
        self.staging: list = []
        self.committing: list = []

    def add(self, flux: np.ndarray, meta: dict, rejects: dict[str, str]) -> None:
        """Queue one row ``(L,)`` and its metadata; ``rejects`` is what a commit records with it."""
        ivar = meta.pop(IVAR_KEY, None)
        if self.ivar is not None:
            self.ivar[0][len(self.pending)] = 0.0 if ivar is None else ivar
        self.buffers[0][len(self.pending)] = flux
        self.pending.append(meta)
        if len(self.pending) >= self.batch:
            self.flush(rejects)
        elif (self.position + len(self.pending)) % self.chunk == 0:
            self._stage(len(self.pending))

    def _stage(self, upto: int) -> None:
        if upto > self.staged:
            ivar = self.ivar[0][self.staged : upto] if self.ivar is not None else None
            self.staging.append(self.thread.submit(self.store.stage, self.buffers[0][self.staged : upto], ivar))
            self.staged = upto

    def _commit(self, staged: list, columns: dict, rejects: dict[str, str]) -> None:
        for f in staged:  # done (same thread, earlier); a failed write stops the commit
            f.result()
        self.store.commit(columns)
        self.store.group.attrs["rejects"] = rejects

    def flush(self, rejects: dict[str, str]) -> None:
        """Commit the queued rows (in the writer thread; the previous commit is waited for first)."""
        if not self.pending:
            return
        self._stage(len(self.pending))
        columns = meta_columns(self.pending)
        self.position += len(self.pending)
        self.pending, self.staged = [], 0
        self.buffers.reverse()  # the writer has finished with the other one (waited for below)
        if self.ivar is not None:
            self.ivar.reverse()
        if self.committing:
            self.committing.pop().result()
        self.committing.append(self.thread.submit(self._commit, list(self.staging), columns, dict(rejects)))
        self.staging.clear()

    def __enter__(self) -> BatchWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.thread.shutdown(wait=True)
        if self.committing and exc[0] is None:
            self.committing.pop().result()


def unique_id(ident: str, digest: str) -> str:
    """The id of a spectrum whose own id another spectrum has: its id and the start of its content hash."""
    return f"{ident}-{digest[:8]}"


class Tally:
    """What an ingest did with each input, as the summary reports it; decides, for each placed spectrum, whether
    it is new (and under which id), a repeat of one stored, or the same spectrum as another file's."""

    def __init__(self, store: SpectraStore, how: Placement, broken: dict[str, str]):
        self.by_hash = dict(how.known.hashes)  # content hash -> stored id
        self.ids = set(store.meta.get("id", np.array([], str)).astype(str).tolist())
        self.rejects: dict[str, str] = {**dict(store.attrs.get("rejects", {})), **broken}
        self.counts = {"ingested": 0, "already_present": 0, "duplicates": 0, "skipped": 0, "rejected": len(broken)}
        self.skipped: dict[str, str] = {}
        self.duplicates: dict[str, str] = {}  # input -> the id of the same spectrum, stored once
        self.renamed: dict[str, str] = {}  # input -> the id it is stored under (another spectrum has its name)
        self.warnings: dict[str, str] = {}

    def repeat(self, name: str, ident: str, digest: str) -> None:
        """A spectrum whose content is stored already: a rerun's repeat, or the same spectrum under another name."""
        existing = self.by_hash.get(digest)
        # None: a row stored before hashes were kept, matched by id; or the file's own, perhaps made unique
        if existing is None or existing in (ident, unique_id(ident, digest)):
            self.counts["already_present"] += 1
        else:
            self.duplicates[name] = existing
            self.counts["duplicates"] += 1

    def new(self, name: str, meta: dict) -> bool:
        """Whether a placed spectrum is to be stored; gives it a unique id (its own, or with its hash)."""
        ident, digest = str(meta["id"]), meta["content_hash"]
        if digest in self.by_hash:
            self.repeat(name, ident, digest)
            return False
        if ident in self.ids:  # a different spectrum has this name (e.g. the same file name in two folders)
            meta["id"] = self.renamed[name] = unique_id(ident, digest)
        self.ids.add(meta["id"])
        self.by_hash[digest] = meta["id"]
        self.rejects.pop(name, None)
        self.counts["ingested"] += 1
        if notes := meta.pop(WARNINGS_KEY, None):
            self.warnings[name] = "; ".join(notes)
        return True

    def other(self, name: str, result: tuple) -> None:
        kind = result[0]
        if kind == "dup":
            self.repeat(name, result[1], result[2])
        elif kind == "skip":
            self.counts["skipped"] += 1
            self.skipped[name] = result[1]
        else:
            self.counts["rejected"] += 1
            self.rejects[name] = result[1]


def _ingest_into(
    store: SpectraStore,
    paths: list[Path],
    broken: dict[str, str],
    how: Placement,
    workers: int,
    table: IngestLabels | None,
    progress: bool,
    batch: int,
) -> dict:
    from tqdm.auto import tqdm

    if table is not None:
        table.mark_present(store.meta)  # rows matched by an earlier run are not "unmatched" in this one
    tally = Tally(store, how, broken)
    sizes = [p.stat().st_size for p in paths]
    t0, done_bytes = time.perf_counter(), 0
    with (
        tqdm(total=len(paths), desc="ingest", unit="file", disable=not progress) as bar,
        BatchWriter(store, batch) as writer,
        ReaderPool(paths, how, workers) as reader,
    ):

        def take(name: str, result: tuple) -> None:
            if result[0] != "ok":
                tally.other(name, result)
                return
            _, flux, meta = result
            if table is not None:
                meta.update(table.lookup(meta))  # by the spectrum's own id, before any renaming
            if tally.new(name, meta):
                writer.add(flux, meta, tally.rejects)

        for i, result in reader:
            if result[0] == "many":  # a survey file: its spectra one by one, rejects named by their place
                tally.rejects.pop(str(paths[i]), None)
                for k, one in enumerate(result[1]):
                    take(f"{paths[i]}[{k}]", one)
            else:
                take(str(paths[i]), result)
            done_bytes += sizes[i]
            bar.set_postfix_str(f"{done_bytes / max(time.perf_counter() - t0, 1e-9) / 1e6:.1f} MB/s", refresh=False)
            bar.update(1)
        writer.flush(tally.rejects)
    elapsed = time.perf_counter() - t0
    summary: dict[str, Any] = {
        **tally.counts,
        "files": len(paths),
        "seconds": elapsed,
        "files_per_s": len(paths) / max(elapsed, 1e-9),
        "mb_per_s": sum(sizes) / 1e6 / max(elapsed, 1e-9),
        "n_spectra": store.n,
        "unmatched_labels": table.unmatched() if table else [],
        "skipped_files": tally.skipped,
        "duplicates_of": tally.duplicates,
        "renamed": tally.renamed,
        "warnings": tally.warnings,
    }
    store.group.attrs["rejects"] = tally.rejects
    store.group.attrs["last_ingest"] = {k: v for k, v in summary.items() if not isinstance(v, dict)}
    inputs = {str(x) for x in paths} | set(broken)
    # a survey file's spectra are rejected one by one, as "FILE[k]"
    ours = {
        p: r for p, r in tally.rejects.items() if p in inputs or (p.endswith("]") and p.rsplit("[", 1)[0] in inputs)
    }
    return summary | {"rejects": ours}


EXIT_OK, EXIT_ERROR, EXIT_REJECTS = 0, 2, 3  # documented in `ingest --help` (1 stays Python's own: a crash)
EXIT_CODES = f"""exit codes:
  {EXIT_OK}  done: every input ingested (or already present, or a duplicate of another file's spectrum)
  {EXIT_REJECTS}  done, some inputs rejected: each is listed, and kept in the store's 'rejects' attribute
  {EXIT_ERROR}  nothing done: a bad option, no input file, or no input that could be ingested (no store is
     left behind then)"""


def report(s: dict, output: str, shown: int = 20) -> None:
    """The summary of an ingest, on stdout: counts, then each rejected, duplicate, renamed and warned input."""
    print(
        f"ingested {s['ingested']} spectra into {output} ({s['n_spectra']} in the store); "
        f"{s['already_present']} already present, {s['duplicates']} duplicates of another file's spectrum, "
        f"{s['skipped']} skipped (calibration/CCF), {s['rejected']} rejected, {len(s['warnings'])} with warnings; "
        f"{s['files_per_s']:.1f} files/s, {s['mb_per_s']:.1f} MB/s"
    )
    sections = (
        ("rejected", s["rejects"], "{}"),
        ("duplicate", s["duplicates_of"], "the same spectrum as {}, stored once"),
        ("renamed", s["renamed"], "stored as {} (another spectrum has its name)"),
        ("warning", s["warnings"], "{}"),
    )
    for label, entries, text in sections:
        for path, value in list(entries.items())[:shown]:
            print(f"  {label} {path}: {text.format(value)}")
        if len(entries) > shown:
            print(f"  ... and {len(entries) - shown} more {label} (store attribute 'last_ingest' counts them)")
    if s["unmatched_labels"]:
        print(
            f"  {len(s['unmatched_labels'])} label rows matched no spectrum: {', '.join(s['unmatched_labels'][:5])}"
            + (" ..." if len(s["unmatched_labels"]) > 5 else "")
        )


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(
        prog="python -m spectra_lightning ingest",
        description="Put archive FITS spectra (ESO ADP, HARPS s1d/e2ds, generic 1-D) on the grid in a store.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="FITS files (optionally .gz), directories or globs")
    p.add_argument("--output", required=True, help="store to create or extend (path or URL)")
    p.add_argument(
        "--labels",
        help="CSV joined on id / file / miles_id / object (its columns become metadata), or "
        "MILES_params.db as sdss-mangadap ships it; cells follow the rules of `analyze --help`",
    )
    p.add_argument(
        "--labels-text",
        action="append",
        default=[],
        metavar="COL",
        help="keep this label column as text even where its cells are numbers (repeatable)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=max(1, (os.cpu_count() or 2) - 1),
        help="reading processes; the main process writes (default %(default)s)",
    )
    p.add_argument(
        "--grid",
        default="harps",
        help="named grid (harps: the paper's, default; miles; quickstart; tiny; the survey log grids sdss, lamost, "
        "apogee) or an explicit one: START:STOP:STEP[:LENGTH] in Å (linear, air), e.g. 3540.5:7409.6:0.9, or "
        "log:START:STOP:STEP[:LENGTH] with STEP in dex (vacuum); :air or :vacuum at the end says the medium",
    )
    p.add_argument(
        "--min-flux",
        type=float,
        default=MIN_FLUX,
        help="flag (meta/low_flux) spectra in detector counts (ADP, s1d, e2ds) whose raw median is below "
        "this (default %(default)s, the paper's); normalised or calibrated spectra are never flagged",
    )
    p.add_argument(
        "--min-usable",
        type=float,
        default=MIN_USABLE,
        help="reject a spectrum when fewer of its pixels than this fraction are usable (finite flux and, where the "
        "file gives one, inverse variance > 0; default %(default)s)",
    )
    p.add_argument("--dtype", default="float16", choices=["float16", "float32"])
    p.add_argument(
        "--codec",
        default=DEFAULT_CODEC,
        choices=list(CODECS),
        help="compression of a new store (default lz4: fastest to stream; zstd ~8%% smaller)",
    )
    p.add_argument(
        "--batch",
        type=int,
        default=16 * DEFAULT_CHUNK_ROWS,
        help="spectra per committed append (default %(default)s; each append rewrites the metadata)",
    )
    p.add_argument(
        "--ivar",
        choices=["auto", "yes", "no"],
        default="auto",
        help="a new store keeps each pixel's inverse variance from the files that have it (the survey formats); "
        "auto: on a logarithmic grid (docs/store-format.md)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    a = p.parse_args(argv)
    if a.workers < 1:
        p.error(f"--workers must be at least 1, got {a.workers}")
    try:
        s = ingest(
            a.inputs,
            a.output,
            a.grid,
            a.workers,
            a.labels,
            a.min_flux,
            a.dtype,
            a.codec,
            progress=not a.quiet,
            batch=a.batch,
            labels_text=tuple(a.labels_text),
            ivar={"auto": None, "yes": True, "no": False}[a.ivar],
            min_usable=a.min_usable,
        )
    except (OSError, ValueError) as e:
        print(f"ingest: error: {e}", file=sys.stderr)
        return EXIT_ERROR
    report(s, a.output)
    if s.get("store_removed"):
        print(f"ingest: error: no input could be ingested: no store written at {a.output}", file=sys.stderr)
        return EXIT_ERROR
    return EXIT_REJECTS if s["rejects"] else EXIT_OK
