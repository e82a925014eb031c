"""Which law does a learned shift follow? Read the warp of finished runs node by node (issue #31).

    python docs/results/shift_study.py RUN... --csv OUT.csv [--figure OUT.png] [--labels rv wave_offset]

For each run (a ``fit`` whose decoder has a warp, ``nets.Warp``) and each label: the node that carries the label
best on the run's test split (``report.json``: KSG MI, its 95 % interval, distinct or not, the best label-free
baseline), then that node's column of the warp: the displacement ``d_k`` (Å per unit of the node) it puts at each
knot wavelength ``λ_k``, fitted three ways by least squares:

* Doppler, ``d = a·λ`` (zero intercept): a shift by ``a·c`` km/s per unit;
* uniform, ``d = b`` (a zero-point offset);
* affine, ``d = a·λ + b`` (any calibration drift; the intercept says how far from the Doppler law).

``*_rms`` are each fit's residual r.m.s. over the r.m.s. of ``d`` (0: the law holds exactly). And a linear
read-out of the label from the node's μ over the test spectra: its slope (label units per unit) and residual
r.m.s. On a linear grid, a Doppler shift by v moves λ by λ·v/c; a calibration offset moves it by a constant.
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
from spectra_lightning.model.legacy import model_settings, upgrade_hparams
from spectra_lightning.physics.grid import C_KMS


def sig(x: float) -> float:
    """``x`` to 4 significant digits (labels range from 1e-4, a stretch, to 1e3, Teff)."""
    return float(f"{float(x):.4g}")


def knot_wavelengths(wave: np.ndarray, knots: int) -> np.ndarray:
    """The wavelengths ``(K,)`` of the warp's knots: evenly spread over the padded row (nets.Warp's hat basis)."""
    return np.interp(np.linspace(0, len(wave) - 1, knots), np.arange(len(wave)), wave)


def fits(lam: np.ndarray, d: np.ndarray) -> dict[str, float]:
    """Least-squares Doppler (d = a·λ), uniform (d = b) and affine fits of displacements ``d (K,)`` at ``lam (K,)``."""
    scale = float(np.sqrt(np.mean(d**2))) or 1.0
    a = float(lam @ d / (lam @ lam))
    b = float(d.mean())
    slope, intercept = np.polyfit(lam, d, 1)
    mid = float(lam.mean())
    return {
        "d_rms_aa": round(scale, 5),
        "doppler_kms_per_unit": round(a * C_KMS, 2),
        "doppler_rms": round(float(np.sqrt(np.mean((d - a * lam) ** 2))) / scale, 3),
        "uniform_rms": round(float(np.sqrt(np.mean((d - b) ** 2))) / scale, 3),
        "affine_rms": round(float(np.sqrt(np.mean((d - slope * lam - intercept) ** 2))) / scale, 3),
        # the affine fit's shift at the band's middle that its intercept makes (1: all intercept, 0: Doppler)
        "affine_intercept_share": round(float(intercept / (slope * mid + intercept)), 3),
    }


def test_codes(run: Path, model) -> tuple[np.ndarray, dict[str, np.ndarray], float, object]:
    """μ ``(N_test, D)`` and labels ``{name: (N_test,)}`` of the run's test spectra as its own data module serves
    them (injected velocities included), the share of their spread ``Σ(x − x̄)²`` that the reconstruction leaves
    ``Σ(x̂ − x)²`` (unmasked pixels), and the store's grid."""
    import importlib

    from spectra_lightning.store.batch import finish_batch

    cfg = yaml.safe_load((run / "config.yaml").read_text())["data"]
    module, name = cfg["class_path"].rsplit(".", 1)
    init = dict(cfg["init_args"])
    if init.get("synth"):
        from spectra_lightning.ingest.synth import SynthSpec

        init["synth"] = SynthSpec(**init["synth"])
    dm = getattr(importlib.import_module(module), name)(**init)
    dm.prepare_data()
    dm.setup("test")
    mus, labels, flux_all, recon_all, mask_all = [], [], [], [], []
    with torch.no_grad():
        for batch in dm.test_dataloader():
            batch = finish_batch(batch)
            recon, mu, _ = model(batch["flux"])
            mus.append(mu.numpy())
            labels.append(batch["labels"].numpy())
            flux_all.append(batch["flux"].numpy())
            recon_all.append(recon.numpy())
            mask_all.append(batch["mask"].numpy())
    x, xh, m = np.concatenate(flux_all), np.concatenate(recon_all), np.concatenate(mask_all)
    mean = np.where(m, x, 0).sum(0) / np.maximum(m.sum(0), 1)
    left = float((np.where(m, xh - x, 0) ** 2).sum() / (np.where(m, x - mean, 0) ** 2).sum())
    values = np.concatenate(labels)
    return np.concatenate(mus), {n: values[:, j] for j, n in enumerate(dm.label_names)}, left, dm.grid


def study(run: Path, labels: list[str]) -> tuple[list[dict], dict]:
    """One row per label, and what the figure needs: ``{label: (λ_k, d_k)}``."""
    report = json.loads((run / "report.json").read_text())
    model = load_model(run / "checkpoints" / "last.ckpt", torch.device("cpu"))
    warp = getattr(model.net, "warp", None)
    if warp is None:
        raise SystemExit(f"{run}: its decoder has no warp (ConvAutoencoder(warp_knots=0)); nothing to read")
    model.eval()
    mu, truths, left, grid = test_codes(run, model)
    lam = knot_wavelengths(grid.wavelength, warp.knots)
    # (K, D) Å per unit of each node: pixels times the pixel's width at the knot (linear or log grid)
    weight = warp.scale * warp.coef.weight.detach().numpy() * grid.pixel_width(lam)[:, None]
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    schedule = (upgrade_hparams(cfg["model"]).get("kl_schedule") or {}).get("init_args") or {}
    out, curves = [], {}
    for label in labels:
        e = report["mi"]["ksg"].get(label)
        if not e or e.get("best_node") is None:
            continue
        node = int(e["best_node"])
        iv = e["intervals"]
        truth = truths[label].astype(float)
        ok = np.isfinite(truth)
        x, truth = mu[ok, node], truth[ok]
        slope, intercept = np.polyfit(x, truth, 1)
        row = {
            "run": str(run),
            "seed": cfg.get("seed_everything"),
            "data_seed": (cfg["data"]["init_args"].get("synth") or {}).get("seed"),
            "resolution": (cfg["data"]["init_args"].get("synth") or {}).get("resolution", ""),
            "kl_weight": model_settings(cfg["model"])["kl_weight"],
            "capacity": schedule.get("capacity", ""),
            "label": label,
            "val_mi": round(
                ((report.get("validation") or {}).get("mi", {}).get("ksg", {}).get(label) or {}).get(
                    "best", float("nan")
                ),
                3,
            ),
            "n_test": e["n"],
            "informative": len(report["mad"]["informative"]),
            "node": node,
            "mi": round(e["best"], 3),
            "mi_lo": round(iv["best"]["interval"][0], 3),
            "mi_hi": round(iv["best"]["interval"][1], 3),
            "runner_up": e["runner_up"],
            "runner_up_mi": round(e["runner_up_value"] or 0.0, 3),
            "distinct": int(bool(iv["distinct"])),
            "baseline": e.get("baseline", {}).get("best", ""),
            "baseline_mi": round(e.get("baseline", {}).get("value", float("nan")), 3),
            "ccf_mi": round(e.get("baseline", {}).get("values", {}).get("ccf_velocity", float("nan")), 3),
            "readout_slope": sig(slope),
            "readout_rms": sig(np.std(truth - slope * x - intercept)),
            "label_std": sig(np.std(truth)),
            "recon_left": round(left, 4),
            **fits(lam, weight[:, node]),
        }
        out.append(row)
        curves[label] = (lam, weight[:, node], node)
    return out, curves


def figure(curves: dict, path: Path) -> None:
    """The RV node's displacement against λ with its Doppler and uniform fits, one panel per label."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(curves), figsize=(4.2 * len(curves), 3.4), squeeze=False)
    for ax, (label, per_run) in zip(axes[0], curves.items()):
        for i, (run, (lam, d, node)) in enumerate(per_run.items()):
            sign = np.sign(d.mean()) or 1.0  # a node's sign is arbitrary: show every run moving lines redward
            d = d * sign
            a, b = lam @ d / (lam @ lam), d.mean()
            colour = f"C{i}"
            ax.plot(lam, d, "o", color=colour, label=f"{Path(run).name} (node {node})")
            grid = np.linspace(lam.min(), lam.max(), 50)
            ax.plot(grid, a * grid, "-", color=colour, lw=1)
            ax.plot(grid, 0 * grid + b, ":", color=colour, lw=1)
        ax.set_title(f"the {label} node's warp (— d ∝ λ, ··· d = const)", fontsize=9)
        ax.set_xlabel("λ of the knot (Å)")
        ax.set_ylabel("displacement per unit (Å)")
        ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", type=Path)
    p.add_argument("--csv", required=True, type=Path, help="table to write (replaced)")
    p.add_argument("--figure", type=Path, help="the displacement-against-λ figure")
    p.add_argument("--labels", nargs="+", default=["rv", "wave_offset", "wave_stretch"])
    a = p.parse_args()
    rows, curves = [], {label: {} for label in a.labels}
    for run in a.runs:
        r, c = study(run, a.labels)
        rows += r
        for label, v in c.items():
            curves[label][str(run)] = v
    write_csv(a.csv, rows)
    if a.figure:
        figure({k: v for k, v in curves.items() if v}, a.figure)
    for r in rows:
        print(r)


if __name__ == "__main__":
    main()
