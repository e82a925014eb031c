"""What makes RV learnable on the quickstart: tabulate and plot runs of the recipes.

    python docs/results/rv_study.py RUN_DIR... [--out docs/results]

Each RUN_DIR is a finished `fit` of experiments/quickstart.yaml with the overrides its
`config.yaml` records; writes ``rv_study.csv`` and ``rv_study.png`` (best-node and best-pair
KSG MI for rv and teff per run) and prints a markdown table.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import yaml

from spectra_lightning.model.legacy import model_settings


def describe(run: Path) -> dict:
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    m, synth = model_settings(cfg["model"]), cfg["data"]["init_args"].get("synth") or {}
    r = json.loads((run / "report.json").read_text())
    ksg, pairs = r["mi"]["ksg"], r.get("mi_pairs", {}).get("ksg", {})
    row = {
        "run": run.name,
        "seed": cfg.get("seed_everything"),
        "variational": m["variational"],
        "reconstruction": m["reconstruction"],
        "kl_weight": m["kl_weight"],
        "doppler_node": m["doppler_node"],
        "resolution": synth.get("resolution", 115000),
        "rv_max": synth.get("rv_max"),
        "epochs": cfg["trainer"]["max_epochs"],
        "informative": len(r["mad"]["informative"]),
    }
    for label in ("rv", "teff"):
        e = ksg[label]
        row[f"{label}_best"] = round(e["best"] or 0.0, 2)
        row[f"{label}_runner_up"] = round(e["runner_up_value"] or 0.0, 2)
        row[f"{label}_pair"] = round((pairs.get(label) or {}).get("value") or 0.0, 2)
        row[f"{label}_any_node"] = round(max(v or 0.0 for v in e["values"]), 2)
        row[f"{label}_carrier"] = r["carriers"][label]["kind"]
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", type=Path)
    p.add_argument("--out", type=Path, required=True, help="folder for the table and figure (docs/results: the record)")
    a = p.parse_args()
    rows = [describe(r) for r in a.runs]
    with open(a.out / "rv_study.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    names = [
        f"{'VAE' if r['variational'] else 'AE'} {r['reconstruction']}"
        + (f" λ={r['kl_weight']:g}" if r["variational"] else "")
        + (" +Doppler" if r["doppler_node"] is not None else "")
        + (f" R={int(r['resolution']) // 1000}k ±{r['rv_max']:g}" if r["resolution"] != 115000 else "")
        + (f", {r['epochs']} epochs" if r["epochs"] != 12 else "")
        + f", seed {r['seed']}"
        for r in rows
    ]
    fig, axes = plt.subplots(1, 2, figsize=(11, 0.45 * len(rows) + 1.6), sharey=True)
    y = np.arange(len(rows))
    for ax, label in zip(axes, ("rv", "teff")):
        ax.barh(y + 0.2, [r[f"{label}_best"] for r in rows], 0.4, label="best informative node")
        ax.barh(y - 0.2, [r[f"{label}_pair"] for r in rows], 0.4, label="best pair (joint)")
        ax.set(xlabel=f"KSG MI with {label} (nats)", title=label)
        ax.legend(fontsize=8)
    axes[0].set_yticks(y, names)
    axes[0].invert_yaxis()
    fig.tight_layout()
    fig.savefig(a.out / "rv_study.png", dpi=110)
    print("| recipe | informative | RV best / 2nd | RV pair | Teff best / 2nd | RV carrier | Teff carrier |")
    print("|---|---|---|---|---|---|---|")
    for name, r in zip(names, rows):
        print(
            f"| {name} | {r['informative']} | {r['rv_best']:.2f} / {r['rv_runner_up']:.2f} | {r['rv_pair']:.2f} | "
            f"{r['teff_best']:.2f} / {r['teff_runner_up']:.2f} | {r['rv_carrier']} | {r['teff_carrier']} |"
        )


if __name__ == "__main__":
    main()
