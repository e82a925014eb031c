"""Held-out fit quality of survey runs: χ² per pixel of each test spectrum's reconstruction, with the store's ivar.

    python docs/results/survey_study.py RUN... --out OUT.csv [--by-class OUT2.csv]

For every run directory (``fit --config experiments/sdss.yaml``, any loss), the checkpoint ``last.ckpt``
reconstructs the run's test spectra (``split.json``) from μ; the table has one row per run: the loss it was
trained with, the test spectra, their median χ²/pixel (Σ ivar·(x̂ − x)² / the pixels with ivar > 0) and its
16th–84th percentiles, and the best node's MI with each label of the run's ``report.json`` (test split) with the
label-free ``ccf_z`` beside it, and the separation block of the test codes against z and the continuum colour.
A χ²/pixel near 1 reconstructs a spectrum to its noise; well below 1 draws the noise too.

``--by-class``: per run and per class of the files (QSO, GALAXY, STAR), the test spectra of that class with a z,
the best informative node's KSG MI with z among them (95 % interval, distinct or not) and the best label-free
baseline's (PCA, colour, CCF fit on the run's training spectra), where a class has at least ``--min-class``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
import yaml

from spectra_lightning.common.files import write_csv
from spectra_lightning.model.checkpoints import load_model
from spectra_lightning.store import SpectraStore, fill_masked


def loss_name(model) -> str:
    """The run's loss class, e.g. ``ChiSquared``."""
    return str(model.hparams.loss["class_path"]).rsplit(".", 1)[-1]


def chi2_per_pixel(run: Path) -> tuple[str, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The run's loss class, the χ²/pixel ``(N_test,)`` of its test spectra, their μ ``(N_test, D)``, their
    continuum colour ``(N_test,)`` (``LabelFreeBaselines.colour``: the slope a node may carry) and z (NaN: none)."""
    from spectra_lightning.metrics.baselines import LabelFreeBaselines

    config = yaml.safe_load((run / "config.yaml").read_text())
    store = SpectraStore.open(config["data"]["init_args"]["store"])
    split = json.loads((run / "split.json").read_text())
    ids = list(store.meta["id"])
    rows = np.sort([ids.index(i) for i in split["split_ids"]["test"]])
    model = load_model(run / "checkpoints" / "last.ckpt", torch.device("cpu"))
    flux, mask = fill_masked(store.read(rows))
    ivar = np.where(mask, store.read_ivar(rows), 0.0)
    model.eval()
    with torch.no_grad():
        recon, mu, _ = (t.numpy() for t in model(torch.from_numpy(flux)))
    used = ivar > 0
    chi2 = (ivar * (recon - flux) ** 2).sum(1) / np.maximum(used.sum(1), 1)
    loss = loss_name(model)
    z = store.meta["z"][rows].astype(float) if "z" in store.meta else np.full(len(rows), np.nan)
    return loss, chi2, mu.astype(np.float64), LabelFreeBaselines.colour(flux, mask), z


def separation_columns(mu: np.ndarray, z: np.ndarray, colour: np.ndarray, informative: list[int]) -> dict:
    """The separation block (``metrics.separation``) of the test codes against z and the continuum colour (the two
    things a survey node may read; the report has z alone, and a verdict needs a second quantity): whether the z
    node is clean (carries no colour once z is known), its MI with z given the colour it carries, MIG and DCI."""
    from spectra_lightning.metrics.separation import separation

    sep = separation(mu, {"z": z, "colour": colour}, informative)
    e = sep["labels"]["z"]
    return {
        "sep_n": sep["n"],
        "z_sep_node": e["node"],
        "z_clean": int(bool(e["clean"])),
        "z_cmi": round(e["cmi"]["value"], 3),
        "z_cmi_lo": round(e["cmi"]["lo"], 3),
        "z_cmi_hi": round(e["cmi"]["hi"], 3),
        "z_cmi_given": "+".join(e["cmi"]["given"]),
        "mig": round(sep["mig"]["value"], 3),
        "mig_lo": round(sep["mig"]["lo"], 3),
        "mig_hi": round(sep["mig"]["hi"], 3),
        **{
            f"dci_{k}": round(sep["dci"][k]["value"], 3) for k in ("disentanglement", "completeness", "informativeness")
        },
    }


def by_class(run: Path, classes: list[str], min_n: int) -> list[dict]:
    """Per class: z against the nodes on that class's test spectra (see the module docstring)."""
    from spectra_lightning.metrics.baselines import LabelFreeBaselines
    from spectra_lightning.metrics.report import ksg_entry

    config = yaml.safe_load((run / "config.yaml").read_text())
    store = SpectraStore.open(config["data"]["init_args"]["store"])
    split = json.loads((run / "split.json").read_text())["split_ids"]
    index = {s: i for i, s in enumerate(store.meta["id"])}
    model = load_model(run / "checkpoints" / "last.ckpt", torch.device("cpu"))
    report = json.loads((run / "report.json").read_text())
    train = np.sort([index[i] for i in split["train"]])
    baselines = LabelFreeBaselines(store.grid.wavelength).fit(*fill_masked(store.read(train)))
    test = np.sort([index[i] for i in split["test"]])
    z, cls = store.meta["z"][test].astype(float), store.meta["class"][test].astype(str)
    rows = []
    which = {
        "run": str(run),
        "loss": loss_name(model),
        "seed": config.get("seed_everything", ""),
    }
    for name in classes:
        keep = test[(cls == name) & np.isfinite(z)]
        if len(keep) < min_n:
            rows.append({**which, "class": name, "n_test": len(keep), "note": f"fewer than {min_n}"})
            continue
        flux, mask = fill_masked(store.read(keep))
        with torch.no_grad():
            mu = model.net.encode(torch.from_numpy(flux))[0].numpy().astype(np.float64)
        features = baselines.features(flux, mask)
        e = ksg_entry(
            mu,
            store.meta["z"][keep].astype(float),
            list(report["mad"]["informative"]),
            3,
            0,
            baselines=dict(zip(baselines.names, features.T)),
        )
        iv = e["intervals"]
        rows.append(
            {
                **which,
                "class": name,
                "n_test": len(keep),
                "z_node": e["best_node"],
                "z_mi": round(e["best"], 3),
                "z_lo": round(iv["best"]["interval"][0], 3),
                "z_hi": round(iv["best"]["interval"][1], 3),
                "z_distinct": int(bool(iv["distinct"])),
                "z_baseline": e["baseline"]["best"],
                "z_baseline_mi": round(e["baseline"]["value"], 3),
                "note": "",
            }
        )
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", type=Path)
    p.add_argument("--out", required=True, type=Path, help="CSV to write (replaced)")
    p.add_argument("--by-class", type=Path, help="also a per-class CSV of z against the nodes (replaced)")
    p.add_argument("--classes", nargs="+", default=["QSO", "GALAXY", "STAR"])
    p.add_argument("--min-class", type=int, default=15, help="fewest test spectra of a class to measure it")
    a = p.parse_args()
    rows = []
    for run in a.runs:
        from spectra_lightning.metrics.report import ksg_entry

        loss, chi2, mu, colour, z = chi2_per_pixel(run)
        report = json.loads((run / "report.json").read_text())
        slope = ksg_entry(mu, colour, list(report["mad"]["informative"]), 3, 0)
        row = {
            "run": str(run),
            "loss": loss,
            "kl_weight": report.get("fit", {}).get("kl_weight", ""),
            "seed": yaml.safe_load((run / "config.yaml").read_text()).get("seed_everything", ""),
            "val_z_mi": round(
                ((report.get("validation") or {}).get("mi", {}).get("ksg", {}).get("z") or {}).get(
                    "best", float("nan")
                ),
                3,
            ),
            "val_informative": len(((report.get("validation") or {}).get("mad") or {}).get("informative", [])),
            "steps": report.get("fit", {}).get("global_step", ""),
            "n_test": len(chi2),
            "chi2_median": round(float(np.median(chi2)), 3),
            "chi2_p16": round(float(np.percentile(chi2, 16)), 3),
            "chi2_p84": round(float(np.percentile(chi2, 84)), 3),
            "informative": len(report["mad"]["informative"]),
            "colour_node": slope["best_node"],
            "colour_mi": round(slope["best"], 3),
            "colour_lo": round(slope["intervals"]["best"]["interval"][0], 3),
            "colour_hi": round(slope["intervals"]["best"]["interval"][1], 3),
            "colour_distinct": int(bool(slope["intervals"]["distinct"])),
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
                f"{label}_ccf_z_mi": round(base["values"]["ccf_z"], 3) if "ccf_z" in base.get("values", {}) else "",
            }
        row |= separation_columns(mu, z, colour, list(report["mad"]["informative"]))
        rows.append(row)
        print(row, flush=True)
    write_csv(a.out, rows)
    if a.by_class:
        write_csv(a.by_class, [r for run in a.runs for r in by_class(run, a.classes, a.min_class)])


if __name__ == "__main__":
    main()
