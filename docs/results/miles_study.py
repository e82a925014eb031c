"""The MILES study: run `fit` of experiments/miles.yaml with overrides, several seeds, and tabulate.

    python docs/results/miles_study.py --store STORE --name NAME --csv OUT.csv [--seeds 0 1 2] \
        -- --model.kl_schedule.init_args.weight=300 ...
    python docs/results/miles_study.py --table RUNS_DIR... --csv OUT.csv    # tabulate finished runs

Each run is a real `python -m spectra_lightning fit` (its own process, W&B off) in
``runs/miles_study/<name>/seed<k>``; the table (``--csv``, appended to: the committed record is
``docs/results/miles_study.csv``, extended by hand after a study) has,
per run, the informative nodes and, per label, the best node's KSG MI, the runner-up's among the
informative nodes and their ratio. "Distinct" = best >= 1.0 nat and >= 2x the runner-up.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import time
from pathlib import Path

import yaml

from spectra_lightning.common.files import replacing
from spectra_lightning.model.legacy import model_settings

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
LABELS = ("teff", "logg", "feh", "rv")


def summarise(run: Path, name: str = "") -> dict:
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    r = json.loads((run / "report.json").read_text())
    m, d = model_settings(cfg["model"]), cfg["data"]["init_args"]
    row = {
        "name": name or run.parent.name,
        "seed": cfg.get("seed_everything"),
        "latent_dim": m["latent_dim"],
        "kl_weight": m["kl_weight"],
        "reconstruction": m["reconstruction"],
        "depth": m["depth"],
        "epochs": cfg["trainer"]["max_epochs"],
        "doppler_node": m["doppler_node"],
        "doppler_kms": d.get("doppler_kms", 0.0),
        "n_val": r["n_spectra"],
        "informative": len(r["mad"]["informative"]),
        "informative_nodes": " ".join(map(str, r["mad"]["informative"])),
    }
    for label in LABELS:
        e = r["mi"]["ksg"].get(label)
        if not e or e.get("best") is None:
            continue
        best, runner = e["best"], e["runner_up_value"] or 0.0
        row[f"{label}_node"] = e["best_node"]
        row[f"{label}_best"] = round(best, 3)
        row[f"{label}_runner_up"] = round(runner, 3)
        row[f"{label}_ratio"] = round(best / runner, 2) if runner > 0 else float("inf")
        row[f"{label}_distinct"] = bool(best >= 1.0 and best >= 2 * runner)
    return row


def fit(store: str, out: Path, seed: int, overrides: list[str]) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "spectra_lightning",
        "fit",
        "--config",
        str(REPO / "experiments/miles.yaml"),
        f"--data.init_args.store={store}",
        f"--seed_everything={seed}",
        "--trainer.logger=false",
        f"--trainer.default_root_dir={out}",
        *overrides,
    ]
    t0 = time.time()
    with open(out.parent / f"{out.name}.log", "w") as log:
        subprocess.run(cmd, check=True, stdout=log, stderr=subprocess.STDOUT)
    print(f"{out}: {time.time() - t0:.0f} s", flush=True)
    return out


def append(rows: list[dict], path: Path) -> None:
    old = list(csv.DictReader(open(path))) if path.exists() else []
    keys = list(dict.fromkeys([k for r in old + rows for k in r]))
    with replacing(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, keys)
        w.writeheader()
        w.writerows(old + rows)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--store")
    p.add_argument("--name")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--runs", default="runs/miles_study")
    p.add_argument("--table", nargs="*", help="tabulate these finished run directories instead")
    p.add_argument("--csv", type=Path, required=True, help="the table to append to (created if missing)")
    a, overrides = p.parse_known_args()
    overrides = [o for o in overrides if o != "--"]
    if a.table is not None:
        rows = [summarise(Path(r)) for r in a.table]
    else:
        rows = [summarise(fit(a.store, Path(a.runs) / a.name / f"seed{s}", s, overrides), a.name) for s in a.seeds]
        for r in rows:
            r["overrides"] = " ".join(overrides)
    append(rows, a.csv)
    for r in rows:
        print({k: v for k, v in r.items() if not k.endswith("_nodes")})


if __name__ == "__main__":
    main()
