"""How much each label is worth to the reconstruction loss, measured with the project's generator.

    python docs/results/loss_worth.py [--n 2400] [--out docs/results]
    python docs/results/loss_worth.py --store MILES_STORE --doppler-kms 300 --out docs/results   # real spectra


For each data configuration, ``n`` spectra are drawn; the reconstruction that knows only a label is the
per-pixel median (L1) or mean (L2) of the spectra in its bin (30 equal-count bins of that label). Its loss
reduction against the reconstruction that knows nothing (the median / mean over all spectra), in %, is what
a network gains by encoding that label alone, at the loss's optimum. Writes ``loss_worth.csv`` and prints a
markdown table.

``--store``: the spectra of a store at rest (MILES), each shifted once by v ~ U(±doppler_kms) as the data
modules' augmentation does (edges cut); writes ``store_loss_worth.csv`` with the same two columns per label and
``shift_given_star_l2``: Σ(x_v − x_0)² / Σ(x_0 − x̄)² in %, what velocity is worth to a reconstruction that
already knows each star exactly (the quickstart's and the competing-shifts set's for comparison, rendered at
rest and at their v, their calibration drift and tellurics kept).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from spectra_lightning.common.files import write_csv
from spectra_lightning.ingest import synth
from spectra_lightning.ingest.synth import SynthSpec, draw_labels, render
from spectra_lightning.physics.grid import SpectralGrid

ROWS = [  # name, SynthSpec overrides, weak-line density factor
    ("quickstart, RV ±2.5 km/s", {"rv_max": 2.5}, 1),
    ("quickstart, RV ±30 km/s", {}, 1),
    ("quickstart ±30, SNR 1,000–3,000", {"snr_min": 1000.0, "snr_max": 3000.0}, 1),
    ("R = 20,000, ±100 km/s", {"resolution": 20000.0, "rv_max": 100.0}, 1),
    ("5000–5164 Å (no Mg b), 0.08 Å", {"grid": "5000:5164:0.08"}, 1),
    ("same window, 0.02 Å", {"grid": "5000:5164:0.02"}, 1),
    ("quickstart, 4× weak-line density", {}, 4),
    ("the paper's 3785–6910 Å window, 0.16 Å", {"grid": "3785:6910:0.16"}, 1),
]


SHIFTS = {
    "grid": "wide",
    "rv_max": 100.0,
    "wave_offset": 0.5,
    "wave_stretch": 3e-4,
    "tellurics": 0.5,
    "resolution": 5000.0,
}


def worth(flux: np.ndarray, label: np.ndarray, bins: int = 30) -> dict[str, float]:
    """% loss reduction of the per-bin median (L1) and mean (L2) over the global ones; ``flux (N, L)``."""
    edges = np.quantile(label, np.linspace(0, 1, bins + 1))
    which = np.clip(np.searchsorted(edges, label, side="right") - 1, 0, bins - 1)
    l1_all = np.abs(flux - np.median(flux, axis=0)).sum()
    l2_all = ((flux - flux.mean(axis=0)) ** 2).sum()
    l1 = l2 = 0.0
    for b in range(bins):
        part = flux[which == b]
        if len(part):
            l1 += np.abs(part - np.median(part, axis=0)).sum()
            l2 += ((part - part.mean(axis=0)) ** 2).sum()
    return {"l1": 100 * (1 - l1 / l1_all), "l2": 100 * (1 - l2 / l2_all)}


def measure(overrides: dict, density: int, n: int, seed: int) -> dict[str, dict[str, float]]:
    spec = SynthSpec(n=n, seed=seed, **overrides)
    grid = SpectralGrid.parse(spec.grid)
    base = synth.WEAK_LINES_PER_ANGSTROM
    synth.WEAK_LINES_PER_ANGSTROM = base * density
    try:
        labels = draw_labels(spec)
        rng = np.random.default_rng([seed, 1])
        flux = np.concatenate(
            [
                render(grid, {k: v[i : i + 200] for k, v in labels.items()}, rng, spec.resolution)
                for i in range(0, n, 200)
            ]
        )
    finally:
        synth.WEAK_LINES_PER_ANGSTROM = base
    keep = np.isfinite(flux).all(axis=0) & grid.valid
    return {name: worth(flux[:, keep], labels[name]) for name in ("rv", "teff")}


def shift_given_star(rest: np.ndarray, moved: np.ndarray) -> float:
    """% of the spectra's L2 spread ``(N, L)`` that their shifts make, the stars known exactly."""
    return float(100 * ((moved - rest) ** 2).sum() / ((rest - rest.mean(axis=0)) ** 2).sum())


def store_rows(path: str, kms: float, seed: int) -> list[dict]:
    """The store's spectra with injected velocities; and the quickstart's, at rest and at their v, beside them."""
    import torch

    from spectra_lightning.physics.doppler import DopplerShift
    from spectra_lightning.store import SpectraStore

    store = SpectraStore.open(path)
    rest = store.read(np.arange(store.n)).astype(np.float64)
    v = np.random.default_rng(seed).uniform(-kms, kms, store.n)
    shift = DopplerShift(store.grid.wavelength, fill=float("nan"))
    moved = shift(torch.from_numpy(rest).float(), torch.from_numpy(v)).double().numpy()
    keep = np.isfinite(rest).all(axis=0) & np.isfinite(moved).all(axis=0)
    rest, moved = rest[:, keep], moved[:, keep]
    teff = store.labels(["teff"])[:, 0]
    ok = np.isfinite(teff)
    rows = [
        {
            "data": f"{Path(path).name}: {store.n} spectra, v ~ U(±{kms:g}) km/s",
            **{f"{k}_rv": round(val, 1) for k, val in worth(moved, v).items()},
            **{f"{k}_teff": round(val, 1) for k, val in worth(moved[ok], teff[ok]).items()},
            "shift_given_star_l2": round(shift_given_star(rest, moved), 2),
        }
    ]
    for name, overrides in (
        ("quickstart, RV ±30 km/s", {}),
        ("competing shifts (docs/results/shifts.yaml), RV ±100 km/s", SHIFTS),
    ):
        spec = SynthSpec(n=600, seed=seed, **overrides)
        grid = SpectralGrid.parse(spec.grid)
        labels = draw_labels(spec)
        at_rest = render(grid, {**labels, "rv": 0 * labels["rv"]}, None, spec.resolution, spec.tellurics)
        at_v = render(grid, labels, None, spec.resolution, spec.tellurics)
        keep = grid.valid & np.isfinite(at_rest).all(axis=0)
        rows.append(
            {
                "data": f"{name}, noise-free (for comparison)",
                **{f"{k}_rv": round(val, 1) for k, val in worth(at_v[:, keep], labels["rv"]).items()},
                **{f"{k}_teff": round(val, 1) for k, val in worth(at_v[:, keep], labels["teff"]).items()},
                "shift_given_star_l2": round(shift_given_star(at_rest[:, keep], at_v[:, keep]), 2),
                # the instrument's shifts, where the set has them: what knowing one alone is worth (L2, %)
                **{
                    f"l2_{k}": round(worth(at_v[:, keep], labels[k])["l2"], 1) if spec.wave_offset else ""
                    for k in ("wave_offset", "wave_stretch")
                },
            }
        )
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=2400)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, required=True, help="folder for the table (docs/results for the record)")
    p.add_argument("--store", help="measure a store's spectra with injected velocities instead (MILES)")
    p.add_argument("--doppler-kms", type=float, default=300.0, help="--store: v ~ U(±this) km/s")
    a = p.parse_args()
    if a.store:
        rows = store_rows(a.store, a.doppler_kms, a.seed)
        for r in rows:
            print(r)
        write_csv(a.out / "store_loss_worth.csv", rows)
        return
    rows = []
    print("| data | L1: RV / Teff | L2: RV / Teff |\n|---|---|---|")
    for name, overrides, density in ROWS:
        w = measure(overrides, density, a.n, a.seed)
        rows.append({"data": name, **{f"{k}_{lab}": round(w[lab][k], 1) for lab in w for k in ("l1", "l2")}})
        r = rows[-1]
        print(f"| {name} | {r['l1_rv']} / {r['l1_teff']} | {r['l2_rv']} / {r['l2_teff']} |", flush=True)
    write_csv(a.out / "loss_worth.csv", rows)


if __name__ == "__main__":
    main()
