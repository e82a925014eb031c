"""Files a command writes as results: whole or not at all.

A result file (``report.json``, ``run.json``, ``split.json``, a table, a checkpoint written on interruption)
is written beside its final name and renamed over it, so a reader, or a run killed mid-write, never sees
half a file, and the previous version stays until the new one is complete.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
from collections.abc import Iterator
from pathlib import Path


def cache_dir() -> Path:
    """Where generated synthetic stores and downloaded models are kept (``$SPECTRA_LIGHTNING_CACHE``)."""
    return Path(os.environ.get("SPECTRA_LIGHTNING_CACHE", Path.home() / ".cache" / "spectra_lightning"))


@contextlib.contextmanager
def replacing(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path in ``path``'s directory to write to; renamed to ``path`` when the block ends without
    an error, removed otherwise."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_atomic(path: str | os.PathLike, content: str | bytes) -> Path:
    """Write ``content`` to ``path`` through :func:`replacing`."""
    with replacing(path) as tmp:
        if isinstance(content, bytes):
            tmp.write_bytes(content)
        else:
            tmp.write_text(content)
    return Path(path)


def write_csv(path: str | os.PathLike, rows: list[dict]) -> Path:
    """A table of ``rows`` written through :func:`replacing`; its columns every key of any row, in first-seen
    order (an absent value is left empty)."""
    text = io.StringIO()
    writer = csv.DictWriter(text, list(dict.fromkeys(k for r in rows for k in r)))
    writer.writeheader()
    writer.writerows(rows)
    return write_atomic(path, text.getvalue())
