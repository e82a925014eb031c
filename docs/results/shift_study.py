"""Which law does a learned shift follow? Read the warp (or the named operators) of finished runs node by node.

    python docs/results/shift_study.py RUN... --csv OUT.csv [--figure OUT.png] [--labels rv wave_offset] [--split validation]

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

For the RV node, the controls a referee asks for (issue #41): the report's separation verdict of the node
(``node_clean``, its second label); its μ regressed on RV and the zero-point in km/s at 5400 Å (``zp_over_rv``: μ's
change per km/s of zero-point over its change per km/s of RV, with a 95 % interval; 1: it reads the apparent
shift); the MI it keeps with the zero-point once RV is known (``zp_given_rv``, KSG-type conditional MI, its interval
and local-permutation null); and, with tellurics, a telluric-referenced CCF velocity (stellar minus telluric
cross-correlation) as a label-free baseline that the zero-point does not fool (``ccf_telluric_mi``).

A run of ``model.observed.ObservedStar`` (issue #43) has no warp: its rows skip the warp columns and add, on the RV
row, what its named operators read of the test codes (``op_*``): the stellar-velocity operator's MI with RV, its
zero-point ÷ RV response and the zero-point it keeps given RV, the zero-point operator's MI with the zero-point,
and each operator's main driving node with that node's share of its weights.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
import yaml
from replicate import also_carried  # this folder's: what a node carries besides its best label

from spectra_lightning.common.files import write_csv
from spectra_lightning.metrics.intervals import Z95
from spectra_lightning.metrics.separation import cmi_with_interval
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


def test_codes(run: Path, model, split: str = "test") -> tuple[np.ndarray, dict[str, np.ndarray], float, object, tuple]:
    """μ ``(N_test, D)`` and labels ``{name: (N_test,)}`` of the run's test (or validation) spectra as its own data module serves
    them (injected velocities included), the share of their spread ``Σ(x − x̄)²`` that the reconstruction leaves
    ``Σ(x̂ − x)²`` (unmasked pixels), the store's grid, and the spectra with their mask ``(N_test, L)``."""
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
        for batch in dm.test_dataloader() if split == "test" else dm.val_dataloader():
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
    labels_by_name = {n: values[:, j] for j, n in enumerate(dm.label_names)}
    return np.concatenate(mus), labels_by_name, left, dm.grid, (x, m.astype(bool))


ZP_REFERENCE_AA = 5400.0  # a zero-point offset in Å is quoted in km/s at the band's middle: c · offset / 5400 Å


def apparent_shift(mu: np.ndarray, rv: np.ndarray, offset_aa: np.ndarray) -> dict[str, float]:
    """How the node's μ ``(N,)`` moves per km/s of RV and per km/s of zero-point (``offset_aa`` at
    :data:`ZP_REFERENCE_AA`): the least-squares fit μ = a·v + b·zp + c with classical standard errors, and the
    ratio b/a with its delta-method error (1: the node reads the apparent shift, star and instrument alike; 0: RV
    alone)."""
    zp = C_KMS * offset_aa / ZP_REFERENCE_AA
    design = np.column_stack([rv, zp, np.ones_like(rv)])
    coef, *_ = np.linalg.lstsq(design, mu, rcond=None)
    resid = mu - design @ coef
    cov = np.linalg.inv(design.T @ design) * float(resid @ resid) / (len(mu) - 3)
    a, b = coef[0], coef[1]
    ratio = b / a
    grad = np.array([-b / a**2, 1 / a])  # d(b/a)/d(a, b)
    ratio_se = float(np.sqrt(grad @ cov[:2, :2] @ grad))
    return {
        "mu_per_kms_rv": sig(a),
        "mu_per_kms_zp": sig(b),
        "zp_over_rv": round(float(ratio), 3),
        "zp_over_rv_lo": round(float(ratio - Z95 * ratio_se), 3),
        "zp_over_rv_hi": round(float(ratio + Z95 * ratio_se), 3),
    }


def rest_tellurics(grid, resolution: float) -> np.ndarray:
    """``(L,)`` the generator's telluric optical depth on ``grid`` at airmass 1 (peak 1), with no drift."""
    from spectra_lightning.ingest.synth import telluric_depth

    mid = 0.5 * (grid.wave_min + grid.wave_max)
    return telluric_depth(grid, np.ones(1), np.zeros(1), np.zeros(1), mid, resolution)[0]


def resolution_of(synth: dict) -> float:
    """The run's resolving power (its ``synth`` section; the competing-shift set's 5,000 when it says none)."""
    return float(synth.get("resolution") or 5000.0)


def telluric_referenced_velocity(flux: np.ndarray, mask: np.ndarray, grid, resolution: float) -> np.ndarray:
    """``(N,)`` km/s: the stellar cross-correlation velocity minus the telluric lines' (a label-free, physics-aware
    baseline). The stellar template is the spectra's own aligned mean (``LabelFreeBaselines`` fit on them, no
    labels); the telluric one is the atmosphere's line list (synth's) at rest, correlated over its bands only. Both
    lags are in pixels of the same grid, so their difference cancels a zero-point offset (and a stretch, to first
    order near the telluric bands)."""
    from spectra_lightning.metrics.baselines import LabelFreeBaselines, ccf_lags, line_profile

    star = LabelFreeBaselines(grid.wavelength).fit(flux, mask)
    star_lag = star.ccf_velocity(flux, mask) / star.kms_per_px
    tau = rest_tellurics(grid, resolution)
    band = np.convolve(tau > 1e-3 * tau.max(), np.ones(31), mode="same") > 0  # the bands, ±15 px
    template = np.where(band, line_profile(np.exp(-tau)[None, :], grid.valid[None, :])[0], 0.0)
    tell_lag = ccf_lags(np.where(band, line_profile(flux, mask), 0.0), template, max_shift=8)
    return (star_lag - tell_lag) * star.kms_per_px


def mi_entry(name: str, x: np.ndarray, y: np.ndarray, z: np.ndarray | None = None) -> dict[str, float]:
    """``{name, name_lo, name_hi, name_null}``: I(x; y) (or I(x; y | z)) with its half-sample interval and null."""
    c = cmi_with_interval(x, y, z, k=3, reps=30, seed=0)
    return {
        name: round(c["value"], 3),
        f"{name}_lo": round(c["lo"], 3),
        f"{name}_hi": round(c["hi"], 3),
        f"{name}_null": round(c["null_p95"], 3),
    }


def rv_node_controls(report: dict, node: int, mu: np.ndarray, truths: dict, spectra: tuple, grid, synth: dict) -> dict:
    """The referee's controls on the RV node (issue #41): its separation verdict, μ regressed on (v, zero-point),
    what it carries of the zero-point once RV is known, and the telluric-referenced CCF beside the plain one."""
    sep = report.get("separation") or {}
    verdict = (sep.get("nodes") or {}).get(str(node)) or {}
    out: dict = {
        "node_clean": int(bool(verdict.get("clean"))) if verdict else "",
        "node_second_label": verdict.get("second_label", ""),
        "node_also": also_carried(verdict) if verdict else "",
    }
    rv = truths["rv"].astype(float)
    offset = truths.get("wave_offset")
    if offset is not None and np.ptp(offset) > 0:
        out |= apparent_shift(mu[:, node], rv, offset.astype(float))
        out |= mi_entry("zp_given_rv", mu[:, node], offset.astype(float), rv[:, None])
    if synth.get("tellurics"):
        referenced = telluric_referenced_velocity(*spectra, grid, resolution_of(synth))
        out |= mi_entry("ccf_telluric_mi", referenced, rv)
    return out


def operator_columns(net, mu: np.ndarray, truths: dict) -> dict:
    """For a decoder with named operators (``model.observed.ObservedStar``): what its stellar-velocity operator
    reads of the test codes ``mu (N, D)`` — its MI with RV, its response to the zero-point against RV's
    (:func:`apparent_shift`) and the zero-point it keeps given RV — and what its zero-point operator reads of the
    zero-point; each operator's main driving node and that node's share of its weights."""
    if not hasattr(net, "components"):
        return {}
    with torch.no_grad():
        ops = {k: v.numpy().astype(float) for k, v in net.components(torch.tensor(mu)).items()}
    rv, offset = truths["rv"].astype(float), truths.get("wave_offset")
    out = mi_entry("op_v_mi", ops["velocity"], rv)
    drivers = net.drivers()
    for name, key in (("velocity", "op_v"), ("zero_point", "op_zp")):
        out[f"{key}_node"] = int(np.argmax(drivers[name]))
        out[f"{key}_share"] = round(float(np.max(drivers[name])), 3)
    if offset is not None and np.ptp(offset) > 0:
        offset = offset.astype(float)
        out |= {f"op_v_{k}": v for k, v in apparent_shift(ops["velocity"], rv, offset).items()}
        out |= mi_entry("op_v_zp_given_rv", ops["velocity"], offset, rv[:, None])
        out |= mi_entry("op_zp_mi", ops["zero_point"], offset)
    stretch = truths.get("wave_stretch")
    if stretch is not None and np.ptp(stretch) > 0:
        out |= mi_entry("op_st_mi", ops["stretch"], stretch.astype(float))
    return out


def dedicated_node_columns(report: dict, row: dict) -> dict:
    """Where one node alone drives the velocity operator (``DedicatedNodes``): that node's separation verdict from
    the run's report — clean or not, and what it carries besides RV once RV is known."""
    if row.get("op_v_share") != 1.0:
        return {}
    node = (report.get("separation") or {}).get("nodes", {}).get(str(row["op_v_node"]))
    if node is None:  # not informative: the separation block reads informative nodes only
        return {"op_v_node_clean": "", "op_v_node_also": "not informative"}
    return {"op_v_node_clean": int(bool(node["clean"])), "op_v_node_also": also_carried(node)}


def transmission_columns(net, grid, synth: dict) -> dict:
    """For a decoder with a learned transmission: the correlation of its absorption spectrum τ with the generator's
    telluric optical depth on the grid (``op_tau_corr``; 1: it found the atmosphere's lines), and the share of its
    τ that lies in the telluric bands (``op_tau_in_bands``; ``op_tau_band_share``: the bands' share of the grid)."""
    transmission = getattr(net, "transmission", None)
    if transmission is None or not synth.get("tellurics"):
        return {}
    truth = rest_tellurics(grid, resolution_of(synth))
    tau = transmission.tau.detach().numpy().astype(float)
    band = truth > 1e-3 * truth.max()
    return {
        "op_tau_corr": round(float(np.corrcoef(tau, truth)[0, 1]), 3),
        "op_tau_in_bands": round(float(tau[band].sum() / tau.sum()), 3),
        "op_tau_band_share": round(float(band.mean()), 3),
    }


def pca_best(values: dict[str, float]) -> float:
    """The label-free PCA baseline: the most MI any of the report's principal components (``pc1``…) carries."""
    return max((v for k, v in values.items() if k.startswith("pc")), default=float("nan"))


def study(run: Path, labels: list[str]) -> tuple[list[dict], dict]:
    """One row per label, and what the figure needs: ``{label: (λ_k, d_k)}``."""
    report = json.loads((run / "report.json").read_text())
    model = load_model(run / "checkpoints" / "last.ckpt", torch.device("cpu"))
    warp = getattr(model.net, "warp", None)
    if warp is None and not hasattr(model.net, "components"):
        raise SystemExit(f"{run}: its decoder has neither a warp nor ObservedStar's operators; nothing to read")
    model.eval()
    mu, truths, left, grid, spectra = test_codes(run, model)
    lam, weight = np.zeros(0), None
    if warp is not None:
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
            "pca_mi": round(pca_best(e.get("baseline", {}).get("values", {})), 3),
            "readout_slope": sig(slope),
            "readout_rms": sig(np.std(truth - slope * x - intercept)),
            "label_std": sig(np.std(truth)),
            "recon_left": round(left, 4),
            **(fits(lam, weight[:, node]) if weight is not None else {}),
        }
        if label == "rv":
            synth = cfg["data"]["init_args"].get("synth") or {}
            row |= rv_node_controls(report, node, mu, truths, spectra, grid, synth)
            row |= operator_columns(model.net, mu, truths)
            row |= dedicated_node_columns(report, row)
            if hasattr(model.net, "components") and np.ptp(truths.get("wave_offset", np.zeros(1))) > 0:
                curves["velocity operator"] = operator_points(model.net, mu, truths)
            row |= transmission_columns(model.net, grid, synth)
        out.append(row)
        if weight is not None:
            curves[label] = (lam, weight[:, node], node)
    return out, curves


def choice_row(run: Path) -> dict:
    """What a recipe is chosen on (issue #43), from the run's validation spectra: its named operators' columns
    (:func:`operator_columns`, :func:`transmission_columns`) and the reconstruction's left-over share."""
    model = load_model(run / "checkpoints" / "last.ckpt", torch.device("cpu"))
    if not hasattr(model.net, "components"):
        raise SystemExit(f"{run}: --split validation reads ObservedStar's operators; this decoder has none")
    model.eval()
    mu, truths, left, grid, _ = test_codes(run, model, split="validation")
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    synth = cfg["data"]["init_args"].get("synth") or {}
    net = (cfg["model"]["net"].get("init_args") or {}) if isinstance(cfg["model"]["net"], dict) else {}
    schedule = upgrade_hparams(cfg["model"]).get("kl_schedule") or {}
    row = {"run": str(run), "split": "validation", "seed": cfg.get("seed_everything"), "data_seed": synth.get("seed")}
    row |= {"drivers": net.get("drivers", "directions"), "kl_weight": model_settings(cfg["model"])["kl_weight"]}
    row |= {"schedule": str(schedule.get("class_path", "")).rsplit(".", 1)[-1]}
    row |= {"capacity": (schedule.get("init_args") or {}).get("capacity", ""), "epochs": cfg["trainer"]["max_epochs"]}
    row |= {"n": len(mu), "recon_left": round(left, 4)}
    return row | operator_columns(model.net, mu, truths) | transmission_columns(model.net, grid, synth)


def operator_points(net, mu: np.ndarray, truths: dict) -> tuple[np.ndarray, np.ndarray]:
    """Per test spectrum: the zero-point (km/s at :data:`ZP_REFERENCE_AA`) and what the velocity operator reads
    (km/s) beyond its linear fit on RV: flat for the star alone, slope 1 for the apparent shift."""
    with torch.no_grad():
        v = net.components(torch.tensor(mu))["velocity"].numpy().astype(float)
    rv = truths["rv"].astype(float)
    slope, intercept = np.polyfit(rv, v, 1)
    return C_KMS * truths["wave_offset"].astype(float) / ZP_REFERENCE_AA, (v - slope * rv - intercept) / slope


def operator_figure(points: dict, path: Path) -> None:
    """One panel per run: the velocity operator's reading beyond RV against the zero-point."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(points), figsize=(2.6 * len(points), 2.8), sharey=True, squeeze=False)
    for ax, (run, (zp, left)) in zip(axes[0], points.items()):
        ax.plot(zp, left, ".", ms=2, alpha=0.5)
        line = np.linspace(zp.min(), zp.max(), 2)
        ax.plot(line, line, "k--", lw=1, label="apparent shift")
        ax.plot(line, 0 * line, "k:", lw=1, label="the star alone")
        ax.set_title(f"{Path(run).parent.name} ({Path(run).name})", fontsize=8)
        ax.set_ylim(-2 * np.abs(zp).max(), 2 * np.abs(zp).max())  # a few outliers would flatten the rest
        ax.set_xlabel("zero-point (km/s at 5400 Å)", fontsize=8)
    axes[0][0].set_ylabel("velocity beyond its RV fit (km/s of RV)", fontsize=8)
    axes[0][0].legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


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
            ax.plot(lam, d, "o", color=colour, label=f"{Path(run).parent.name}/{Path(run).name} (node {node})")
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
    p.add_argument(
        "--operator-figure", type=Path, help="ObservedStar runs: the velocity operator against the zero-point"
    )
    p.add_argument("--labels", nargs="+", default=["rv", "wave_offset", "wave_stretch"])
    p.add_argument(
        "--split",
        choices=("test", "validation"),
        default="test",
        help="test: every column, the claims' split; validation: the operators' columns only, to choose a recipe on",
    )
    a = p.parse_args()
    if a.split == "validation":
        write_csv(a.csv, [choice_row(run) for run in a.runs])
        return
    rows, curves, operators = [], {label: {} for label in a.labels}, {}
    for run in a.runs:
        r, c = study(run, a.labels)
        rows += r
        if "velocity operator" in c:
            operators[str(run)] = c.pop("velocity operator")
        for label, v in c.items():
            curves[label][str(run)] = v
    write_csv(a.csv, rows)
    if a.figure:
        figure({k: v for k, v in curves.items() if v}, a.figure)
    if a.operator_figure and operators:
        operator_figure(operators, a.operator_figure)
    for r in rows:
        print(r)


if __name__ == "__main__":
    main()
