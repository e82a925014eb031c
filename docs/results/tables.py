"""The tables of docs/results/README.md, rendered from the CSV files beside it.

Every table in that README sits between ``<!-- table: NAME -->`` and ``<!-- /table -->`` and is rendered here
from its file (``TABLES``); ``tests/test_results_tables.py`` fails when a block differs from its rendering or
a table stands outside a block.

    python docs/results/tables.py            # rewrite the blocks from the CSVs, and draw replication.png
    python docs/results/tables.py --check    # exit 1 when a block is stale
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
README = HERE / "README.md"
BLOCK = re.compile(r"(<!-- table: (\w+) -->\n)(.*?)(<!-- /table -->)", re.S)


def read(*names: str) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = []
    for name in names:
        with open(HERE / name, newline="") as f:
            rows += list(csv.DictReader(f))
    return rows


def mi(row: dict[str, str], label: str, key: str = "mi", lo: str = "lo", hi: str = "hi") -> str:
    if not row.get(f"{label}_{key}"):
        return "–"
    bounds = f" [{row[f'{label}_{lo}']}, {row[f'{label}_{hi}']}]" if row.get(f"{label}_{lo}") else ""
    return f"{row[f'{label}_{key}']}{bounds}"


def node_cells(row: dict[str, str], label: str) -> list[str]:
    runner = row.get(f"{label}_runner_mi") or "–"
    if row.get(f"{label}_runner_hi"):
        runner += f" (≤ {row[f'{label}_runner_hi']})"
    base = f"{row.get(f'{label}_baseline') or '–'} {mi(row, label, 'baseline_mi', 'baseline_lo', 'baseline_hi')}"
    return [
        f"{row.get(f'{label}_node', '–')}: {mi(row, label)}",
        runner,
        row.get(f"{label}_null_p95") or "–",
        "yes" if row.get(f"{label}_distinct") == "1" else "no",
        row.get(f"{label}_pair_mi") or "–",
        base,
    ]


def claims_table(rows: list[dict[str, str]], labels: tuple[str, ...]) -> str:
    head = ["seed", "data seed", "split, n", "informative"]
    for label in labels:
        head += [
            f"{label}: node, MI [95 %]",
            "runner-up (upper)",
            "null p95",
            "distinct",
            "best pair",
            "best baseline [95 %]",
        ]
    out = []
    for r in rows:
        cells = [r["seed"], r.get("data_seed") or "–", f"{r['split']}, {r['n']}", r["informative"]]
        for label in labels:
            cells += node_cells(r, label)
        out.append(cells)
    return rows_table(head, out)


def distinct_count(rows: list[dict[str, str]], label: str) -> int:
    return sum(r.get(f"{label}_distinct") == "1" for r in rows)


def quickstart(rows: list[dict[str, str]] | None = None) -> str:
    rows = rows or read("quickstart_replication.csv", "quickstart_data7_replication.csv")
    both = sum(
        r.get("rv_distinct") == "1" and r.get("teff_distinct") == "1" and r.get("rv_node") != r.get("teff_node")
        for r in rows
    )
    rv_beats = sum(float(r.get("rv_lo") or 0) > float(r.get("rv_baseline_hi") or "inf") for r in rows)
    teff_beats = sum(float(r.get("teff_lo") or 0) > float(r.get("teff_baseline_hi") or "inf") for r in rows)
    n = len(rows)
    return (
        claims_table(rows, ("rv", "teff"))
        + f"\nRV on a distinct node: {distinct_count(rows, 'rv')} of {n}; Teff on a distinct node: "
        f"{distinct_count(rows, 'teff')} of {n}; both, on different nodes: {both} of {n}. The node's interval above "
        f"the best baseline's: RV {rv_beats} of {n}, Teff {teff_beats} of {n}.\n"
    )


def miles() -> str:
    rows = read("miles_replication.csv")
    n = len(rows)
    beats = sum(float(r.get("teff_lo") or 0) > float(r.get("teff_baseline_hi") or "inf") for r in rows)
    return (
        claims_table(rows, ("teff", "logg", "feh"))
        + f"\nTeff on a distinct node: {distinct_count(rows, 'teff')} of {n}; logg: {distinct_count(rows, 'logg')} "
        f"of {n}; [Fe/H]: {distinct_count(rows, 'feh')} of {n}. The Teff node's interval above the best "
        f"baseline's: {beats} of {n}.\n"
    )


def rerun(name: str) -> str:
    """A quickstart replication on fresh seeds (``name``: its CSV), and each fit's wall time."""
    rows = read(name)
    walls = ", ".join(f"seed {r['seed']} {float(r['wall_s']):.0f} s" for r in rows if r.get("wall_s"))
    return quickstart(rows) + f"Wall time of each fit (install excluded): {walls}.\n"


def quickstart_now() -> str:
    """The quickstart rerun with 0.3's network (fast layers, precise shift)."""
    return rerun("quickstart_replication_0.3.csv")


def quickstart_fast() -> str:
    """The quickstart with 0.4's step (freed memory kept, fused Adam, faster one-channel layers)."""
    return rerun("quickstart_replication_0.4.csv")


def sdss() -> str:
    rows = read("sdss_loss_comparison.csv")
    head = ["loss", "λ", "seed", "validation: z MI, informative", "test spectra", "χ²/pixel, median [16th, 84th %]"]
    head += ["informative nodes", "z: best node MI [95 %]", "distinct", "best baseline"]
    head += ["continuum colour: best node MI [95 %]"]
    out = []
    for r in rows:
        cells = [r["loss"], r["kl_weight"], r["seed"], f"{r['val_z_mi']}, {r['val_informative']}", r["n_test"]]
        cells += [f"{r['chi2_median']} [{r['chi2_p16']}, {r['chi2_p84']}]", r["informative"]]
        cells += [f"{r['z_node']}: {mi(r, 'z')}", "yes" if r.get("z_distinct") == "1" else "no"]
        cells.append(f"{r['z_baseline']} {r['z_baseline_mi']}")
        cells.append(f"{r['colour_node']}: {mi(r, 'colour')}" + (" distinct" if r["colour_distinct"] == "1" else ""))
        out.append(cells)
    return rows_table(head, out)


def sdss_by_class() -> str:
    head = ["loss", "seed", "class", "test spectra with z", "z: best node MI [95 %]", "best baseline"]
    out, skipped = [], {}
    for r in read("sdss_by_class.csv"):
        if r["note"]:
            skipped[r["class"]] = f"{r['class']}: {r['n_test']}"
            continue
        best = f"{r['z_node']}: {mi(r, 'z')}" + (" distinct" if r["z_distinct"] == "1" else "")
        out.append([r["loss"], r["seed"], r["class"], r["n_test"], best, f"{r['z_baseline']} {r['z_baseline_mi']}"])
    note = f"\nNot measured (fewer than 15 test spectra with z): {', '.join(skipped.values())}.\n" if skipped else ""
    return rows_table(head, out) + note


def by_run(rows: list[dict[str, str]]) -> dict[str, dict[str, dict[str, str]]]:
    """shift_study.py rows (one per run and label) as ``{run: {label: row}}``, in file order."""
    out: dict[str, dict[str, dict[str, str]]] = {}
    for r in rows:
        out.setdefault(r["run"], {})[r["label"]] = r
    return out


def node_mi(r: dict[str, str] | None) -> str:
    if not r:
        return "–"
    return f"{r['node']}: {r['mi']} [{r['mi_lo']}, {r['mi_hi']}]" + (" distinct" if r["distinct"] == "1" else "")


def warp_law(r: dict[str, str]) -> str:
    """The node's warp column: residual r.m.s. of the Doppler / uniform / affine fits, and the affine intercept."""
    return f"{r['doppler_rms']} / {r['uniform_rms']} / {r['affine_rms']} ({r['affine_intercept_share']})"


def miles_rv_warp() -> str:
    head = ["seed", "λ", "informative", "RV: node, MI [95 %]", "runner-up", "CCF baseline"]
    head += ["read-out r.m.s. / spread (km/s)", "km/s per unit: warp, read-out"]
    head += ["RV node's warp: Doppler / uniform / affine r.m.s. (intercept share)", "reconstruction leaves"]
    head += ["Teff: node, MI [95 %]"]
    out = []
    for labels in by_run(read("miles_rv_warp.csv")).values():
        rv, teff = labels["rv"], labels.get("teff")
        cells = [rv["seed"], rv["kl_weight"], rv["informative"], node_mi(rv), rv["runner_up_mi"], rv["ccf_mi"]]
        cells += [f"{rv['readout_rms']} / {rv['label_std']}", f"{rv['doppler_kms_per_unit']}, {rv['readout_slope']}"]
        out.append(cells + [warp_law(rv), f"{float(rv['recon_left']):.1%}", node_mi(teff)])
    return rows_table(head, out)


def rows_table(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join(lines + ["| " + " | ".join(map(str, r)) + " |" for r in rows]) + "\n"


def quickstart_warp_law() -> str:
    head = ["seed", "informative", "RV: node, MI [95 %]", "CCF baseline"]
    head += ["RV node's warp: Doppler / uniform / affine r.m.s. (intercept share)"]
    head += ["km/s per unit: warp, read-out", "read-out r.m.s. / spread (km/s)", "Teff: node, MI [95 %]"]
    head += ["Teff node's warp (Å per unit)"]
    out = []
    for labels in by_run(read("quickstart_warp_law.csv")).values():
        rv, teff = labels["rv"], labels["teff"]
        cells = [rv["seed"], rv["informative"], node_mi(rv), rv["ccf_mi"], warp_law(rv)]
        cells += [f"{rv['doppler_kms_per_unit']}, {rv['readout_slope']}", f"{rv['readout_rms']} / {rv['label_std']}"]
        out.append(cells + [node_mi(teff), teff["d_rms_aa"]])
    return rows_table(head, out)


def shift_search() -> str:
    head = ["run (seed 0)", "λ", "C", "data", "validation: RV MI", "informative", "RV: node, MI [95 %]", "CCF baseline"]
    head += ["offset: node, MI", "stretch: node, MI", "Teff: node, MI", "reconstruction leaves"]
    out = []
    for run, labels in by_run(read("shift_search.csv")).items():
        rv = labels["rv"]
        data = "competing shifts" if "wave_offset" in labels else "RV only"
        if rv.get("resolution") and float(rv["resolution"]) != 115000:
            data += f", R = {float(rv['resolution']):,.0f}"
        cells = [Path(run).parent.name, rv["kl_weight"], rv["capacity"], data, rv["val_mi"], rv["informative"]]
        cells.append(node_mi(rv))
        cells += [rv["ccf_mi"], node_mi(labels.get("wave_offset")), node_mi(labels.get("wave_stretch"))]
        out.append(cells + [node_mi(labels.get("teff")), f"{float(rv['recon_left']):.1%}"])
    return rows_table(head, out)


def shift_claims() -> str:
    head = ["seed (data seed)", "informative", "RV: node, MI [95 %]", "runner-up", "CCF baseline"]
    head += [
        "offset: node, MI",
        "stretch: node, MI",
        "RV node's warp: Doppler / uniform / affine r.m.s. (intercept share)",
    ]
    head += ["km/s per unit: warp, read-out", "read-out r.m.s. / spread (km/s)", "Teff: node, MI"]
    out = []
    for labels in by_run(read("shift_claims.csv")).values():
        rv = labels["rv"]
        cells = [f"{rv['seed']} ({rv['data_seed']})", rv["informative"], node_mi(rv), rv["runner_up_mi"], rv["ccf_mi"]]
        cells += [node_mi(labels.get("wave_offset")), node_mi(labels.get("wave_stretch")), warp_law(rv)]
        cells += [f"{rv['doppler_kms_per_unit']}, {rv['readout_slope']}", f"{rv['readout_rms']} / {rv['label_std']}"]
        out.append(cells + [node_mi(labels.get("teff"))])
    return rows_table(head, out)


def plain_cpu() -> str:
    head = ["step", "informative", "RV: best informative node, runner-up, any node", "Teff: best, runner-up, any node"]
    out = [
        [
            int(float(r["step"])),
            int(float(r["n_informative"])),
            f"{r['rv_best']}, {r['rv_runner_up']}, {r['rv_any_node']}",
            f"{r['teff_best']}, {r['teff_runner_up']}, {r['teff_any_node']}",
        ]
        for r in read("long_training_cpu.csv")
    ]
    return rows_table(head, out)


def store_loss_worth() -> str:
    head = ["data", "L1 loss explained by RV / Teff (%)", "L2: RV / Teff (%)", "L2 of the shift, star known (%)"]
    head += ["L2: offset / stretch (%)"]
    out = [
        [r["data"], f"{r['l1_rv']} / {r['l1_teff']}", f"{r['l2_rv']} / {r['l2_teff']}", r["shift_given_star_l2"]]
        + [f"{r['l2_wave_offset']} / {r['l2_wave_stretch']}" if r.get("l2_wave_offset") else "–"]
        for r in read("store_loss_worth.csv")
    ]
    return rows_table(head, out)


TABLES: dict[str, Callable[[], str]] = {
    "quickstart_replication": quickstart,
    "quickstart_replication_now": quickstart_now,
    "quickstart_replication_fast": quickstart_fast,
    "miles_replication": miles,
    "sdss_loss_comparison": sdss,
    "miles_rv_warp": miles_rv_warp,
    "quickstart_warp_law": quickstart_warp_law,
    "shift_search": shift_search,
    "shift_claims": shift_claims,
    "plain_cpu": plain_cpu,
    "store_loss_worth": store_loss_worth,
    "sdss_by_class": sdss_by_class,
}


def render(text: str) -> str:
    def one(m: re.Match) -> str:
        name = m.group(2)
        if name not in TABLES:
            raise SystemExit(f"{README}: no renderer for table {name!r} (have {', '.join(TABLES)})")
        return m.group(1) + TABLES[name]() + m.group(4)

    return BLOCK.sub(one, text)


def outside_blocks(text: str) -> list[str]:
    """Table lines (starting with ``|``) that no block holds."""
    return [line for line in BLOCK.sub("", text).splitlines() if line.lstrip().startswith("|")]


def figure(path: Path) -> None:
    """Per recipe and label: each seed's best node (MI with its 95 % interval) beside the best label-free
    baseline of the same spectra."""
    from matplotlib.figure import Figure

    panels = [
        ("quickstart", read("quickstart_replication.csv", "quickstart_data7_replication.csv"), ("rv", "teff")),
        ("MILES", read("miles_replication.csv"), ("teff", "logg")),
    ]
    fig = Figure(figsize=(11, 3.6))
    axes = fig.subplots(1, sum(len(labels) for _, _, labels in panels))
    k = 0
    for recipe, rows, labels in panels:
        for label in labels:
            ax = axes[k]
            k += 1
            x = np.arange(len(rows))
            for dx, key, lo, hi, name, colour in (
                (-0.12, "mi", "lo", "hi", "best node", "C0"),
                (0.12, "baseline_mi", "baseline_lo", "baseline_hi", "best baseline", "C1"),
            ):
                v = np.array([float(r.get(f"{label}_{key}") or np.nan) for r in rows])
                a = np.array([float(r.get(f"{label}_{lo}") or np.nan) for r in rows])
                b = np.array([float(r.get(f"{label}_{hi}") or np.nan) for r in rows])
                ax.errorbar(x + dx, v, yerr=[v - a, b - v], fmt="o", color=colour, label=name, capsize=3)
            null = np.array([float(r.get(f"{label}_null_p95") or np.nan) for r in rows])
            ax.plot(x, null, "k_", ms=14, label="null p95")
            ax.set_xticks(
                x,
                [f"{r['seed']}" + (f"/d{r['data_seed']}" if r.get("data_seed") not in ("", "0") else "") for r in rows],
            )
            ax.set(title=f"{recipe}: {label}", xlabel="seed", ylabel="MI (nat), test split" if k == 1 else None)
            ax.set_ylim(bottom=0)
    axes[0].legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true")
    a = p.parse_args()
    text = README.read_text()
    new = render(text)
    stray = outside_blocks(text)
    if a.check:
        if new != text or stray:
            print(
                f"{README}: tables differ from their files"
                + (f"; {len(stray)} table lines outside blocks" if stray else "")
            )
            return 1
        return 0
    README.write_text(new)
    figure(HERE / "replication.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
