"""Run a trained quickstart encoder on the real spectra in ../shared/data/real/.

    python docs/results/real_transfer.py --run runs/quickstart [--out docs/results]

Ingests every real spectrum onto the quickstart grid (5000–5655 Å at 0.08 Å) with
``labels.csv`` joined, encodes them with the run's checkpoint, and writes
``real_transfer.csv`` (each spectrum's rv/teff-node codes beside its labels),
``real_transfer.png`` (the codes against the labels, synthetic validation codes behind)
and prints a markdown table. The rv and teff nodes are the carriers named in the run's
``report.json``.
"""

from __future__ import annotations

import argparse
import csv
import json
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from scipy.stats import spearmanr  # noqa: E402

from spectra_lightning.encode import encode  # noqa: E402
from spectra_lightning.explore import resolve_run  # noqa: E402
from spectra_lightning.ingest import ingest  # noqa: E402
from spectra_lightning.store import SpectraStore  # noqa: E402

REAL = Path(__file__).resolve().parents[3] / "shared" / "data" / "real"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", default="runs/quickstart")
    p.add_argument("--out", default=str(Path(__file__).parent))
    a = p.parse_args()
    run = resolve_run(a.run)
    report = json.loads(Path(run["report"]).read_text())
    nodes = {label: report["carriers"][label]["nodes"] for label in ("rv", "teff")}
    out = Path(a.out)
    with tempfile.TemporaryDirectory() as tmp:
        store_path, codes_path = Path(tmp) / "real.zarr", Path(tmp) / "codes.zarr"
        ingest([str(REAL / "harps"), str(REAL / "other")], str(store_path), labels=str(REAL / "labels.csv"),
               grid="quickstart", workers=2, progress=False)
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

    teff = meta.get("teff_K", np.full(store.n, np.nan))
    rv = meta.get("rv_kms", np.full(store.n, np.nan))
    coverage = np.isfinite(flux[:, store.grid.valid]).mean(1)
    table = []
    for i in range(store.n):
        table.append({"id": meta["id"][i], "object": meta["object"][i], "instrument": meta["instrument"][i],
                      "coverage": round(float(coverage[i]), 3), "teff_K": teff[i], "rv_kms": rv[i],
                      **{f"{label}_node{n}": round(float(mu[i, n]), 4) for label, ns in nodes.items() for n in ns}})
    with open(out / "real_transfer.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(table[0]))
        w.writeheader()
        w.writerows(table)

    covered = coverage > 0.5
    lines = [f"{store.n} real spectra ingested onto the quickstart grid, {int(covered.sum())} cover > 50 % of it.", ""]
    pairs = [("teff", teff, n) for n in nodes["teff"]] + [("rv", rv, n) for n in nodes["rv"]]
    fig, axes = plt.subplots(1, len(pairs), figsize=(4.2 * len(pairs), 3.6), squeeze=False)
    for ax, (label, values, node) in zip(axes[0], pairs):
        ok = covered & np.isfinite(values)
        rho = spearmanr(values[ok], mu[ok, node]).statistic if ok.sum() > 2 else np.nan
        lines.append(f"- {label} node {node}: Spearman ρ = {rho:.2f} over {int(ok.sum())} real spectra with a "
                     f"{label} label")
        if smu is not None:
            sv = smeta[label][rows]
            ax.scatter(sv, smu[:, node], s=3, c="0.8", label="synthetic (training store)")
        ax.scatter(values[ok], mu[ok, node], s=25, c="C3", label="real")
        for i in np.flatnonzero(ok):
            ax.annotate(str(meta["object"][i])[:12], (values[i], mu[i, node]), fontsize=6)
        ax.set(xlabel=f"{label} (label)", ylabel=f"node {node} code", title=f"{label}: ρ = {rho:.2f}")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "real_transfer.png", dpi=110)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
