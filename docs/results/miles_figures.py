"""Figures of the MILES study from ``miles_study.csv`` (written by ``miles_study.py``).

    python docs/results/miles_figures.py

``miles_figure4.png``: the paper's Figure 4 on MILES, informative nodes against λ for each latent size
(one seed per point), with the best node's and the runner-up's Teff MI beside it; ``miles_seeds.png``:
Teff best vs runner-up per seed for the recipe candidates. Prints the markdown tables of the results page.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

HERE = Path(__file__).resolve().parent


def main() -> None:
    rows = [r for r in csv.DictReader(open(HERE / "miles_study.csv")) if not float(r.get("doppler_kms") or 0)]
    sweep = defaultdict(dict)  # latent size -> λ -> row (40-epoch runs, seed 0)
    for r in rows:
        if r["epochs"] == "40" and r["seed"] == "0" and r["reconstruction"] == "gaussian":
            sweep[int(r["latent_dim"])][float(r["kl_weight"])] = r
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6))
    for d, by_l in sorted(sweep.items()):
        ls = sorted(by_l)
        a.plot(ls, [int(by_l[x]["informative"]) for x in ls], "o-", label=f"latent {d}")
        b.plot(ls, [float(by_l[x]["teff_best"]) for x in ls], "o-", label=f"latent {d}: best node")
        b.plot(
            ls,
            [float(by_l[x]["teff_runner_up"]) for x in ls],
            "x--",
            c=b.lines[-1].get_color(),
            label=f"latent {d}: runner-up",
        )
    a.set(xscale="log", yscale="log", xlabel="λ (sum units)", ylabel="informative nodes", title="MILES: Figure 4")
    b.set(xscale="log", xlabel="λ (sum units)", ylabel="KSG MI with Teff (nat)", title="Teff: best node vs runner-up")
    a.legend(fontsize=7)
    b.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(HERE / "miles_figure4.png", dpi=110)

    cands = defaultdict(list)
    for r in rows:
        if r["name"].startswith("g_l") or r["name"].startswith("miles_recipe"):
            cands[(r["latent_dim"], float(r["kl_weight"]))].append(r)
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for i, (key, rs) in enumerate(sorted(cands.items())):
        for r in rs:
            ax.plot(
                [i - 0.1, i + 0.1],
                [float(r["teff_best"]), float(r["teff_runner_up"])],
                "o-",
                c="C2" if r["teff_distinct"] == "True" else "C3",
            )
    ax.set_xticks(range(len(cands)), [f"latent {d}\nλ={lam:g}" for d, lam in sorted(cands)], fontsize=7)
    ax.set(ylabel="Teff MI (nat): best → runner-up", title="per seed; green = distinct (≥1 nat, ≥2× runner-up)")
    fig.tight_layout()
    fig.savefig(HERE / "miles_seeds.png", dpi=110)
    tables(rows)


def tables(rows: list[dict]) -> None:
    print(
        "| loss | λ | latent | seed | informative | Teff: node, MI | runner-up | ratio | distinct | logg best | [Fe/H] best |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['reconstruction']} | {float(r['kl_weight']):g} | {r['latent_dim']} | {r['seed']} | {r['informative']} | "
            f"{r['teff_node']}: {float(r['teff_best']):.2f} | {float(r['teff_runner_up']):.2f} | {r['teff_ratio']} | "
            f"{'yes' if r['teff_distinct'] == 'True' else 'no'} | {float(r['logg_best']):.2f} | {float(r['feh_best']):.2f} |"
        )


if __name__ == "__main__":
    main()
