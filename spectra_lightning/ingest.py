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
from pathlib import Path
from typing import Any

import numpy as np

from . import grid_kernel
from .grid import SpectralGrid, air_to_vacuum, vacuum_to_air
from .labels import LabelTable, LabelTableError, read_csv
from .readers import NotASpectrum, RejectError, Spectrum, SurveySpectrum, read_spectrum, read_survey
from .store import CODECS, DEFAULT_CHUNK_ROWS, DEFAULT_CODEC, SpectraStore, StoreError

FITS_SUFFIXES = (".fits", ".fit", ".fts", ".fits.gz", ".fit.gz", ".fts.gz")
MIN_FLUX = 50.0  # the paper's raw median-flux cut
IVAR_KEY = "_ivar"  # a placed spectrum's inverse-variance row, carried in its metadata to the writer
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


def process(
    path: Path,
    grid: SpectralGrid,
    min_flux: float,
    known: frozenset | set,
    dtype: str = "float16",
    out: np.ndarray | None = None,
    keep_ivar: bool = False,
) -> tuple:
    """One input -> ``("ok", flux (L,) in dtype, meta)``, ``("dup", id)``, ``("skip"|"reject", reason)``, or
    for a survey file ``("many", [such results, one per spectrum])``; a single spectrum's flux is written into
    ``out`` when given; ``keep_ivar``: its inverse variance rides in the metadata (:func:`place`)."""
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
        except RejectError:
            spectra = None
        if spectra is not None:
            placed = [place(survey_spectrum(s, grid), grid, min_flux, known, dtype, None, keep_ivar) for s in spectra]
            return ("many", placed)
        if spec is None:
            return ("reject", archive_reason)
    return place(spec, grid, min_flux, known, dtype, out, keep_ivar)


def survey_spectrum(s: SurveySpectrum, grid: SpectralGrid) -> Spectrum:
    """A survey spectrum as the grid work takes it: pixels of zero inverse variance masked (NaN), wavelengths in
    the grid's medium (air or vacuum), the inverse variance kept (1-D: per pixel, :func:`ivar_row`)."""
    usable = s.ivar > 0
    flux = np.where(usable, s.flux, np.nan)
    wave = s.wave
    if s.medium != grid.medium:
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


def place(
    spec: Spectrum,
    grid: SpectralGrid,
    min_flux: float,
    known: frozenset | set,
    dtype: str = "float16",
    out: np.ndarray | None = None,
    keep_ivar: bool = False,
) -> tuple:
    """One read spectrum on the grid -> ``("ok", flux (L,) in dtype, meta)``, ``("dup", id)`` or ``("reject",
    reason)``."""
    if spec.meta["id"] in known:
        return ("dup", spec.meta["id"])
    if spec.flux.size == 0 or not np.isfinite(spec.flux).any():
        return ("reject", "flux is empty or all non-finite")
    row, n_valid, raw_median = on_grid_row(spec, grid, dtype, out)
    if n_valid == 0:
        finite_wave = spec.wave[np.isfinite(spec.wave)]
        lo, hi = (finite_wave.min(), finite_wave.max()) if finite_wave.size else (np.nan, np.nan)
        if hi < grid.wave_min or lo > grid.wave_max:
            return (
                "reject",
                f"wavelength {lo:.1f}–{hi:.1f} Å lies outside the grid {grid.wave_min:g}–{grid.wave_max:g} Å",
            )
        return ("reject", "no finite flux on the grid")
    if not raw_median > 0:
        return ("reject", f"median flux on the grid is {raw_median:g} (not positive)")
    n_range = mask_out_of_range(row)
    meta = dict(spec.meta)
    counts = spec.product in COUNT_PRODUCTS
    meta.update(
        product=spec.product,
        raw_median=raw_median,
        counts=int(counts),
        low_flux=int(counts and raw_median < min_flux),
        coverage=(n_valid - n_range) / grid.n_valid,
        n_masked_range=n_range,
    )
    if keep_ivar and spec.ivar is not None and spec.wave.ndim == 1:  # rides with the metadata to the writer
        meta[IVAR_KEY] = ivar_row(spec, grid, raw_median, row)
    return ("ok", row, meta)


# what every file's task shares, set once per process (a task then pickles only its paths)
_WORKER_SETUP: tuple = (None, MIN_FLUX, frozenset(), "float16", None, False)


def _init_worker(grid, min_flux, known, dtype, slots, keep_ivar, parent):
    global _WORKER_SETUP
    _WORKER_SETUP = (grid, min_flux, known, dtype, slots, keep_ivar)
    _follow(parent)
    _reuse_freed_memory()


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


def _reuse_freed_memory() -> None:
    """In a worker process (ours alone): let glibc keep freed blocks for reuse instead of returning
    them to the kernel. Every file allocates ~20 MB of arrays of a few MB each; fresh pages fault
    in one at a time, which cost as much as the grid work itself. No-op off glibc."""
    try:
        libc = ctypes.CDLL(None)  # this process's own C library
        libc.mallopt(-3, 32 << 20)  # M_MMAP_THRESHOLD: serve blocks up to 32 MB from the heap
        libc.mallopt(-1, 256 << 20)  # M_TRIM_THRESHOLD: keep up to 256 MB of free heap
    except (OSError, AttributeError):
        pass


def _worker(group: int, paths: list[Path]) -> list[tuple]:
    """One task: a few files in a row (one round trip to the worker for several files). With shared
    ``slots``, each row is written into ``slots[group, j]`` and sent as None (the writer reads it there)."""
    grid, min_flux, known, dtype, slots, keep_ivar = _WORKER_SETUP
    if slots is None:
        return [process(p, grid, min_flux, known, dtype, keep_ivar=keep_ivar) for p in paths]
    results = [process(p, grid, min_flux, known, dtype, slots[group, j], keep_ivar) for j, p in enumerate(paths)]
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
) -> dict:
    """Ingest ``inputs`` into ``output``; returns a summary dict (also stored in the attributes).
    ``labels_text``: columns of the ``labels`` table kept as text (see :mod:`spectra_lightning.labels`).
    ``ivar``: a new store keeps each pixel's inverse variance (None: on a logarithmic grid, the surveys')."""
    grid = SpectralGrid.parse(grid)
    paths, broken = expand_inputs(inputs)
    table = IngestLabels(labels, tuple(labels_text)) if labels else None
    try:
        store = SpectraStore.open(output, mode="a")  # takes the writer lock: one writer at a time
    except StoreError as e:
        if "no store there" not in str(e):
            raise
        keep = grid.log if ivar is None else ivar
        attrs = {"producer": "ingest", "rejects": {}}
        store = SpectraStore.create(output, grid, dtype=dtype, codec=codec, attrs=attrs, ivar=keep)
    with store:
        if store.grid != grid:
            raise StoreError(f"{output}: existing store is on grid {store.grid.describe()}, not {grid.describe()}")
        return _ingest_into(store, paths, broken, grid, workers, table, min_flux, progress, batch)


class ReaderPool:
    """Files read and put on the grid in worker processes (even with one worker: this process then only
    writes), ``TASK_FILES`` per task, results taken in input order with a bounded number of tasks in
    flight. On Linux each task writes its rows into its own group of shared-memory slots, free again once
    the caller has copied them (rows cross without pickling). Use as a context manager."""

    def __init__(
        self,
        paths: list[Path],
        grid: SpectralGrid,
        workers: int,
        min_flux: float,
        known: set[str],
        dtype: np.dtype,
        keep_ivar: bool = False,
    ):
        self.paths, self.in_flight = paths, 2 * workers + 1
        self.slots = _shared_slots(self.in_flight, grid.length, dtype)
        setup = (grid, min_flux, frozenset(known), str(dtype), self.slots, keep_ivar)
        grid_kernel.warm()  # once here rather than in every (forked) worker
        context = multiprocessing.get_context("fork") if self.slots is not None else None
        self.pool = ProcessPoolExecutor(
            workers, mp_context=context, initializer=_init_worker, initargs=(*setup, os.getpid())
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


def _ingest_into(
    store: SpectraStore,
    paths: list[Path],
    broken: dict[str, str],
    grid: SpectralGrid,
    workers: int,
    table: IngestLabels | None,
    min_flux: float,
    progress: bool,
    batch: int,
) -> dict:
    from tqdm.auto import tqdm

    known = set(store.meta.get("id", np.array([], str)).tolist())
    if table is not None:
        table.mark_present(store.meta)  # rows matched by an earlier run are not "unmatched" in this one
    rejects: dict[str, str] = dict(store.attrs.get("rejects", {}))
    rejects.update(broken)
    counts = {"ingested": 0, "already_present": 0, "skipped": 0, "rejected": len(broken)}
    skipped: dict[str, str] = {}
    sizes = [p.stat().st_size for p in paths]
    t0, done_bytes = time.perf_counter(), 0
    with (
        tqdm(total=len(paths), desc="ingest", unit="file", disable=not progress) as bar,
        BatchWriter(store, batch) as writer,
        ReaderPool(paths, grid, workers, min_flux, known, store.flux.dtype, store.ivar is not None) as reader,
    ):

        def take(name: str, result: tuple) -> None:
            kind = result[0]
            if kind == "ok" and result[2]["id"] not in known:
                _, flux, meta = result
                known.add(meta["id"])
                rejects.pop(name, None)
                if table is not None:
                    meta.update(table.lookup(meta))
                writer.add(flux, meta, rejects)
                counts["ingested"] += 1
            elif kind in ("ok", "dup"):  # ok: a second file with the same id in this run
                counts["already_present"] += 1
            elif kind == "skip":
                counts["skipped"] += 1
                skipped[name] = result[1]
            else:
                counts["rejected"] += 1
                rejects[name] = result[1]

        for i, result in reader:
            if result[0] == "many":  # a survey file: its spectra one by one, rejects named by their place
                rejects.pop(str(paths[i]), None)
                for k, one in enumerate(result[1]):
                    take(f"{paths[i]}[{k}]", one)
            else:
                take(str(paths[i]), result)
            done_bytes += sizes[i]
            bar.set_postfix_str(f"{done_bytes / max(time.perf_counter() - t0, 1e-9) / 1e6:.1f} MB/s", refresh=False)
            bar.update(1)
        writer.flush(rejects)
    elapsed = time.perf_counter() - t0
    summary: dict[str, Any] = {
        **counts,
        "files": len(paths),
        "seconds": elapsed,
        "files_per_s": len(paths) / max(elapsed, 1e-9),
        "mb_per_s": sum(sizes) / 1e6 / max(elapsed, 1e-9),
        "n_spectra": store.n,
        "unmatched_labels": table.unmatched() if table else [],
        "skipped_files": skipped,
    }
    store.group.attrs["rejects"] = rejects
    store.group.attrs["last_ingest"] = {k: v for k, v in summary.items() if k != "skipped_files"}
    inputs = {str(x) for x in paths} | set(broken)
    # a survey file's spectra are rejected one by one, as "FILE[k]"
    ours = {p: r for p, r in rejects.items() if p in inputs or (p.endswith("]") and p.rsplit("[", 1)[0] in inputs)}
    return summary | {"rejects": ours}


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(
        prog="python -m spectra_lightning ingest",
        description="Put archive FITS spectra (ESO ADP, HARPS s1d/e2ds, generic 1-D) on the grid in a store.",
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
        )
    except (OSError, ValueError) as e:
        print(f"ingest: error: {e}", file=sys.stderr)
        return 2
    print(
        f"ingested {s['ingested']} spectra into {a.output} ({s['n_spectra']} in the store); "
        f"{s['already_present']} already present, {s['skipped']} skipped (calibration/CCF), "
        f"{s['rejected']} rejected; {s['files_per_s']:.1f} files/s, {s['mb_per_s']:.1f} MB/s"
    )
    for path, reason in list(s["rejects"].items())[:20]:
        print(f"  rejected {path}: {reason}")
    if len(s["rejects"]) > 20:
        print(f"  ... and {len(s['rejects']) - 20} more (store attribute 'rejects')")
    if s["unmatched_labels"]:
        print(
            f"  {len(s['unmatched_labels'])} label rows matched no spectrum: {', '.join(s['unmatched_labels'][:5])}"
            + (" ..." if len(s["unmatched_labels"]) > 5 else "")
        )
    return 1 if s["rejects"] else 0
