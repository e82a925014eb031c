"""``analyze``: codes + labels -> ``report.json`` + figures, offline, for any model.

Codes: a codes store from ``encode`` (``mu``, optional ``logvar`` and ``id``), a ``.npy``
``(N, D)`` array, or a ``.csv`` whose optional ``id`` column names the spectra and whose
other numeric columns are the nodes. Labels: a CSV with an ``id`` column matching the codes'
ids (or row order when the codes carry none); every other numeric column is a label. Without
``--labels``, a codes store made by ``encode`` takes its labels from its source store.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np

from .metrics.mi import PAPER_BINS
from .metrics.report import format_summary, latent_report


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
    return {"mu": mu.astype(np.float64), "logvar": g["logvar"][:].astype(np.float64) if "logvar" in names else None,
            "id": ids, "attrs": dict(g.attrs)}


def load_labels(path: str | Path, ids: np.ndarray | None, n: int, columns: list[str] | None = None) -> dict:
    """Labels aligned to the codes: ``{name: (N,)}`` (NaN where a spectrum has no value)."""
    header, cols = read_table(Path(path))
    if ids is not None and "id" in cols:
        pos = {v: i for i, v in enumerate(cols["id"])}
        rows = np.array([pos.get(i, -1) for i in ids])
        matched = int((rows >= 0).sum())
        if matched == 0:
            raise InputError(f"{path}: none of its ids match the codes' ids (e.g. codes {ids[:2].tolist()} vs "
                             f"labels {cols['id'][:2]})")
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


def labels_from_store(store_path: str, n: int) -> dict:
    from .store import SpectraStore

    store = SpectraStore.open(store_path)
    if store.n != n:
        raise InputError(f"{store_path}: {store.n} spectra for {n} codes")
    return {name: store.meta[name].astype(np.float64) for name in store.label_names}


def analyze(codes_path, labels_path, output, figures: bool = True, label_columns=None, **kwargs) -> dict:
    codes = load_codes(codes_path)
    n = len(codes["mu"])
    if labels_path is not None:
        labels = load_labels(labels_path, codes["id"], n, label_columns)
    elif codes["attrs"].get("store"):
        labels = labels_from_store(codes["attrs"]["store"], n)
    else:
        raise InputError(f"{codes_path}: no --labels given and the codes do not name a store")
    report = latent_report(codes["mu"], labels, codes["logvar"], **kwargs)
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / ".report.json.tmp"
    tmp.write_text(json.dumps(report, indent=1))
    tmp.replace(out / "report.json")
    if figures:
        from . import plots

        plots.save_figures(plots.report_figures(report, codes["mu"], labels), out / "figures")
    return report


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m spectra_lightning analyze",
                                description="MAD and mutual information of latent codes against labels -> report.json + figures.")
    p.add_argument("--codes", required=True, help="codes: CODES.zarr from encode, .npy (N, D) or .csv")
    p.add_argument("--labels", help="CSV with an 'id' column (or rows in code order); numeric columns are labels")
    p.add_argument("--label-columns", help="comma-separated subset of label columns")
    p.add_argument("--output", required=True, help="directory for report.json and figures/")
    p.add_argument("--threshold", type=float, default=0.02, help="MAD threshold (default %(default)s)")
    p.add_argument("--criterion", default="auto", choices=["auto", "mad", "kl", "both"])
    p.add_argument("--k", type=int, default=3, help="KSG neighbours (default %(default)s)")
    p.add_argument("--bins", default=",".join(map(str, PAPER_BINS)), help="histogram bin counts")
    p.add_argument("--sigma", type=float, default=5.0, help="label sigma-clipping (default %(default)s)")
    p.add_argument("--bootstrap", type=int, default=0, help="bootstrap resamples for KSG standard errors")
    p.add_argument("--no-figures", action="store_true")
    a = p.parse_args(argv)
    try:
        report = analyze(a.codes, a.labels, a.output, figures=not a.no_figures,
                         label_columns=a.label_columns.split(",") if a.label_columns else None,
                         threshold=a.threshold, criterion=a.criterion, k=a.k,
                         bins=tuple(int(b) for b in a.bins.split(",")), sigma=a.sigma, bootstrap=a.bootstrap)
    except (InputError, OSError, ValueError) as e:
        print(f"analyze: error: {e}", file=sys.stderr)
        return 2
    print(format_summary(report))
    print(f"report:  {Path(a.output) / 'report.json'}")
    return 0
