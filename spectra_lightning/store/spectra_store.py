"""The Zarr v3 store of on-grid spectra, shared by every producer and every reader.

Layout (see ``docs/store-format.md``)::

    STORE.zarr/            attributes: format, version, grid, n_spectra, producer, ...
      flux    (N, L)       float16 (or float32); NaN marks masked pixels;
                           chunks of (chunk_rows, L): 16 spectra per file or object
      meta/<name> (N,)     per-spectrum metadata and labels; units in attributes

Appends are whole spectra: rows and metadata are written first, then the
``n_spectra`` attribute is advanced. Readers trust only ``n_spectra`` rows, so a
writer killed at any moment leaves a store that opens with whole spectra only.
One writer at a time: opening for writing takes the lock beside the store (``lock.py``).
Each row's CRC-32 is committed with its metadata (``meta/crc32``), so :func:`verify` can tell a row
whose flux does not belong to its id.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import zlib
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import numpy as np
import zarr
from zarr.codecs import BloscCodec
from zarr.core.array_spec import ArrayConfigParams

from spectra_lightning.physics.grid import SpectralGrid
from spectra_lightning.store.lock import WriterLock

FORMAT = "spectra_lightning.store"  # a data format name, not a module path
# 2: the grid may be logarithmic and in vacuum (its description says so); 3: the store has an ivar array (stores
# without one are still written as 2). Older stores read as before
VERSION = 3
DEFAULT_CHUNK_ROWS = 16  # ~5 MB per chunk at full size; see docs/store-format.md for the measurements
# metadata rows per chunk: an append rewrites the last chunk of every column, so small enough that this
# stays cheap (an append of 256 rows to 65,536-row chunks cost ~3x more), large enough to read in few requests
META_CHUNK_ROWS = 4096
UNITS = {
    "rv": "km/s",
    "teff": "K",
    "logg": "dex (cgs)",
    "feh": "dex",
    "vsini": "km/s",
    "snr": "",
    "mjd": "d",
    "exptime": "s",
    "airmass": "",
    "berv": "km/s",
    "drs_rv": "km/s",
    "raw_median": "adu",
}


def _location(path) -> str:
    """Local paths and ``file://`` URLs go to zarr's LocalStore; other URLs to fsspec."""
    path = str(path)
    return path[len("file://") :] if path.startswith("file://") else path


# Blosc codecs for the flux, all with bit-shuffle (float16 rows of a smooth continuum compress well).
# Measured on real HARPS rows (benchmarks/loader_speed.py, docs/benchmarks.md): zstd packs ~8 % tighter;
# lz4 streams ~1.7x faster, which is what 182 epochs of reads pay for.
Mode = Literal["r", "r+", "a", "w", "w-"]
# every chunk written, even one the fill value alone would leave out: a missing chunk is then always damage
WRITE_EMPTY_CHUNKS: ArrayConfigParams = {"order": "C", "write_empty_chunks": True}
Cname = Literal["lz4", "zstd", "lz4hc"]
CODECS: dict[str, tuple[Cname, int] | None] = {
    "lz4": ("lz4", 5),
    "zstd": ("zstd", 3),
    "lz4hc": ("lz4hc", 5),
    "none": None,
}
DEFAULT_CODEC = "lz4"


def _open_group(path: str | os.PathLike, mode: Mode, storage_options: dict | None) -> zarr.Group:
    """The zarr group at ``path``. For fsspec URLs the listings the file system cached in this process
    are dropped first: another process (an ingest) may have added arrays since."""
    if not is_remote(path):
        return zarr.open_group(_location(path), mode=mode, storage_options=storage_options)
    store = zarr.storage.FsspecStore.from_url(str(path), storage_options=storage_options, read_only=mode == "r")
    store.fs.invalidate_cache()
    return zarr.open_group(store, mode=mode)


def array_at(group: zarr.Group, name: str) -> zarr.Array:
    """``group[name]``, which must be an array (zarr types a child as array or group)."""
    node = group[name]
    if not isinstance(node, zarr.Array):
        raise StoreError(f"{group.store_path}: {name} is not an array")
    return node


def group_at(group: zarr.Group, name: str) -> zarr.Group:
    """``group[name]``, which must be a group."""
    node = group[name]
    if not isinstance(node, zarr.Group):
        raise StoreError(f"{group.store_path}: {name} is not a group")
    return node


def _compressors(codec: str) -> BloscCodec | None:
    if codec not in CODECS:
        raise ValueError(f"unknown codec {codec!r}; choose one of {', '.join(CODECS)}")
    spec = CODECS[codec]
    if spec is None:
        return None
    cname, level = spec
    return BloscCodec(cname=cname, clevel=level, shuffle="bitshuffle")


def _check_rows(meta: dict, b: int) -> None:
    for name, col in meta.items():
        if len(col) != b:
            raise ValueError(f"metadata {name!r} has {len(col)} rows for {b} spectra")


class StoreError(ValueError):
    """A store that is missing, of another format, or inconsistent."""


class DamagedStoreError(StoreError):
    """Stored data that cannot be trusted: an undecodable or missing chunk, a row whose flux does not match its
    checksum. The message names the store, the array, the chunk and the rows."""


def row_ranges(rows) -> str:
    """``[3, 4, 5, 9]`` -> ``"3-5, 9"`` (at most 8 ranges, then a count)."""
    rows = np.unique(np.asarray(rows, dtype=np.int64))
    if not rows.size:
        return ""
    breaks = np.flatnonzero(np.diff(rows) != 1) + 1
    parts = [f"{r[0]}-{r[-1]}" if len(r) > 1 else f"{r[0]}" for r in np.split(rows, breaks)]
    return ", ".join(parts[:8]) + (f" and {len(parts) - 8} more ranges" if len(parts) > 8 else "")


def error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"[:200]


def stored_keys(array: zarr.Array) -> set[str]:
    """The keys of the objects (chunks or shards) an array has in its store, relative to the array."""
    from zarr.core.sync import sync

    prefix = array.store_path.path

    async def listing() -> list[str]:
        return [key async for key in array.store_path.store.list_prefix(prefix)]

    return {key[len(prefix) :].lstrip("/") for key in sync(listing())}


def expected_keys(array: zarr.Array, rows: int) -> dict[str, tuple[int, int]]:
    """``{key: (first row, last row)}`` of every stored object an array needs for its first ``rows`` rows."""
    block = (array.shards or array.chunks)[0]
    tail = (0,) * (array.ndim - 1)
    return {chunk_key(array, (i, *tail)): (i * block, min((i + 1) * block, rows) - 1) for i in range(-(-rows // block))}


def chunk_key(array: zarr.Array, index: tuple[int, ...]) -> str:
    """The store key of one chunk (or shard) of ``array``, relative to the array."""
    return str(array.metadata.encode_chunk_key(index))


def row_checksums(flux: np.ndarray) -> np.ndarray:
    """``(B,)`` CRC-32 of each row's bytes as stored (``flux (B, L)`` in the store's dtype)."""
    flux = np.ascontiguousarray(flux)
    return np.array([zlib.crc32(row) for row in flux], dtype=np.int64)


def fill_masked(flux: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Stored rows ``(B, L)`` (NaN = masked) -> network input ``(B, L)`` float32 with every non-finite
    pixel 0, and its bool mask ``(B, L)`` (True = data)."""
    mask = np.isfinite(flux)
    return np.where(mask, flux, 0.0).astype(np.float32), mask


def is_remote(path) -> bool:
    """An fsspec URL other than ``file://`` (no local directory to build aside and rename)."""
    path = str(path)
    return "://" in path and not path.startswith("file://")


class SpectraStore:
    """A handle on a store. Open with :meth:`open`, make with :meth:`create`.

    ``path`` may be a local path or an fsspec URL (``file://``, ``memory://``, ``s3://`` ...);
    ``storage_options`` are passed to fsspec. A store opened for writing (``mode="a"``, or
    :meth:`create`) holds the writer lock until :meth:`close` (or the end of a ``with`` block).
    """

    def __init__(self, group: zarr.Group, path: str, lock: WriterLock | None = None):
        self.group, self.path = group, str(path)
        attrs: dict[str, Any] = dict(group.attrs)
        if attrs.get("format") != FORMAT:
            raise StoreError(f"{path}: not a spectra_lightning store (format={attrs.get('format')!r})")
        if attrs.get("version", 0) > VERSION:
            raise StoreError(f"{path}: store version {attrs['version']} is newer than this code ({VERSION})")
        self.grid = SpectralGrid(**attrs["grid"])
        self.flux = array_at(group, "flux")
        # inverse variance of each stored flux pixel, in its (normalised) units; 0: no information
        self.ivar = array_at(group, "ivar") if "ivar" in set(group.array_keys()) else None
        self.lock = lock
        self._staged = 0  # rows written beyond the commit point by stage()
        self._staged_crc: list[np.ndarray] = []
        self._staged_ivar_crc: list[np.ndarray] = []
        self._check_shapes()

    def _check_shapes(self) -> None:
        """Cheap consistency checks at open: every committed row has its flux and its metadata."""
        n = int(self.attrs.get("n_spectra", 0))
        if self.flux.shape[0] < n:
            raise StoreError(
                f"{self.path}: damaged: n_spectra is {n} but flux has {self.flux.shape[0]} rows "
                "(run `python -m spectra_lightning verify`)"
            )
        short = [f"{name} ({arr.shape[0]})" for name, arr in self.meta_group.arrays() if arr.shape[0] < n]
        if short:
            raise StoreError(f"{self.path}: damaged: metadata shorter than its {n} spectra: {', '.join(short)}")

    def close(self) -> None:
        """Release the writer lock (a no-op for read-only handles)."""
        if self.lock is not None:
            self.lock.release()
            self.lock = None

    def remove(self) -> None:
        """Delete the store, by its writer (holding the lock): what an ingest that stored nothing leaves behind."""
        self._writable()
        backend = self.group.store
        if isinstance(backend, zarr.storage.LocalStore):
            shutil.rmtree(backend.root, ignore_errors=True)
        elif isinstance(backend, zarr.storage.FsspecStore):
            backend.fs.rm(backend.path, recursive=True)
        else:
            raise StoreError(f"{self.path}: cannot remove a store of type {type(backend).__name__}")

    def __enter__(self) -> SpectraStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- opening and creating -------------------------------------------------
    @classmethod
    def open(
        cls,
        path: str | os.PathLike,
        mode: Mode = "r",
        storage_options: dict | None = None,
        check_checksums: bool = True,
    ) -> SpectraStore:
        """A store at ``path``; ``check_checksums``: whether reads check rows against their CRC-32."""
        store = cls._open(path, mode, storage_options)
        store.check_checksums = check_checksums
        return store

    @classmethod
    def _open(cls, path: str | os.PathLike, mode: Mode, storage_options: dict | None) -> SpectraStore:
        try:
            # check it exists first: mode "a" would silently create an empty group
            group = _open_group(path, "r", storage_options)
        except (FileNotFoundError, zarr.errors.GroupNotFoundError) as e:
            raise StoreError(f"{path}: no store there ({type(e).__name__})") from None
        except Exception as e:
            if not is_remote(path):
                raise
            # credentials, endpoint, permissions: the object store's own words, on one line, naming the store
            reason = " ".join(str(e).split()) or type(e).__name__
            raise StoreError(f"{path}: cannot open ({type(e).__name__}: {reason})") from None
        if mode == "r":
            return cls(group, str(path))
        lock = WriterLock(path, storage_options).acquire()
        try:
            group = _open_group(path, mode, storage_options)
            return cls(group, str(path), lock)
        except BaseException:
            lock.release()
            raise

    @classmethod
    def create(
        cls,
        path,
        grid: SpectralGrid,
        dtype: str = "float16",
        chunk_rows: int = DEFAULT_CHUNK_ROWS,
        attrs: dict | None = None,
        storage_options: dict | None = None,
        codec: str = DEFAULT_CODEC,
        lock: WriterLock | None = None,
        ivar: bool = False,
    ) -> SpectraStore:
        """A new, empty store holding the writer lock (``lock``: one already held for it); ``ivar``: it keeps
        each pixel's inverse variance too (an ``ivar`` array beside ``flux``, float32)."""
        if dtype not in ("float16", "float32"):
            raise ValueError(f"flux dtype must be float16 or float32, got {dtype!r}")
        own = lock is None
        held = WriterLock(path, storage_options).acquire() if lock is None else lock
        try:
            try:
                group = _open_group(path, "w-", storage_options)
            except (zarr.errors.ContainsGroupError, FileExistsError):  # local / fsspec stores
                raise StoreError(f"{path}: already exists") from None
            group.create_array(
                "flux",
                shape=(0, grid.length),
                dtype=dtype,
                chunks=(chunk_rows, grid.length),
                fill_value=np.nan,
                compressors=_compressors(codec),
            )
            if ivar:  # float32: (S/N)² of a good pixel passes float16's 65,504; NaN only where a chunk is lost
                group.create_array(
                    "ivar",
                    shape=(0, grid.length),
                    dtype="float32",
                    chunks=(chunk_rows, grid.length),
                    fill_value=np.nan,
                    compressors=_compressors(codec),
                )
            group.create_group("meta")
            group.attrs.update(
                {
                    "format": FORMAT,
                    "version": VERSION if ivar else 2,  # a store without ivar reads with version-2 code too
                    "grid": grid.describe(),
                    "n_spectra": 0,
                    "checksums": True,  # every row has its CRC-32: verify holds a row without one as damage
                    **(attrs or {}),
                }
            )
            return cls(group, str(path), held)
        except BaseException:
            if own:
                held.release()
            raise

    @classmethod
    @contextlib.contextmanager
    def create_atomic(cls, path, grid: SpectralGrid, storage_options: dict | None = None, **kw):
        """Create a store that appears at ``path`` only when complete: built beside it and renamed
        (local paths), or written in place under the writer lock (fsspec URLs, no rename there)."""
        with WriterLock(path, storage_options) as lock:
            if is_remote(path):
                store = cls.create(path, grid, storage_options=storage_options, lock=lock, **kw)
                yield store
                return
            final = Path(_location(path))
            if final.exists():
                raise StoreError(f"{path}: already exists")
            tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
            shutil.rmtree(tmp, ignore_errors=True)
            try:
                store = cls.create(tmp, grid, lock=lock, **kw)
                yield store
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, final)
            store.path = str(final)

    # -- reading ----------------------------------------------------------------
    @property
    def block_rows(self) -> int:
        """Rows stored together (a shard, else a chunk): the unit a streaming reader fetches."""
        return int((self.flux.shards or self.flux.chunks)[0])

    @property
    def n(self) -> int:
        """Committed spectra (rows beyond it are an interrupted append)."""
        return min(int(self.attrs["n_spectra"]), self.flux.shape[0])

    def __len__(self) -> int:
        return self.n

    @property
    def attrs(self) -> dict[str, Any]:
        return dict(self.group.attrs)

    @property
    def meta_group(self) -> zarr.Group:
        """The group of metadata columns (``meta/<name>``, one row per spectrum)."""
        return group_at(self.group, "meta")

    @cached_property
    def meta(self) -> dict[str, np.ndarray]:
        """All metadata columns ``{name: (N,)}`` read once (small next to the flux)."""
        n = self.n
        out = {}
        for name, arr in self.meta_group.arrays():
            try:
                col = np.asarray(arr[:n])
            except Exception as e:
                raise DamagedStoreError(f"{self.path}: array meta/{name} cannot be decoded ({error_text(e)})") from e
            out[name] = col.astype(object).astype(str) if col.dtype.kind == "T" else col  # StringDType -> str
        return out

    def labels(self, names: list[str] | tuple[str, ...]) -> np.ndarray:
        """``(N, len(names))`` float32 labels; NaN where a column is missing or empty."""
        out = np.full((self.n, len(names)), np.nan, np.float32)
        for j, name in enumerate(names):
            col = self.meta.get(name)
            if col is not None and col.dtype.kind in "fiu":
                out[:, j] = col
        return out

    @property
    def label_names(self) -> list[str]:
        return [k for k, v in self.meta.items() if v.dtype.kind == "f"]

    def read(self, index) -> np.ndarray:
        """Flux rows ``(B, L)`` float32 for sorted or unsorted indices; NaN = masked. Checked as
        :meth:`check_rows` says."""
        return self._read(self.flux, "flux", index, self.check_rows)

    def read_block(self, start: int, stop: int) -> np.ndarray:
        """Rows ``start..stop-1`` ``(B, L)`` in the stored dtype (one contiguous read), checked as
        :meth:`check_rows` says."""
        return self._read_block(self.flux, "flux", start, stop, self.check_rows)

    def read_ivar(self, index) -> np.ndarray:
        """Inverse variances ``(B, L)`` float32 of the flux rows ``index`` (0 where a pixel carries no
        information); the store must keep them (:attr:`ivar`). A committed row that reads as fill (a lost chunk)
        or does not match its checksum (``meta/ivar_crc32``) is a :class:`DamagedStoreError`."""
        return self._read(self._ivar_array(), "ivar", index, self._check_ivar)

    def read_ivar_block(self, start: int, stop: int) -> np.ndarray:
        """Inverse variances of rows ``start..stop-1`` ``(B, L)`` float32, checked as :meth:`read_ivar` says."""
        return np.asarray(self._read_block(self._ivar_array(), "ivar", start, stop, self._check_ivar), np.float32)

    def _ivar_array(self) -> zarr.Array:
        if self.ivar is None:
            raise StoreError(f"{self.path}: this store keeps no inverse variance (ingest with --ivar yes)")
        return self.ivar

    def _read(self, array: zarr.Array, name: str, index, check: Callable[[np.ndarray, np.ndarray], None]) -> np.ndarray:
        """Rows ``index`` of ``array`` ``(B, L)`` float32 in the order asked, read in row order, checked."""
        index = np.asarray(index)
        if index.size and (index.min() < 0 or index.max() >= self.n):
            raise IndexError(f"{self.path}: index out of range 0..{self.n - 1}")
        order = np.argsort(index, kind="stable")
        if not index.size:
            return np.empty((0, self.grid.length), np.float32)
        rows = self._decoded(lambda: array.oindex[index[order], :], index, name)
        check(index[order], rows)
        out = np.empty_like(rows, dtype=np.float32)
        out[order] = rows
        return out

    def _read_block(
        self, array: zarr.Array, name: str, start: int, stop: int, check: Callable[[np.ndarray, np.ndarray], None]
    ) -> np.ndarray:
        rows = self._decoded(lambda: array[start:stop], np.arange(start, stop), name)
        check(np.arange(start, stop), rows)
        return rows

    def _mismatched(self, index: np.ndarray, rows: np.ndarray, column: str) -> np.ndarray:
        """``(B,)`` True where a row's bytes do not match its CRC-32 in ``meta/<column>`` (never, with
        :attr:`check_checksums` off, for rows without one, or in a store without the column)."""
        bad = np.zeros(len(index), bool)
        crc = self.meta.get(column) if self.check_checksums else None
        if crc is not None:
            have = crc[index]
            known = have >= 0
            bad[known] = row_checksums(rows[known]) != have[known]
        return bad

    def _check_ivar(self, index: np.ndarray, rows: np.ndarray) -> None:
        lost = np.isnan(rows).any(axis=1)  # written values are finite; NaN is the fill value of a lost chunk
        bad = lost | self._mismatched(index, rows, "ivar_crc32")
        if bad.any():
            raise DamagedStoreError(
                f"{self.path}: rows {row_ranges(index[bad])} of ivar are missing or do not match their "
                f"checksums (run `python -m spectra_lightning verify {self.path}`)"
            )

    #: check every row read against its CRC-32 (``meta/crc32``); its cost is measured in docs/benchmarks.md
    check_checksums = True

    def check_rows(self, index: np.ndarray, rows: np.ndarray) -> None:
        """Fail (:class:`DamagedStoreError`) on committed rows that hold no data at all (a lost chunk reads as
        NaN) or, with :attr:`check_checksums`, whose bytes ``rows (B, L)`` (stored dtype) do not match their
        checksum."""
        empty = ~np.isfinite(rows).any(axis=1)
        if empty.any():
            raise DamagedStoreError(
                f"{self.path}: rows {row_ranges(index[empty])} of flux hold no data although committed (a chunk "
                f"is missing or damaged; run `python -m spectra_lightning verify {self.path}`)"
            )
        bad = self._mismatched(index, rows, "crc32")
        if bad.any():
            raise DamagedStoreError(
                f"{self.path}: rows {row_ranges(index[bad])} of flux do not match their checksums (damaged "
                f"chunk; run `python -m spectra_lightning verify {self.path}`)"
            )

    def damaged_chunks(self, rows: np.ndarray, name: str = "flux", checksums: bool = False) -> list[dict]:
        """The chunks of array ``name`` (``flux`` or ``ivar``) holding any of ``rows`` that cannot be decoded:
        ``[{"array", "chunk", "rows": [first, last], "error"}]`` (each chunk read alone); with ``checksums``, also
        those that decode to rows failing their checksums (a truncated blosc chunk can read past its end)."""
        column = "crc32" if name == "flux" else f"{name}_crc32"
        array = array_at(self.group, name)
        out = []
        block = array.chunks[0]
        for i in np.unique(np.asarray(rows, dtype=np.int64) // block).tolist():
            a, b = i * block, min((i + 1) * block, array.shape[0])
            try:
                data = np.asarray(array[a:b])
                error = (
                    "its rows fail their checksums"
                    if checksums and self._mismatched(np.arange(a, b), data, column).any()
                    else None
                )
            except Exception as e:  # any codec's failure: blosc, zstd, a truncated object
                error = error_text(e)
            if error:
                out.append({"array": name, "chunk": chunk_key(array, (i, 0)), "rows": [a, b - 1], "error": error})
        return out

    def _decoded(self, read, rows: np.ndarray, name: str = "flux") -> np.ndarray:
        """``read()`` of ``rows``, or on a failure to decode, one :class:`DamagedStoreError` naming the chunks."""
        try:
            return read()
        except Exception as e:
            # a truncated blosc chunk may decode alone (reading past its end) to bytes its checksums refuse
            bad = self.damaged_chunks(rows, name, checksums=True)
            if not bad:
                raise
            raise DamagedStoreError(
                f"{self.path}: "
                + "; ".join(
                    f"array {name}, chunk {d['chunk']} (rows {d['rows'][0]}-{d['rows'][1]}) cannot be decoded "
                    f"({d['error']})"
                    for d in bad
                )
                + f" [run `python -m spectra_lightning verify {self.path}`]"
            ) from e

    # -- writing ------------------------------------------------------------------
    def append(self, flux: np.ndarray, meta: dict[str, np.ndarray], ivar: np.ndarray | None = None) -> None:
        """Append whole spectra ``(B, L)`` (NaN = masked) with their metadata ``{name: (B,)}`` and, in a store
        that keeps them, their inverse variances ``(B, L)``."""
        if self._staged:
            raise StoreError(f"{self.path}: {self._staged} staged spectra are not committed yet")
        _check_rows(meta, len(flux))  # before anything is written
        self.stage(flux, ivar)
        self.commit(meta)

    def _writable(self) -> None:
        if self.lock is None or not self.lock.held:
            raise StoreError(f"{self.path}: opened read-only (open with mode='a' to write)")

    def stage(self, flux: np.ndarray, ivar: np.ndarray | None = None) -> None:
        """Write whole spectra ``(B, L)`` after those staged so far, beyond the commit point: invisible
        (and overwritten by the next writer) until :meth:`commit`. Staging one whole chunk at a time is
        cheapest: zarr then compresses the rows as given, without first copying them into a fresh chunk
        (a write of many chunks is copied chunk by chunk, but compresses them concurrently)."""
        self._writable()
        flux = np.asarray(flux)
        if flux.ndim != 2 or flux.shape[1] != self.grid.length:
            raise ValueError(f"flux shape {flux.shape} does not match the grid length {self.grid.length}")
        start = self.n + self._staged
        b = flux.shape[0]
        if (ivar is None) != (self.ivar is None):  # checked before anything is written
            have = "keeps" if self.ivar is not None else "keeps no"
            raise ValueError(f"{self.path}: this store {have} inverse variances: stage(flux, ivar) must match")
        if ivar is not None and np.shape(ivar) != (b, self.grid.length):
            raise ValueError(f"ivar shape {np.shape(ivar)} does not match flux {flux.shape}")
        rows = flux.astype(self.flux.dtype, copy=False)
        self.flux.resize((start + b, self.grid.length))
        # appended rows hold data, so skip zarr's is-this-chunk-all-fill check (NaN-aware, ~3x the cost of the
        # write); an all-NaN chunk, should one occur, is then stored rather than left implicit — same content
        if ivar is not None and self.ivar is not None:
            ivar_rows = np.asarray(ivar, np.float32)
            # 0 (no information) wherever the value is unusable: NaN is kept for the fill of a lost chunk
            ivar_rows = np.where(np.isfinite(ivar_rows) & (ivar_rows > 0), ivar_rows, np.float32(0))
            self.ivar.resize((start + b, self.grid.length))
            self.ivar.with_config(WRITE_EMPTY_CHUNKS)[start : start + b] = ivar_rows
            self._staged_ivar_crc.append(row_checksums(ivar_rows))
        self.flux.with_config(WRITE_EMPTY_CHUNKS)[start : start + b] = rows
        self._staged_crc.append(row_checksums(rows))
        self._staged += b

    def commit(self, meta: dict[str, np.ndarray]) -> None:
        """Make the staged spectra part of the store, with their metadata ``{name: (B,)}``."""
        self._writable()
        b, start = self._staged, self.n
        _check_rows(meta, b)
        meta = {**meta, "crc32": np.concatenate(self._staged_crc) if self._staged_crc else np.zeros(0, np.int64)}
        if self.ivar is not None:
            crc = self._staged_ivar_crc
            meta["ivar_crc32"] = np.concatenate(crc) if crc else np.zeros(0, np.int64)
        group = self.meta_group
        existing = dict(group.arrays())
        for name, col in meta.items():
            col = np.asarray(col)
            if name not in existing:
                dtype = str if col.dtype.kind in "OUST" else col.dtype
                fill = (
                    "" if dtype is str else (np.nan if col.dtype.kind == "f" else (-1 if name.endswith("crc32") else 0))
                )
                arr = group.create_array(
                    name,
                    shape=(0,),
                    dtype=dtype,
                    chunks=(META_CHUNK_ROWS,),
                    fill_value=fill,
                    attributes={"units": UNITS.get(name, "")},
                )
                # rows appended before this column existed get the fill value, written out: every chunk a
                # column's shape needs exists, so verify can hold a missing one as damage
                arr.resize((start,))
                arr.with_config(WRITE_EMPTY_CHUNKS)[:start] = fill
                existing[name] = arr
            arr = existing[name]
            arr.resize((start + b,))
            arr.with_config(WRITE_EMPTY_CHUNKS)[start : start + b] = col
        for name, arr in existing.items():
            if name not in meta:
                arr.resize((start + b,))
                arr.with_config(WRITE_EMPTY_CHUNKS)[start : start + b] = arr.fill_value
        self.group.attrs["n_spectra"] = start + b  # the commit point
        self._staged = 0
        self._staged_crc = []
        self._staged_ivar_crc = []
        self.__dict__.pop("meta", None)


class StoreSource:
    """Where a store is and how to read it, opened on first use in each process: a data module opens it when it
    sets up, each DataLoader worker its own (an open store is not pickled along: :meth:`__getstate__`; a stream
    takes :meth:`fresh`, so that workers forked after the data module opened its store open their own: an
    object store's client does not survive a fork)."""

    def __init__(self, path: str, storage_options: dict | None = None, check_checksums: bool = True):
        self.path, self.storage_options, self.check_checksums = str(path), storage_options, check_checksums
        self._store: SpectraStore | None = None

    def open(self) -> SpectraStore:
        """The store, read-only, opened once in this process."""
        if self._store is None:
            self._store = SpectraStore.open(
                self.path, storage_options=self.storage_options, check_checksums=self.check_checksums
            )
        return self._store

    def fresh(self) -> StoreSource:
        """The same source, not yet opened."""
        return StoreSource(self.path, self.storage_options, self.check_checksums)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_store": None}
