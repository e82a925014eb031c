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

from spectra_lightning.analysis.codes import InputError, load_codes, load_labels
from spectra_lightning.analysis.runs import resolve_run, run_codes
from spectra_lightning.common.files import write_atomic
from spectra_lightning.metrics.latent import MAD_THRESHOLD
from spectra_lightning.metrics.mi import PAPER_BINS
from spectra_lightning.metrics.report import format_summary, latent_report


def pick_labels(
    numeric: dict[str, np.ndarray], text: list[str], columns: list[str] | None, where: str
) -> tuple[dict[str, np.ndarray], list[str]]:
    """The label columns to analyse and the numeric ones left out: ``columns`` when given (every unusable one named
    in one message), else the physical ones (:func:`~spectra_lightning.physics.labels.is_physical`), else all."""
    from spectra_lightning.physics.labels import LABELS, is_physical

    first = {name: i for i, name in enumerate(LABELS)}  # the order a training run reports them in
    names = sorted(numeric, key=lambda name: (first.get(name, len(first)), name))
    if columns:
        bad = [f"{c} (text)" if c in text else f"{c} (no such column)" for c in columns if c not in numeric]
        if bad:
            raise InputError(
                f"{where}: label columns not usable: {', '.join(bad)}; numeric columns: {', '.join(names) or 'none'}"
            )
        return {c: numeric[c] for c in columns}, [n for n in names if n not in columns]
    chosen = [n for n in names if is_physical(n)] or names
    if not chosen:
        raise InputError(f"{where}: no numeric label columns")
    return {n: numeric[n] for n in chosen}, [n for n in names if n not in chosen]


def store_labels(store_path: str, n: int) -> tuple[dict[str, np.ndarray], list[str]]:
    """The numeric and text label columns of the store behind codes of ``n`` spectra."""
    from spectra_lightning.store import SpectraStore

    store = SpectraStore.open(store_path)
    if store.n != n:
        raise InputError(f"{store_path}: {store.n} spectra for {n} codes")
    numeric = {name: store.meta[name].astype(np.float64) for name in store.label_names}
    return numeric, [k for k in store.meta if k not in numeric]


def table_labels(
    path: str, ids: np.ndarray | None, store_path: str | None, n: int, text: tuple[str, ...]
) -> tuple[dict[str, np.ndarray], list[str]]:
    """A label table joined on the codes as ``ingest --labels`` joins it (its ``id``, ``file``, ``object``,
    ``miles_id`` … column, matched against each spectrum's id, source file and object, from the codes' store when
    it is there): ``{column: (N,)}`` (NaN where no row matches) and its text columns."""
    from spectra_lightning.ingest.catalogue import IngestLabels
    from spectra_lightning.ingest.label_table import LabelTableError

    try:
        table = IngestLabels(path, text)
    except LabelTableError as e:
        raise InputError(str(e)) from None
    if store_path and Path(store_path).exists():
        from spectra_lightning.store import SpectraStore

        meta = SpectraStore.open(store_path).meta
        blank = np.full(n, "")
        rows = zip(meta.get("id", blank), meta.get("source", blank), meta.get("object", blank))
        metas = [{"id": str(i), "source": str(s), "object": str(o).strip()} for i, s, o in rows]
    elif ids is not None:
        metas = [{"id": str(i), "source": str(i), "object": ""} for i in ids]
    else:
        raise InputError(f"{path}: the codes carry no ids to join it on; pass --labels-by-row to join by row order")
    found = [table.match(m) for m in metas]
    if all(i is None for i in found):
        raise InputError(f"{path}: none of its rows match the codes' spectra (by {', '.join(table.table.keys)})")
    rows_of = np.array([-1 if i is None else i for i in found])
    numeric = {
        name: np.where(rows_of >= 0, values[np.clip(rows_of, 0, None)], np.nan)
        for name, values in table.table.numeric.items()
    }
    return numeric, list(table.table.text)


def split_rows(split_file, split: str, ids: np.ndarray | None) -> tuple[np.ndarray, dict[str, list[str]]]:
    """The rows of the codes in ``split`` of a run's ``split.json`` (joined on the codes' ids), and all its
    splits' ids."""
    try:
        splits = json.loads(Path(split_file).read_text())["split_ids"]
    except (OSError, ValueError, KeyError) as e:
        raise InputError(f"{split_file}: not a split.json of a run ({type(e).__name__}: {e})") from None
    if split not in splits:
        raise InputError(f"{split_file}: no split {split!r} (has {', '.join(splits)})")
    if ids is None:
        raise InputError(f"--split needs codes with ids (a codes store from encode), to find the {split} spectra")
    wanted = set(splits[split])
    rows = np.flatnonzero([str(i) in wanted for i in ids])
    if len(rows) < len(wanted):
        raise InputError(f"{split_file}: {len(wanted) - len(rows)} spectra of its {split} split are not in the codes")
    return rows, splits


def baseline_features(
    store_path: str, rows: np.ndarray, train_rows: np.ndarray, block: int = 256
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Label-free baseline features of the store's ``rows`` (fit on up to 1,024 of ``train_rows``)."""
    from spectra_lightning.metrics.baselines import LabelFreeBaselines
    from spectra_lightning.store import SpectraStore, fill_masked

    store = SpectraStore.open(store_path)
    sample = np.sort(np.random.default_rng(0).permutation(train_rows)[:1024])
    model = LabelFreeBaselines(store.grid.wavelength).fit(*fill_masked(store.read(sample)))
    parts = [model.features(*fill_masked(store.read(rows[i : i + block]))) for i in range(0, len(rows), block)]
    features = np.concatenate(parts) if parts else np.zeros((0, len(model.names)))
    return {name: features[:, j] for j, name in enumerate(model.names)}, model.describe()


def analyze(
    codes_path,
    labels_path,
    output,
    figures: bool = True,
    label_columns=None,
    labels_text: tuple[str, ...] = (),
    labels_by_row: bool = False,
    split_file=None,
    split: str = "test",
    baselines: bool = True,
    **kwargs,
) -> dict:
    """``report.json`` (+ figures) of codes against labels. With ``split_file`` (a run's ``split.json``), only
    the codes of that ``split``; with a store behind the codes, the label-free baselines of the same spectra
    (fit on the run's training split, or on the codes' spectra without a split file)."""
    codes = load_codes(codes_path)
    n = len(codes["mu"])
    store = codes["attrs"].get("store")
    if labels_path is not None and labels_by_row:
        labels = load_labels(labels_path, codes["id"], n, label_columns, labels_text, labels_by_row)
        left_out: list[str] = []
    else:
        if labels_path is not None:
            numeric, text = table_labels(labels_path, codes["id"], store, n, labels_text)
        elif store:
            numeric, text = store_labels(store, n)
        else:
            raise InputError(f"{codes_path}: no --labels given and the codes do not name a store")
        labels, left_out = pick_labels(numeric, text, label_columns, str(labels_path or store))
    rows, train = np.arange(n), np.arange(n)
    name = "all"
    if split_file is not None:
        rows, splits = split_rows(split_file, split, codes["id"])
        wanted = set(splits.get("train", []))
        train = np.flatnonzero([str(i) in wanted for i in codes["id"]])
        name = split
    features, info = None, None
    if baselines and store and Path(store).exists() and len(train):
        features, info = baseline_features(store, rows, train)  # codes from encode: row i is the store's row i
    logvar = codes["logvar"][rows] if codes["logvar"] is not None else None
    labels = {k: v[rows] for k, v in labels.items()}
    report = latent_report(
        codes["mu"][rows], labels, logvar, baselines=features, baseline_info=info, split=name, **kwargs
    )
    report["labels_left_out"] = left_out  # numeric columns not analysed (not physical, or not in --label-columns)
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / "report.json", json.dumps(report, indent=1))
    if figures:
        from spectra_lightning.analysis import plots

        plots.save_figures(plots.report_figures(report, codes["mu"][rows], labels), out / "figures")
    return report


def add_label_options(p: argparse.ArgumentParser) -> None:
    """Where the labels come from and which are read."""
    p.add_argument(
        "--labels",
        help="CSV of labels joined as `ingest --labels` joins it: on its 'id', 'file', 'object' or 'miles_id' column "
        "against each spectrum's id, source file or object; its physical columns are the labels by default (teff, "
        "logg, feh, rv, z ...; others with --label-columns). A cell is a number "
        "(5777, -0.18, ~3600 -> 3600, 3203|3344 -> 3203) or missing (empty, NaN, NA, null, -); any other cell in "
        "a numeric column is an error; UTF-8 with or without a byte-order mark; ids must be unique",
    )
    p.add_argument(
        "--labels-by-row",
        action="store_true",
        help="join the labels by row order instead of by id (the table must have one row per code, in order)",
    )
    p.add_argument(
        "--labels-text",
        action="append",
        default=[],
        metavar="COL",
        help="keep this label column as text (not analysed) even where its cells are numbers; repeatable",
    )
    p.add_argument(
        "--label-columns",
        help="comma-separated label columns to analyse (default: the physical ones — teff, logg, feh, rv, z ... — "
        "not bookkeeping such as mjd, ra, coverage)",
    )


def parser() -> argparse.ArgumentParser:
    """The ``analyze`` command's options."""
    p = argparse.ArgumentParser(
        prog="python -m spectra_lightning analyze",
        description="MAD and mutual information of latent codes against labels -> report.json + figures.",
    )
    p.add_argument(
        "--run",
        help="a run directory of `fit`: its final checkpoint's codes of its store (encoded once into RUN/codes.zarr), "
        "its split.json (--split of it: the test spectra by default) and RUN/analysis as --output",
    )
    p.add_argument("--codes", help="codes: CODES.zarr from encode, .npy (N, D) or .csv (or give --run)")
    add_label_options(p)
    p.add_argument("--output", help="directory for report.json and figures/ (default with --run: RUN/analysis)")
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
    p.add_argument(
        "--bootstrap",
        type=int,
        default=0,
        help="bootstrap resamples for every node's KSG standard errors (default %(default)s: none)",
    )
    p.add_argument(
        "--intervals",
        type=int,
        default=30,
        help="half-samples and permutations for each label's best and runner-up intervals, the null level and "
        "the distinct verdict (default %(default)s; 0: none)",
    )
    p.add_argument(
        "--split-file",
        metavar="SPLIT_JSON",
        help="a run's split.json: analyse only the codes of --split (the report says which)",
    )
    p.add_argument("--split", default="test", help="the split of --split-file to analyse (default %(default)s)")
    p.add_argument(
        "--no-baselines",
        action="store_true",
        help="skip the label-free baselines (principal components, a colour, a CCF velocity of the same "
        "spectra; computed when the codes name a store)",
    )
    p.add_argument("--no-figures", action="store_true", help="write report.json only")
    return p


def main(argv: list[str]) -> int:
    """The ``analyze`` command."""
    p = parser()
    a = p.parse_args(argv)
    if not (a.run or a.codes):
        p.error("give --run RUN_DIR, or --codes")
    if not (a.run or a.output):
        p.error("--output is required with --codes")
    try:
        if a.run:
            found = resolve_run(a.run)
            a.codes = a.codes or run_codes(found)
            a.split_file = a.split_file or found["split_file"]
            a.output = a.output or found["run"] / "analysis"
        report = analyze(
            a.codes,
            a.labels,
            a.output,
            figures=not a.no_figures,
            label_columns=a.label_columns.split(",") if a.label_columns else None,
            labels_text=tuple(a.labels_text),
            labels_by_row=a.labels_by_row,
            threshold=a.threshold,
            criterion=a.criterion,
            k=a.k,
            bins=tuple(int(b) for b in a.bins.split(",")),
            sigma=a.sigma,
            bootstrap=a.bootstrap,
            intervals=a.intervals,
            split_file=a.split_file,
            split=a.split,
            baselines=not a.no_baselines,
        )
    except (InputError, OSError, ValueError) as e:
        print(f"analyze: error: {e}", file=sys.stderr)
        return 2
    print(format_summary(report))
    if a.split_file:
        print(f"spectra: the {a.split} split of {a.split_file} ({report['n_spectra']} with codes)")
    else:
        print(f"spectra: all {report['n_spectra']} codes, training spectra included (--run or --split-file: a split)")
    if report["labels_left_out"]:
        print(
            f"labels not analysed (not physical quantities): {', '.join(report['labels_left_out'])}; "
            "name them in --label-columns to include them"
        )
    print(f"report:  {Path(a.output) / 'report.json'}")
    return 0
