"""Reading latent codes and label tables: what ``analyze``, ``explore`` and scripts load.

Codes: a codes store from ``encode`` (``mu (N, D)``, optional ``logvar (N, D)`` and ``id (N,)``), a ``.npy``
``(N, D)`` array, or a ``.csv`` whose optional ``id`` column names the spectra and whose other numeric columns
are the nodes. Labels: a CSV with an ``id`` column matching the codes' ids (row order only when asked for); every other
numeric column is a label. Both CSVs follow the rules of :mod:`spectra_lightning.ingest.label_table`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from spectra_lightning.ingest.label_table import LabelTable


class InputError(ValueError):
    """Codes or labels that cannot be analysed; the message names the file and the reason."""


def load_codes(path: str | Path) -> dict:
    """``{"mu": (N, D), "logvar": (N, D) or None, "id": (N,) or None, "attrs": dict}`` (``attrs``: what
    ``encode`` recorded — store, grid, model fingerprint; empty for ``.npy``/``.csv``)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.suffix == ".npy":
        mu = np.load(path)
        if mu.ndim != 2:
            raise InputError(f"{path}: codes must be a 2-D array (N, D), got shape {mu.shape}")
        return {"mu": mu.astype(np.float64), "logvar": None, "id": None, "attrs": {}}
    if path.suffix == ".csv":
        table = LabelTable(path, keys=("id",))
        if table.text or not table.numeric:
            raise InputError(f"{path}: every column but 'id' must be numeric (header: {table.header})")
        ids = np.array([r["id"] for r in table.rows], dtype=str) if table.keys else None
        return {"mu": np.column_stack(list(table.numeric.values())), "logvar": None, "id": ids, "attrs": {}}
    import zarr

    def column(name: str) -> np.ndarray:
        node = g[name]
        if not isinstance(node, zarr.Array):
            raise InputError(f"{path}: {name} is not an array")
        return np.asarray(node[:])

    try:
        g = zarr.open_group(str(path), mode="r")
        mu = column("mu")
    except Exception as e:
        raise InputError(f"{path}: not a codes store, .npy or .csv ({type(e).__name__})") from None
    names = set(g.array_keys())
    return {
        "mu": mu.astype(np.float64),
        "logvar": column("logvar").astype(np.float64) if "logvar" in names else None,
        "id": column("id").astype(object).astype(str) if "id" in names else None,
        "attrs": dict(g.attrs),
    }


def load_labels(
    path: str | Path,
    ids: np.ndarray | None,
    n: int,
    columns: list[str] | None = None,
    text: tuple[str, ...] = (),
    by_row: bool = False,
) -> dict[str, np.ndarray]:
    """Labels aligned to the codes: ``{name: (N,)}`` (NaN where a spectrum has no value), read by the rules
    of :mod:`spectra_lightning.ingest.label_table` and joined on the table's ``id`` column. Joining by row order
    happens only when asked (``by_row``), and then the row counts must agree."""
    table = LabelTable(path, keys=() if by_row else ("id",), text=text)
    if by_row:
        if len(table.rows) != n:
            raise InputError(f"{path}: {len(table.rows)} rows for {n} codes (joined by row order)")
        rows = np.arange(n)
    else:
        table.require_key(["id"])
        if ids is None:
            raise InputError(
                f"{path}: the codes carry no ids to join its 'id' column on; pass --labels-by-row to join by row order"
            )
        rows = np.array([-1 if (i := table.row_of({"id": str(v)})) is None else i for v in ids])
        if not (rows >= 0).any():
            raise InputError(
                f"{path}: none of its ids match the codes' ids (e.g. codes {list(ids[:2])} vs labels "
                f"{[r['id'] for r in table.rows[:2]]})"
            )
    wanted = columns or list(table.numeric)
    out = {}
    for name in wanted:
        values = table.column(name)
        if isinstance(values, list):
            raise InputError(f"{path}: label column {name!r} is text, not numeric")
        out[name] = np.where(rows >= 0, values[np.clip(rows, 0, None)], np.nan)
    if not out:
        raise InputError(f"{path}: no numeric label columns (header: {table.header})")
    return out
