"""Held-out fit quality of survey runs: χ² per pixel of each test spectrum's reconstruction, with the store's ivar.

    python docs/results/survey_study.py RUN... --out OUT.csv

For every run directory (``fit --config experiments/sdss.yaml``, any loss), the checkpoint ``last.ckpt``
reconstructs the run's test spectra (``split.json``) from μ; the table has one row per run: the loss it was
trained with, the test spectra, their median χ²/pixel (Σ ivar·(x̂ − x)² / the pixels with ivar > 0) and its
16th–84th percentiles, and the best node's MI with each label of the run's ``report.json`` (test split).
A χ²/pixel near 1 reconstructs a spectrum to its noise; well below 1 draws the noise too.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
from pathlib import Path

import numpy as np
import torch

from spectra_lightning.checkpoints import load_model
from spectra_lightning.files import write_atomic
from spectra_lightning.store import SpectraStore, fill_masked


def chi2_per_pixel(run: Path) -> tuple[str, np.ndarray]:
    """The run's loss class and the χ²/pixel ``(N_test,)`` of its test spectra."""
    import yaml

    config = yaml.safe_load((run / "config.yaml").read_text())
    store = SpectraStore.open(config["data"]["init_args"]["store"])
    split = json.loads((run / "split.json").read_text())
    ids = list(store.meta["id"])
    rows = np.sort([ids.index(i) for i in split["split_ids"]["test"]])
    model = load_model(run / "checkpoints" / "last.ckpt", torch.device("cpu"))
    flux, mask = fill_masked(store.read(rows))
    ivar = np.where(mask, store.read_ivar(rows), 0.0)
    with torch.no_grad():
        recon = model(torch.from_numpy(flux))[0].numpy()
    used = ivar > 0
    chi2 = (ivar * (recon - flux) ** 2).sum(1) / np.maximum(used.sum(1), 1)
    return str(model.hparams.loss["class_path"]).rsplit(".", 1)[-1], chi2


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", type=Path)
    p.add_argument("--out", required=True, type=Path, help="CSV to write (replaced)")
    a = p.parse_args()
    rows = []
    for run in a.runs:
        loss, chi2 = chi2_per_pixel(run)
        report = json.loads((run / "report.json").read_text())
        row = {
            "run": str(run),
            "loss": loss,
            "steps": report.get("fit", {}).get("global_step", ""),
            "n_test": len(chi2),
            "chi2_median": round(float(np.median(chi2)), 3),
            "chi2_p16": round(float(np.percentile(chi2, 16)), 3),
            "chi2_p84": round(float(np.percentile(chi2, 84)), 3),
            "informative": len(report["mad"]["informative"]),
        }
        for label, e in report["mi"]["ksg"].items():
            if e.get("best_node") is None:
                continue
            iv, base = e.get("intervals") or {}, e.get("baseline") or {}
            best = (iv.get("best") or {}).get("interval") or ["", ""]
            row |= {
                f"{label}_node": e["best_node"],
                f"{label}_mi": round(e["best"], 3),
                f"{label}_lo": round(best[0], 3) if best[0] != "" else "",
                f"{label}_hi": round(best[1], 3) if best[1] != "" else "",
                f"{label}_distinct": int(bool(iv.get("distinct"))),
                f"{label}_baseline": base.get("best") or "",
                f"{label}_baseline_mi": round(base["value"], 3) if base.get("value") is not None else "",
            }
        rows.append(row)
        print(row, flush=True)
    text = io.StringIO()
    w = csv.DictWriter(text, list(dict.fromkeys(k for r in rows for k in r)))
    w.writeheader()
    w.writerows(rows)
    write_atomic(a.out, text.getvalue())


if __name__ == "__main__":
    main()
