"""Run a trained encoder on the real spectra of ``--real`` (``../shared/data/real``).

    python docs/results/real_transfer.py --run runs/quickstart --real ../shared/data/real --out OUT
    python docs/results/real_transfer.py --run runs/miles --real ../shared/data/real --labels teff \
        --name miles_transfer --out OUT

Ingests every real spectrum onto the run's grid (the store it was trained on: quickstart, 5000–5655 Å at
0.08 Å; miles, 3540–7410 Å at 0.9 Å; masked outside each spectrum's coverage) with ``labels.csv`` joined,
encodes them with the run's checkpoint, and writes ``NAME.csv`` (each spectrum's codes on the label nodes
beside its labels), ``NAME.png`` (the codes against the labels, training-set validation codes behind)
and prints the Spearman ρ per node. The nodes are the carriers named in the run's ``report.json``.
"""

from __future__ import annotations

import argparse
import csv
import json
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from scipy.stats import spearmanr

from spectra_lightning.analysis.encode import encode
from spectra_lightning.explorer.command import resolve_run
from spectra_lightning.ingest.pipeline import ingest
from spectra_lightning.store import SpectraStore


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", default="runs/quickstart")
    p.add_argument("--out", required=True, help="folder for the table and figure (docs/results for the record)")
    p.add_argument("--real", type=Path, required=True, help="the real spectra (../shared/data/real) with labels.csv")
    p.add_argument("--labels", nargs="+", default=["rv", "teff"], help="labels whose carrier nodes to read")
    p.add_argument("--name", default="real_transfer", help="output file stem")
    p.add_argument(
        "--min-coverage",
        type=float,
        default=0.5,
        help="use spectra covering at least this share of the grid (default %(default)s)",
    )
    a = p.parse_args()
    run = resolve_run(a.run)
    report = json.loads(Path(run["report"]).read_text())
    nodes = {label: report["carriers"][label]["nodes"] for label in a.labels}
    grid = SpectraStore.open(run["store"]).grid
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        store_path, codes_path = Path(tmp) / "real.zarr", Path(tmp) / "codes.zarr"
        ingest(
            [str(a.real / "harps"), str(a.real / "other")],
            str(store_path),
            labels=str(a.real / "labels.csv"),
            grid=grid,
            workers=2,
            progress=False,
        )
        encode(run["ckpt"], store_path, codes_path, progress=False)
        import zarr

        mu = zarr.open_group(str(codes_path), mode="r")["mu"][:]
        store = SpectraStore.open(store_path)
        meta = store.meta
        flux = store.read(np.arange(store.n))
    synth = SpectraStore.open(run["store"])
    rows = np.sort(np.random.default_rng(0).choice(synth.n, min(1500, synth.n), replace=False))
    smu = zarr.open_group(str(run["codes"]), mode="r")["mu"][:][rows] if run["codes"].exists() else None
    smeta = synth.meta

    real_labels = {
        "teff": meta.get("teff_K", np.full(store.n, np.nan)),
        "rv": meta.get("rv_kms", np.full(store.n, np.nan)),
        "logg": meta.get("logg_cgs", np.full(store.n, np.nan)),
        "feh": meta.get("feh_dex", np.full(store.n, np.nan)),
    }
    coverage = np.isfinite(flux[:, store.grid.valid]).mean(1)
    table = []
    for i in range(store.n):
        table.append(
            {
                "id": meta["id"][i],
                "object": meta["object"][i],
                "instrument": meta["instrument"][i],
                "coverage": round(float(coverage[i]), 3),
                **{label: real_labels[label][i] for label in a.labels},
                **{f"{label}_node{n}": round(float(mu[i, n]), 4) for label, ns in nodes.items() for n in ns},
            }
        )
    with open(out / f"{a.name}.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(table[0]))
        w.writeheader()
        w.writerows(table)

    covered = coverage >= a.min_coverage
    lines = [
        f"{store.n} real spectra ingested onto the run's grid, {int(covered.sum())} cover >= {a.min_coverage:.0%} of it.",
        "",
    ]
    pairs = [(label, real_labels[label], n) for label in a.labels for n in nodes[label]]
    fig, axes = plt.subplots(1, len(pairs), figsize=(4.2 * len(pairs), 3.6), squeeze=False)
    for ax, (label, values, node) in zip(axes[0], pairs):
        ok = covered & np.isfinite(values)
        rho = spearmanr(values[ok], mu[ok, node]).statistic if ok.sum() > 2 else np.nan
        lines.append(
            f"- {label} node {node}: Spearman ρ = {rho:.2f} over {int(ok.sum())} real spectra with a {label} label"
        )
        if smu is not None:
            sv = smeta[label][rows] if label in smeta else np.full(len(rows), np.nan)
            ax.scatter(sv, smu[:, node], s=3, c="0.8", label="training store")
        ax.scatter(values[ok], mu[ok, node], s=25, c="C3", label="real")
        for i in np.flatnonzero(ok):
            ax.annotate(str(meta["object"][i])[:12], (values[i], mu[i, node]), fontsize=6)
        ax.set(xlabel=f"{label} (label)", ylabel=f"node {node} code", title=f"{label}: ρ = {rho:.2f}")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / f"{a.name}.png", dpi=110)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
