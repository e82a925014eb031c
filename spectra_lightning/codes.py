"""Reading latent codes and label tables: what ``analyze``, ``explore`` and scripts load.

Codes: a codes store from ``encode`` (``mu (N, D)``, optional ``logvar (N, D)`` and ``id (N,)``), a ``.npy``
``(N, D)`` array, or a ``.csv`` whose optional ``id`` column names the spectra and whose other numeric columns
are the nodes. Labels: a CSV with an ``id`` column matching the codes' ids (or row order when the codes carry
none); every other numeric column is a label.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np


class InputError(ValueError):
    """Codes or labels that cannot be analysed; the message names the file and the reason."""


def read_table(path: Path) -> tuple[list[str], dict[str, list[str]]]:
    try:
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            rows = list(reader)
            header = reader.fieldnames or []
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise InputError(f"{path}: cannot read as CSV ({e})") from None
    if not header:
        raise InputError(f"{path}: empty CSV")
    return header, {h: [r[h] for r in rows] for h in header}


def _numeric(values: list[str]) -> np.ndarray | None:
    out = np.empty(len(values))
    for i, v in enumerate(values):
        v = (v or "").strip()
        try:
            out[i] = float(v) if v else np.nan
        except ValueError:
            return None
    return out


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
        header, cols = read_table(path)
        ids = np.array(cols["id"], dtype=str) if "id" in cols else None
        nodes = [h for h in header if h != "id"]
        arrays = [_numeric(cols[h]) for h in nodes]
        if not nodes or any(a is None for a in arrays):
            raise InputError(f"{path}: every column but 'id' must be numeric")
        return {"mu": np.column_stack(arrays), "logvar": None, "id": ids, "attrs": {}}
    import zarr

    try:
        g = zarr.open_group(str(path), mode="r")
        mu = g["mu"][:]
    except Exception as e:
        raise InputError(f"{path}: not a codes store, .npy or .csv ({type(e).__name__})") from None
    names = set(g.array_keys())
    ids = g["id"][:].astype(object).astype(str) if "id" in names else None
    return {
        "mu": mu.astype(np.float64),
        "logvar": g["logvar"][:].astype(np.float64) if "logvar" in names else None,
        "id": ids,
        "attrs": dict(g.attrs),
    }


def load_labels(path: str | Path, ids: np.ndarray | None, n: int, columns: list[str] | None = None) -> dict:
    """Labels aligned to the codes: ``{name: (N,)}`` (NaN where a spectrum has no value)."""
    header, cols = read_table(Path(path))
    if ids is not None and "id" in cols:
        pos = {v: i for i, v in enumerate(cols["id"])}
        rows = np.array([pos.get(i, -1) for i in ids])
        matched = int((rows >= 0).sum())
        if matched == 0:
            raise InputError(
                f"{path}: none of its ids match the codes' ids (e.g. codes {ids[:2].tolist()} vs "
                f"labels {cols['id'][:2]})"
            )
    else:
        if len(next(iter(cols.values()))) != n:
            raise InputError(f"{path}: {len(next(iter(cols.values())))} rows for {n} codes and no ids to match on")
        rows = np.arange(n)
    wanted = columns or [h for h in header if h != "id"]
    out = {}
    for name in wanted:
        if name not in cols:
            raise InputError(f"{path}: no label column {name!r} (has {', '.join(header)})")
        values = _numeric(cols[name])
        if values is None:
            if columns:
                raise InputError(f"{path}: label column {name!r} is not numeric")
            continue
        out[name] = np.where(rows >= 0, values[np.clip(rows, 0, None)], np.nan)
    if not out:
        raise InputError(f"{path}: no numeric label columns")
    return out
