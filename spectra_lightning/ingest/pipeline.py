"""``ingest``: FITS files -> spectra on the grid in a store; parallel, resumable.

Each input is read and placed on the grid in a reading worker (:mod:`.placement`, :mod:`.pool`), and written by
this process (:mod:`.writer`). Nothing lost, nothing twice: spectra are written in input order, each chunk's rows
as soon as they are read, and committed in batches (metadata, then the store's commit point). A spectrum is known
by its content (:func:`.placement.content_hash`): one already in the store is skipped, so a rerun after a crash
(even ``kill -9``) completes the store to the content of an uninterrupted run; the same spectrum under another
name is stored once; another spectrum under a name already taken gets its own id (:class:`Tally`). Each bad input
is recorded with a one-line reason in the store's ``rejects`` attribute.
"""

from __future__ import annotations

import errno
import glob
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from spectra_lightning.common.progress import progress as progress_of
from spectra_lightning.ingest.catalogue import IngestLabels
from spectra_lightning.ingest.placement import MIN_FLUX, MIN_USABLE, WARNINGS_KEY, Known, Placement
from spectra_lightning.ingest.pool import ReaderPool
from spectra_lightning.ingest.readers import TABLE_SUFFIXES
from spectra_lightning.ingest.writer import BatchWriter
from spectra_lightning.physics.grid import SpectralGrid
from spectra_lightning.store.spectra_store import DEFAULT_CHUNK_ROWS, DEFAULT_CODEC, SpectraStore, StoreError

FITS_SUFFIXES = (".fits", ".fit", ".fts", ".fits.gz", ".fit.gz", ".fts.gz")
READ_SUFFIXES = FITS_SUFFIXES + TABLE_SUFFIXES  # what a folder scan reads; it names every other file it passes


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


def expand_inputs(inputs: list[str]) -> tuple[list[Path], dict[str, str], dict[str, str]]:
    """Files, directories (recursive: :data:`READ_SUFFIXES`) and globs -> (sorted unique paths, ``{path: reason}``
    of the symbolic links among them that cannot be read — loops and dangling links, reported as rejects — and
    ``{path: reason}`` of the files a folder scan passed over)."""
    out: set[Path] = set()
    broken: dict[str, str] = {}
    passed: dict[str, str] = {}
    for item in inputs:
        matches = [Path(p) for p in glob.glob(item, recursive=True)] if any(c in item for c in "*?[") else [Path(item)]
        if not matches:
            raise FileNotFoundError(f"{item}: no such file, directory or glob match")
        for p in matches:
            if (reason := broken_link(p)) is not None:
                broken[str(p)] = reason
            elif p.is_dir():
                for f in p.rglob("*"):
                    if not f.name.lower().endswith(READ_SUFFIXES):
                        if f.is_file() and not f.name.startswith("."):
                            passed[str(f)] = f"not a spectrum file by its name ({f.suffix or 'no suffix'})"
                        continue
                    if f.is_file():
                        out.add(f)
                    elif (reason := broken_link(f)) is not None:
                        broken[str(f)] = reason
            elif p.exists():
                out.add(p)
            else:
                raise FileNotFoundError(f"{p}: no such file or directory")
    return sorted(out), broken, passed


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
    ``labels_text``: columns of the ``labels`` table kept as text (see :mod:`spectra_lightning.ingest.label_table`).
    ``ivar``: a new store keeps each pixel's inverse variance (None: on a logarithmic grid, the surveys').
    No input file, or a new store that would hold no spectrum, is an :class:`IngestError` and leaves no store."""
    grid = SpectralGrid.parse(grid)
    if not 0 <= min_usable <= 1:
        raise IngestError(f"--min-usable must be a fraction in [0, 1], got {min_usable}")
    table = IngestLabels(labels, tuple(labels_text)) if labels else None
    paths, broken, passed = expand_inputs(inputs)
    if not paths and not broken:
        raise IngestError(f"nothing to ingest: no spectrum file ({', '.join(READ_SUFFIXES)}) in {' '.join(inputs)}")
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
            summary["not_read"] = passed
        except BaseException:
            if created and store.n == 0:
                store.remove()
            raise
        if created and store.n == 0:  # every input rejected or skipped: no empty store is left to mistake
            store.remove()
            summary["store_removed"] = True
    return summary


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

    if table is not None:
        table.mark_present(store.meta)  # rows matched by an earlier run are not "unmatched" in this one
    tally = Tally(store, how, broken)
    sizes = [p.stat().st_size for p in paths]
    t0, done_bytes = time.perf_counter(), 0
    with (
        progress_of(total=len(paths), desc="ingest", unit="file", enabled=progress) as bar,
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
