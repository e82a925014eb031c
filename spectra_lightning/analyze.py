"""``analyze``: codes + labels -> ``report.json`` + figures, offline, for any model.

Codes: a codes store from ``encode`` (``mu``, optional ``logvar`` and ``id``), a ``.npy``
``(N, D)`` array, or a ``.csv`` whose optional ``id`` column names the spectra and whose
other numeric columns are the nodes. Labels: a CSV with an ``id`` column matching the codes'
ids (or row order when the codes carry none); every other numeric column is a label. Without
``--labels``, a codes store made by ``encode`` takes its labels from its source store.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from .codes import InputError, load_codes, load_labels
from .metrics.latent import MAD_THRESHOLD
from .metrics.mi import PAPER_BINS
from .metrics.report import format_summary, latent_report


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
    p = argparse.ArgumentParser(
        prog="python -m spectra_lightning analyze",
        description="MAD and mutual information of latent codes against labels -> report.json + figures.",
    )
    p.add_argument("--codes", required=True, help="codes: CODES.zarr from encode, .npy (N, D) or .csv")
    p.add_argument("--labels", help="CSV with an 'id' column (or rows in code order); numeric columns are labels")
    p.add_argument("--label-columns", help="comma-separated subset of label columns")
    p.add_argument("--output", required=True, help="directory for report.json and figures/")
    p.add_argument("--threshold", type=float, default=MAD_THRESHOLD, help="MAD threshold (default %(default)s)")
    p.add_argument(
        "--criterion",
        default="auto",
        choices=["auto", "mad", "kl", "both"],
        help="informative nodes by MAD > threshold (the paper's), mean KL > 0.05 nat, or both; auto: both "
        "when the codes carry log-variances, else mad (default %(default)s)",
    )
    p.add_argument("--k", type=int, default=3, help="KSG neighbours (default %(default)s)")
    p.add_argument(
        "--bins",
        default=",".join(map(str, PAPER_BINS)),
        help="comma-separated bin counts of the histogram MI estimator, one estimate per count "
        "(default %(default)s, the paper's)",
    )
    p.add_argument("--sigma", type=float, default=5.0, help="label sigma-clipping (default %(default)s)")
    p.add_argument("--bootstrap", type=int, default=0, help="bootstrap resamples for KSG standard errors")
    p.add_argument("--no-figures", action="store_true", help="write report.json only")
    a = p.parse_args(argv)
    try:
        report = analyze(
            a.codes,
            a.labels,
            a.output,
            figures=not a.no_figures,
            label_columns=a.label_columns.split(",") if a.label_columns else None,
            threshold=a.threshold,
            criterion=a.criterion,
            k=a.k,
            bins=tuple(int(b) for b in a.bins.split(",")),
            sigma=a.sigma,
            bootstrap=a.bootstrap,
        )
    except (InputError, OSError, ValueError) as e:
        print(f"analyze: error: {e}", file=sys.stderr)
        return 2
    print(format_summary(report))
    print(f"report:  {Path(a.output) / 'report.json'}")
    return 0
