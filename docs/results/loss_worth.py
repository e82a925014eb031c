"""How much each label is worth to the reconstruction loss, measured with the project's generator.

    python docs/results/loss_worth.py [--n 2400] [--out docs/results]

For each data configuration, ``n`` spectra are drawn; the reconstruction that knows only a label is the
per-pixel median (L1) or mean (L2) of the spectra in its bin (30 equal-count bins of that label). Its loss
reduction against the reconstruction that knows nothing (the median / mean over all spectra), in %, is what
a network gains by encoding that label alone, at the loss's optimum. Writes ``loss_worth.csv`` and prints a
markdown table.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

from spectra_lightning import synth
from spectra_lightning.grid import SpectralGrid
from spectra_lightning.synth import SynthSpec, draw_labels, render

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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=2400)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, required=True, help="folder for the table (docs/results for the record)")
    a = p.parse_args()
    rows = []
    print("| data | L1: RV / Teff | L2: RV / Teff |\n|---|---|---|")
    for name, overrides, density in ROWS:
        w = measure(overrides, density, a.n, a.seed)
        rows.append({"data": name, **{f"{k}_{lab}": round(w[lab][k], 1) for lab in w for k in ("l1", "l2")}})
        r = rows[-1]
        print(f"| {name} | {r['l1_rv']} / {r['l1_teff']} | {r['l2_rv']} / {r['l2_teff']} |", flush=True)
    with open(a.out / "loss_worth.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


if __name__ == "__main__":
    main()
