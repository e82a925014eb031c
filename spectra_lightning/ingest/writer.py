"""The one writer of an ingest: placed rows into the store in input order, committed in batches by a thread."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from spectra_lightning.ingest.placement import IVAR_KEY
from spectra_lightning.store.spectra_store import SpectraStore


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
