"""The tables and the result sentences of the results pages, rendered from the CSV files beside them.

Every table in ``DOCUMENTS`` (docs/results/README.md, its record history.md, the project's README.md) sits between
``<!-- table: NAME -->`` and ``<!-- /table -->``, rendered here from its file (``TABLES``); every sentence that
states a result (a range, a count, a ratio) sits between ``<!-- prose: NAME -->`` and ``<!-- /prose -->``, rendered
by ``PROSE[NAME](given)``, where each number is written through ``given`` from a CSV cell or from a count over
CSV rows. ``tests/test_results_tables.py`` fails when a block differs from its rendering, a table stands outside
a block, a rendered sentence holds a number that ``given`` did not write (typed into the template by hand), or a
figure in nats stands outside the blocks.

    python docs/results/tables.py            # rewrite the blocks from the CSVs, and draw FIGURES
    python docs/results/tables.py --check    # exit 1 when a block is stale
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
README = HERE / "README.md"
HISTORY = HERE / "history.md"  # the lab notebook: its tables are rendered, its prose is a record, not claims
DOCUMENTS = (README, HISTORY, HERE.parents[1] / "README.md")
BLOCK = re.compile(r"(<!-- (table|prose): (\w+) -->\n)(.*?)(<!-- /\2 -->)", re.S)
# a number standing alone (not part of a name such as pc1, L2, H2O or a file's seed20)
NUMBER = re.compile(r"(?<![\w.])\d+(?:,\d{3})*(?:\.\d+)?(?![\w])")
ALLOWED = {"95"}  # "95 %": the intervals' level, a convention, not a result
RESULT_OUTSIDE = re.compile(r"\d[\d.]*\s*(?:–\s*\d[\d.]*\s*)?nats?\b")  # "0.96 nat", "1.1–2.4 nat"


class Given:
    """Writes each number of a prose block and remembers it: ``given(value, fmt)``, ``given.span(values)`` (the
    min–max), ``given.count(k, n)`` ("k of n"). What a block shows beyond these is typed by hand."""

    def __init__(self) -> None:
        self.numbers: set[str] = set()

    def __call__(self, value: object, fmt: str = "{}") -> str:
        text = fmt.format(value)
        self.numbers.update(NUMBER.findall(text))
        return text

    def span(self, values: list[float], fmt: str = "{:.2f}") -> str:
        lo, hi = min(values), max(values)
        return self(lo, fmt) if fmt.format(lo) == fmt.format(hi) else f"{self(lo, fmt)}–{self(hi, fmt)}"

    def count(self, k: int, n: int) -> str:
        return f"{self(k)} of {self(n)}"


def unsourced(text: str, given: Given) -> list[str]:
    """The numbers in a rendered prose block that ``given`` did not write."""
    return [n for n in NUMBER.findall(text) if n not in given.numbers and n not in ALLOWED]


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


def verdict_cells(row: dict[str, str], label: str, runner_node: bool = False) -> tuple[list[str], str]:
    """A label's node and MI, its runner-up (upper end), the null and the distinct verdict; and its best baseline."""
    runner = row.get(f"{label}_runner_mi") or "–"
    if runner_node:
        runner = f"{row.get(f'{label}_runner_node', '–')}: {runner}"
    if row.get(f"{label}_runner_hi"):
        runner += f" (≤ {row[f'{label}_runner_hi']})"
    base = f"{row.get(f'{label}_baseline') or '–'} {mi(row, label, 'baseline_mi', 'baseline_lo', 'baseline_hi')}"
    cells = [
        f"{row.get(f'{label}_node', '–')}: {mi(row, label)}",
        runner,
        row.get(f"{label}_null_p95") or "–",
        "yes" if row.get(f"{label}_distinct") == "1" else "no",
    ]
    return cells, base


def node_cells(row: dict[str, str], label: str) -> list[str]:
    cells, base = verdict_cells(row, label)
    return [*cells, row.get(f"{label}_pair_mi") or "–", base]


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


def separated_cells(row: dict[str, str], label: str) -> list[str]:
    """One label's cells in a 0.5 claims table: :func:`verdict_cells` (the runner-up among all nodes, the best-of-all-
    nodes null), what the node carries besides (given the label), its MI given the other labels, the baseline."""
    cells, base = verdict_cells(row, label, runner_node=True)
    given = (row.get(f"{label}_cmi_given") or "").replace("+", ", ") or "nothing"
    cmi = f"{mi(row, label, 'cmi', 'cmi_lo', 'cmi_hi')} (given {given})" if row.get(f"{label}_cmi") else "–"
    return [*cells, row.get(f"{label}_node_also") or "nothing (clean)", cmi, base]


def separation_table(rows: list[dict[str, str]], labels: tuple[str, ...]) -> str:
    """A 0.5 claims table: per run its split, informative nodes, MIG and DCI, and per label :func:`separated_cells`."""
    head = ["seed", "data seed", "split, n", "informative", "MIG [95 %]", "DCI: D / C / I"]
    for label in labels:
        head += [
            f"{label}: node, MI [95 %]",
            "runner-up, any node (upper)",
            "null p95 (best of all nodes)",
            "distinct",
            f"the node also carries, given {label}",
            f"{label} given the other labels it carries: MI [95 %]",
            "best baseline [95 %]",
        ]
    out = []
    for r in rows:
        dci = " / ".join(r.get(f"dci_{k}", "–") for k in ("disentanglement", "completeness", "informativeness"))
        cells = [r["seed"], r.get("data_seed") or "–", f"{r['split']}, {r['n']}", r["informative"]]
        cells += [f"{r.get('mig', '–')} [{r.get('mig_lo', '–')}, {r.get('mig_hi', '–')}]", dci]
        for label in labels:
            cells += separated_cells(r, label)
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


def quickstart_05() -> str:
    return separation_table(read("quickstart_replication_0.5.csv"), ("rv", "teff"))


def also_values(cell: str) -> dict[str, float]:
    """``"logg 0.10, teff 0.07"`` (a ``*_node_also`` cell) -> ``{"logg": 0.10, "teff": 0.07}``."""
    out = {}
    for part in filter(None, (p.strip() for p in (cell or "").split(","))):
        name, value = part.rsplit(" ", 1)
        out[name] = float(value)
    return out


def also_text(cell: str, given: Given) -> str:
    """A ``*_node_also`` cell as prose, its numbers through ``given``."""
    return ", ".join(f"{name} {given(value, '{:.2f}')}" for name, value in also_values(cell).items())


def f(row: dict[str, str], key: str) -> float:
    return float(row[key])


def seeds_of(rows: list[dict[str, str]], given: Given) -> str:
    return ", ".join(given(r["seed"]) for r in rows)


def quickstart_05_prose(g: Given) -> str:
    rows = read("quickstart_replication_0.5.csv")
    n = len(rows)
    rv_ok = [r for r in rows if r["rv_distinct"] == "1"]
    teff_ok = [r for r in rows if r["teff_distinct"] == "1"]
    both = [r for r in rv_ok if r in teff_ok and r["rv_node"] != r["teff_node"]]
    mixed = [r for r in rows if r not in both]
    halfwidth = max((f(r, "rv_hi") - f(r, "rv_lo")) / 2 for r in rows)
    clean_rv = [r for r in rows if r["rv_node_clean"] == "1"]
    clean_teff = [r for r in rows if r["teff_node_clean"] == "1"]
    feh_in_teff = [also_values(r["teff_node_also"]).get("feh") for r in rows]
    feh_in_teff = [v for v in feh_in_teff if v is not None]
    rv_also = [max(also_values(r["rv_node_also"]).values()) for r in rows if r["rv_node_also"]]
    out = [
        f"- **RV on a distinct node in {g.count(len(rv_ok), n)} fresh seeds, Teff in {g.count(len(teff_ok), n)}; "
        f"both, on different nodes, in {g.count(len(both), n)}.** The RV node's MI spans {g.span([f(r, 'rv_mi') for r in rows])} "
        f"nat over the seeds while each interval is at most ±{g(halfwidth, '{:.2f}')} nat: the training seed moves "
        "it far more than the test sample does."
    ]
    out.append(
        f"- **Clean nodes: RV's in {g.count(len(clean_rv), n)}, Teff's in {g.count(len(clean_teff), n)}.** Once RV is "
        f"known, the RV node still carries Teff or logg ({g.span(rv_also)} nat, its largest such label per seed). "
        f"Once Teff is known, the Teff node still carries [Fe/H] in {g.count(len(feh_in_teff), n)} seeds "
        f"({g.span(feh_in_teff)} nat), although [Fe/H] has no distinct node (its best informative node carries "
        f"≤ {g(max(f(r, 'feh_mi') for r in rows), '{:.2f}')} nat): the node reads line strength, which Teff and "
        '[Fe/H] set together. A "Teff node" here is a mixture, not a clean factor.'
    )
    for r in mixed:
        out.append(
            f"- **Seed {g(r['seed'])} is mixed**: its RV node (node {g(r['rv_node'])}, {g(r['rv_mi'])} nat) is not "
            f"distinct — node {g(r['rv_runner_node'])}, not counted informative, carries {g(r['rv_runner_mi'])} — "
            f"and its Teff node also carries {also_text(r['teff_node_also'], g)} nat once Teff is known; MIG {g(r['mig'])} [{g(r['mig_lo'])}, {g(r['mig_hi'])}] against "
            f"{g.span([f(x, 'mig') for x in rows if x not in mixed], '{:.3f}')} in the other seeds."
        )
    beats = sum(f(r, "rv_lo") > f(r, "rv_baseline_hi") for r in rows) + sum(
        f(r, "teff_lo") > f(r, "teff_baseline_hi") for r in rows
    )
    out.append(
        f"- **The label-free baselines carry more of each label than any node** (a node's interval above its "
        f"baseline's in {g.count(beats, 2 * n)} label-seeds): the cross-correlation velocity "
        f"{g(rows[0]['rv_baseline_mi'])} nat of RV against the RV node's ≤ {g(max(f(r, 'rv_mi') for r in rows), '{:.2f}')}, "
        f"the continuum colour {g(rows[0]['teff_baseline_mi'])} of Teff against ≤ "
        f"{g(max(f(r, 'teff_mi') for r in rows), '{:.2f}')}. What the network adds is an unsupervised code in which "
        "the velocity drives the built-in operator through one node and Teff lands on another, in most seeds — not "
        "more information than a CCF or a colour, and not clean factors."
    )
    return "\n".join(out) + "\n"


def miles_05() -> str:
    return separation_table(read("miles_replication_0.5.csv"), ("teff", "logg"))


def miles_05_prose(g: Given) -> str:
    rows = read("miles_replication_0.5.csv")
    n = len(rows)
    teff_ok = [r for r in rows if r["teff_distinct"] == "1"]
    clean = [r for r in rows if r["teff_node_clean"] == "1"]
    beats = [r for r in rows if f(r, "teff_lo") > f(r, "teff_baseline_hi")]
    logg_on_teff = [r for r in rows if r["logg_node"] == r["teff_node"]]
    out = [
        f"- **A distinct Teff node in {g.count(len(teff_ok), n)} fresh seeds** ({g.span([f(r, 'teff_mi') for r in rows])} "
        f"nat on the {g(rows[0]['n'])} test stars; intervals about ±"
        f"{g(max((f(r, 'teff_hi') - f(r, 'teff_lo')) / 2 for r in rows), '{:.2f}')}), clean in "
        f"{g.count(len(clean), n)}"
        + (
            f": once Teff is known it still carries {', '.join(also_text(r['teff_node_also'], g) or 'nothing' for r in rows)} nat "
            f"(seed by seed)."
            if len(clean) < n
            else "."
        ),
        f"- **No more Teff than a principal component**: the best baseline ({rows[0]['teff_baseline']}, "
        f"{g(rows[0]['teff_baseline_mi'])} nat [{g(rows[0]['teff_baseline_lo'])}, {g(rows[0]['teff_baseline_hi'])}]) "
        f"carries as much; the Teff node's interval lies above it in {g.count(len(beats), n)}.",
        f"- **logg and [Fe/H] have no node of their own**: logg is distinct in "
        f"{g.count(sum(r['logg_distinct'] == '1' for r in rows), n)} (its best node is the Teff node in "
        f"{g.count(len(logg_on_teff), n)}), [Fe/H] in {g.count(sum(r['feh_distinct'] == '1' for r in rows), n)} "
        f"(≤ {g(max(f(r, 'feh_mi') for r in rows), '{:.2f}')} nat on any informative node). MIG "
        f"{g.span([f(r, 'mig') for r in rows], '{:.3f}')}, DCI disentanglement "
        f"{g.span([f(r, 'dci_disentanglement') for r in rows], '{:.3f}')}.",
    ]
    return "\n".join(out) + "\n"


def shift_setting(run: str) -> str:
    """``runs/shift_0.5/no_drift/seed20`` -> ``no drift``."""
    return Path(run).parent.name.replace("_", " ")


def interval(row: dict[str, str], key: str, null: bool = False) -> str:
    """``"value [lo, hi]"`` of a shift_study column and its ``_lo``/``_hi`` (with ``null``: and ``" (null)"``)."""
    text = f"{row[key]} [{row[f'{key}_lo']}, {row[f'{key}_hi']}]"
    return text + (f" ({row[f'{key}_null']})" if null else "")


def control_rv_rows(name: str) -> list[tuple[str, dict[str, str]]]:
    """The RV rows of a shift_study CSV's controls (every run not under ``recipe/``), each with its setting."""
    settings = [(shift_setting(run), labels["rv"]) for run, labels in by_run(read(name)).items()]
    return [(setting, rv) for setting, rv in settings if setting != "recipe"]


def recipe_rv_rows(name: str) -> list[dict[str, str]]:
    """The RV rows of a shift_study CSV's recipe runs (not its controls)."""
    return [labels["rv"] for run, labels in by_run(read(name)).items() if shift_setting(run) == "recipe"]


def shift_05() -> str:
    head = ["data (seed)", "informative", "RV: node, MI [95 %]", "runner-up, any node", "distinct"]
    head += ["the RV node also carries, given RV", "its μ per km/s of zero-point ÷ per km/s of RV [95 %]"]
    head += ["zero-point it keeps given RV: MI [95 %] (null)", "CCF baseline: plain; telluric-referenced [95 %]"]
    head += ["offset: node, MI", "Teff: node, MI"]
    out = []
    for run, labels in by_run(read("shift_claims_0.5.csv")).items():
        rv = labels["rv"]
        ratio = interval(rv, "zp_over_rv") if rv.get("zp_over_rv") else "–"
        kept = interval(rv, "zp_given_rv", null=True)
        tell = interval(rv, "ccf_telluric_mi")
        cells = [f"{shift_setting(run)} ({rv['seed']})", rv["informative"], node_mi(rv)]
        cells += [f"{rv['runner_up']}: {rv['runner_up_mi']}", "yes" if rv["distinct"] == "1" else "no"]
        cells += [rv.get("node_also") or "nothing (clean)", ratio, kept if rv.get("zp_given_rv") else "–"]
        cells.append(f"{rv['ccf_mi']}; " + (tell if rv.get("ccf_telluric_mi") else "– (no tellurics)"))
        out.append(cells + [node_mi(labels.get("wave_offset")), node_mi(labels.get("teff"))])
    return rows_table(head, out)


def observed_first_look() -> str:
    """Issue #43's first look: ObservedStar on the competing-shift set, the recipe-choice data seed (0)."""
    head = ["final λ (model seed)", "informative", "RV node: val MI; test MI [95 %]", "distinct"]
    head += ["velocity operator driven by (share)", "zero-point operator driven by (share)"]
    head += ["velocity operator: MI with RV [95 %]", "its zero-point ÷ RV response [95 %]"]
    head += ["zero-point it keeps given RV [95 %] (null)", "telluric-referenced CCF [95 %]"]
    head += ["learned τ: corr. with the tellurics; share in their bands (bands' share of grid)"]
    out = []
    for run, labels in by_run(read("observed_first_look_0.5.csv")).items():
        rv = labels["rv"]
        cells = [
            f"{float(rv['kl_weight']):g} ({rv['seed']})",
            rv["informative"],
            f"{rv['val_mi']}; {rv['node']}: {interval(rv, 'mi')}",
        ]
        cells += ["yes" if rv["distinct"] == "1" else "no"]
        cells += [f"{rv['op_v_node']} ({rv['op_v_share']})", f"{rv['op_zp_node']} ({rv['op_zp_share']})"]
        cells += [interval(rv, "op_v_mi"), interval(rv, "op_v_zp_over_rv")]
        cells += [interval(rv, "op_v_zp_given_rv", null=True), interval(rv, "ccf_telluric_mi")]
        cells += [f"{rv['op_tau_corr']}; {rv['op_tau_in_bands']} ({rv['op_tau_band_share']})"]
        out.append(cells)
    return rows_table(head, out)


def observed_choice(name: str = "observed_choice_0.5.csv") -> str:
    """Issue #43's recipe choice: ObservedStar's operators on the validation spectra of seeds 0–3 (or of the runs
    in ``name``)."""
    head = ["operators driven by", "KL schedule: λ (capacity)", "epochs", "seed"]
    head += ["velocity operator: MI with RV [95 %]", "its zero-point ÷ RV response [95 %]"]
    head += ["zero-point it keeps given RV [95 %] (null)", "zero-point operator: MI with the zero-point [95 %] (null)"]
    head += ["learned τ: corr. with the tellurics", "reconstruction leaves"]
    out = []
    for r in read(name):
        schedule = f"{float(r['kl_weight']):g}" + (f" ({float(r['capacity']):g} nat)" if r["capacity"] else "")
        cells = [r["drivers"], f"{r['schedule']}: {schedule}", r["epochs"], r["seed"]]
        cells += [interval(r, "op_v_mi"), interval(r, "op_v_zp_over_rv")]
        cells += [interval(r, "op_v_zp_given_rv", null=True), interval(r, "op_zp_mi", null=True)]
        out.append(cells + [r["op_tau_corr"], r["recon_left"]])
    return rows_table(head, out)


def observed_choice_prose(g: Given) -> str:
    """How far the choice made on seed 0 holds on seeds 1–3, the recipe fixed."""
    rows = [r for r in read("observed_choice_0.5.csv") if r["drivers"] == "nodes" and r["epochs"] == "64"]
    chosen = [r for r in rows if r["seed"] == "0"]
    held = [r for r in rows if r["seed"] != "0"]
    parts = [
        f"seed {g(r['seed'])}: zero-point ÷ RV response {g(r['op_v_zp_over_rv'])}, "
        + (
            "keeps no zero-point given RV"
            if f(r, "op_v_zp_given_rv_lo") <= f(r, "op_v_zp_given_rv_null")
            else "keeps some given RV"
        )
        for r in held
    ]
    return (
        f"- **The chosen recipe** on seed {g(chosen[0]['seed'])}: response {g(chosen[0]['op_v_zp_over_rv'])} "
        f"[{g(chosen[0]['op_v_zp_over_rv_lo'])}, {g(chosen[0]['op_v_zp_over_rv_hi'])}]. With it fixed, "
        + "; ".join(parts)
        + ".\n"
    )


def observed_claims() -> str:
    """Issue #43's claims: the chosen recipe (one node per operator) on fresh seeds, and its two controls."""
    head = ["data (seed)", "informative", "node 0 (velocity): MI with RV [95 %]", "best RV node: node, MI"]
    head += ["node 0: zero-point ÷ RV response [95 %]", "zero-point node 0 keeps given RV [95 %] (null)"]
    head += ["node 0 also carries, given RV", "label-free: telluric-referenced CCF [95 %]; plain CCF; best PC"]
    head += [
        "node 1 (zero-point): MI with the zero-point [95 %] (null)",
        "node 2 (stretch): MI with the stretch [95 %]",
    ]
    head += ["Teff: node, MI", "learned τ: corr. with the tellurics"]
    out = []
    for run, labels in by_run(read("observed_claims_0.5.csv")).items():
        rv = labels["rv"]
        cells = [f"{shift_setting(run)} ({rv['seed']})", rv["informative"], interval(rv, "op_v_mi")]
        cells.append(f"{rv['node']}: {rv['mi']}" + (" distinct" if rv["distinct"] == "1" else ""))
        has_zp = bool(rv.get("op_v_zp_over_rv"))
        cells += [interval(rv, "op_v_zp_over_rv") if has_zp else "–"]
        cells += [interval(rv, "op_v_zp_given_rv", null=True) if has_zp else "–"]
        cells += [rv.get("op_v_node_also") or "nothing (clean)"]
        tell = interval(rv, "ccf_telluric_mi") if rv.get("ccf_telluric_mi") else "– (no tellurics)"
        cells += [f"{tell}; {rv['ccf_mi']}; {rv['pca_mi']}", interval(rv, "op_zp_mi", null=True) if has_zp else "–"]
        cells += [interval(rv, "op_st_mi") if rv.get("op_st_mi") else "–", node_mi(labels.get("teff"))]
        out.append(cells + [rv.get("op_tau_corr") or "–"])
    return rows_table(head, out)


def observed_claims_prose(g: Given) -> str:
    recipe = recipe_rv_rows("observed_claims_0.5.csv")
    n = len(recipe)
    clean_zp = [r for r in recipe if f(r, "op_v_zp_given_rv_lo") <= f(r, "op_v_zp_given_rv_null")]
    holds_zero = [r for r in recipe if f(r, "op_v_zp_over_rv_lo") <= 0 <= f(r, "op_v_zp_over_rv_hi")]
    beats = [r for r in recipe if f(r, "op_v_mi_lo") > f(r, "ccf_telluric_mi_hi")]
    above = [r for r in recipe if f(r, "op_v_mi") > f(r, "ccf_telluric_mi")]
    node_mi_values = [f(r, "op_v_mi") for r in recipe]
    zp_kept = [r for r in recipe if f(r, "op_zp_mi_lo") > f(r, "op_zp_mi_null")]
    apparent = [r for r in recipe if f(r, "op_v_zp_over_rv_lo") > 0.5]
    out = [
        f"- **The stellar velocity on its own node, clean of the zero-point, in {g.count(len(clean_zp), n)} fresh "
        f"seeds**: the velocity node keeps {g.span([f(r, 'op_v_zp_given_rv') for r in recipe], '{:.3f}')} nat of the "
        f"zero-point once RV is known (its interval reaches the null in {g.count(len(clean_zp), n)}); its response "
        f"to a km/s of zero-point is {g.span([f(r, 'op_v_zp_over_rv') for r in recipe])} times its response to a km/s "
        f"of RV, the interval holding 0 in {g.count(len(holds_zero), n)}.",
        f"- **More RV than the telluric-referenced CCF**: the velocity node carries {g.span(node_mi_values)} nat of RV (mean "
        f"{g(np.mean(node_mi_values), '{:.2f}')}, seed-to-seed standard deviation "
        f"{g(np.std(node_mi_values, ddof=1), '{:.2f}')}), the telluric-referenced cross-correlation "
        f"{g.span([f(r, 'ccf_telluric_mi') for r in recipe])}: the velocity node is higher in {g.count(len(above), n)} seeds, "
        f"its interval above the CCF's in {g.count(len(beats), n)}.",
        f"- **Clean of every label** (the report's separation verdict) in "
        f"{g.count(sum(r.get('op_v_node_clean') == '1' for r in recipe), n)}: given RV, the velocity node still carries "
        + "; ".join(f"{also_text(r['op_v_node_also'], g) or 'nothing'} (seed {g(r['seed'])})" for r in recipe)
        + " nat.",
        f"- **Where it fails, it reads the apparent shift**: the velocity node's response to the zero-point lies above half its "
        f"response to RV in {g.count(len(apparent), n)} seeds"
        + (f" ({', '.join('seed ' + g(r['seed']) for r in apparent)})" if apparent else "")
        + f"; its learned absorption matched the tellurics all the same (correlation "
        f"{g.span([f(r, 'op_tau_corr') for r in recipe])} over the {g(n)} seeds).",
        f"- **The instrument on its own nodes**: the zero-point's node carries {g.span([f(r, 'op_zp_mi') for r in recipe])} nat of the "
        f"zero-point (above its null in {g.count(len(zp_kept), n)}); the stretch's "
        f"{g.span([f(r, 'op_st_mi') for r in recipe])} nat of the stretch.",
    ]
    for setting, rv in control_rv_rows("observed_claims_0.5.csv"):
        line = (
            f"- **Control, {setting} (seed {g(rv['seed'])})**: the velocity node carries {g(rv['op_v_mi'])} nat of RV"
        )
        if rv.get("op_v_zp_over_rv"):
            line += (
                f", its zero-point ÷ RV response {g(rv['op_v_zp_over_rv'])} [{g(rv['op_v_zp_over_rv_lo'])}, "
                f"{g(rv['op_v_zp_over_rv_hi'])}], the zero-point's node {g(rv['op_zp_mi'])} nat of the zero-point"
            )
        out.append(line + f"; plain CCF {g(rv['ccf_mi'])} nat.")
    return "\n".join(out) + "\n"


def sdss_05() -> str:
    head = ["seed", "test spectra", "χ²/pixel, median [16th, 84th %]", "informative", "z: node, MI [95 %]", "distinct"]
    head += ["z node clean (carries no colour given z)", "z given the colour it carries: MI [95 %]"]
    head += ["label-free: ccf_z; best baseline", "colour: node, MI [95 %]", "MIG [95 %]", "DCI: D / C / I"]
    out = []
    for r in read("sdss_0.5.csv"):
        cells = [r["seed"], r["n_test"], f"{r['chi2_median']} [{r['chi2_p16']}, {r['chi2_p84']}]", r["informative"]]
        cells += [f"{r['z_node']}: {mi(r, 'z')}", "yes" if r["z_distinct"] == "1" else "no"]
        cells += ["yes" if r["z_clean"] == "1" else "no", mi(r, "z", "cmi", "cmi_lo", "cmi_hi")]
        cells.append(f"{r.get('z_ccf_z_mi') or '–'}; {r['z_baseline']} {r['z_baseline_mi']}")
        cells += [f"{r['colour_node']}: {mi(r, 'colour')}", f"{r['mig']} [{r['mig_lo']}, {r['mig_hi']}]"]
        cells.append(" / ".join(r[f"dci_{k}"] for k in ("disentanglement", "completeness", "informativeness")))
        out.append(cells)
    return rows_table(head, out)


def lamost_epochs() -> str:
    """Issue #43's sanity check: each LAMOST MRS spectrum of the survey store, its velocity node beside the
    barycentric correction of its exposure."""
    head = ["spectrum", "star", "arm", "MJD (mid-exposure)", "grid covered", "raw median flux"]
    head += ["barycentric correction, astropy (km/s)", "pipeline HELIO_RV (km/s)", "velocity node μ (as km/s)"]
    out = []
    for r in read("lamost_epochs_0.5.csv"):
        cells = [r["id"], r["star"], r["arm"], r["mjd"], r["coverage"], r["raw_median"], r["barycentric_kms"]]
        out.append(cells + [r["helio_rv_header_kms"], f"{r['velocity_mu']} ({r['velocity_kms']})"])
    return rows_table(head, out)


def lamost_epochs_prose(g: Given) -> str:
    summary = json.loads((HERE / "lamost_epochs_0.5.json").read_text())
    rows = read("lamost_epochs_0.5.csv")
    lines = []
    for key, star in summary["stars"].items():
        nodes = star["nodes"]
        lines.append(
            f"- **Star {g(key[:-1])}, arm {key[-1]}, {g(star['epochs'])} epochs**: over the "
            f"{g(len(nodes))} informative nodes, the spread across its epochs is "
            f"{g.span([n['ratio'] for n in nodes], '{:.3f}')} of the spread across the store's other "
            f"{g(summary['n_between'])} objects; its farthest epoch lies "
            f"{g.span([n['worst_epoch'] for n in nodes])} of those spreads from its median, the other MRS star "
            f"{g.span([n['other_star'] for n in nodes])}."
        )
    star0 = [r for r in rows if r["star"] == "0" and r["arm"] == "R"]
    bary = [f(r, "barycentric_kms") for r in star0]
    gap = [abs(f(r, "barycentric_kms") + f(r, "helio_rv_header_kms")) for r in rows]
    corr = float(np.corrcoef(bary, [f(r, "velocity_mu") for r in star0])[0, 1])
    lines.append(
        f"- **The velocity node** (node {g(summary['velocity_node'])}, the run's best for z) reads "
        f"{g(summary['kms_per_unit'])} km/s per unit over the store's stars, with a residual of "
        f"{g(summary['readout_rms_kms'])} km/s. Over star 0's epochs the barycentric correction spans "
        f"{g.span(bary)} km/s; the node's μ (arm R) correlates with it at {g(corr, '{:.2f}')} — on "
        f"{g(len(star0))} epochs. The pipeline's HELIO_RV has the opposite sign and differs from astropy's "
        f"correction by {g.span(gap)} km/s in size."
    )
    return "\n".join(lines) + "\n"


def shift_reading(rows: list[dict[str, str]]) -> str:
    """What the RV nodes of ``rows`` read, from their zero-point ÷ RV response intervals."""
    if all(f(r, "zp_over_rv_lo") > 0.5 for r in rows):
        return "reads the apparent shift, star and instrument together"
    return "follows the zero-point in part" if any(f(r, "zp_over_rv_lo") > 0 for r in rows) else "reads RV alone"


def shift_05_prose(g: Given) -> str:
    recipe = recipe_rv_rows("shift_claims_0.5.csv")
    n = len(recipe)
    holds_one = [r for r in recipe if f(r, "zp_over_rv_lo") <= 1 <= f(r, "zp_over_rv_hi")]
    above_zero = [r for r in recipe if f(r, "zp_over_rv_lo") > 0]
    kept = [r for r in recipe if f(r, "zp_given_rv_lo") > f(r, "zp_given_rv_null")]
    tell_beats = [r for r in recipe if f(r, "ccf_telluric_mi_lo") > f(r, "mi_hi")]
    reading = shift_reading(recipe)
    referenced = "Referenced to the tellurics, a cross-correlation carries more RV than the node"
    if len(tell_beats) < n:
        referenced = "The label-free cross-correlations"
    out = [
        f"- **RV on a distinct node in {g.count(sum(r['distinct'] == '1' for r in recipe), n)} seeds** (its best node "
        f"{g.span([f(r, 'mi') for r in recipe])} nat, the runner-up of all nodes "
        f"{g.span([f(r, 'runner_up_mi') for r in recipe])}); clean in "
        f"{g.count(sum(r['node_clean'] == '1' for r in recipe), n)} — once RV is known it still carries "
        + "; ".join(f"{also_text(r['node_also'], g) or 'nothing'} (seed {g(r['seed'])})" for r in recipe)
        + " nat.",
        f"- **The RV node {reading}**: its μ moves per km/s of zero-point "
        f"{g.span([f(r, 'zp_over_rv') for r in recipe])} times what it moves per km/s of RV; the interval holds 1 in "
        f"{g.count(len(holds_one), n)} seeds, lies above 1 in {g.count(sum(f(r, 'zp_over_rv_lo') > 1 for r in recipe), n)} "
        f"and above 0 in {g.count(len(above_zero), n)}. Once RV is known the "
        f"node keeps {g.span([f(r, 'zp_given_rv') for r in recipe], '{:.3f}')} nat of the zero-point (null ≤ "
        f"{g(max(f(r, 'zp_given_rv_null') for r in recipe), '{:.3f}')}; above it in {g.count(len(kept), n)}).",
        f"- **{referenced}**: the plain cross-correlation carries "
        f"{g.span([f(r, 'ccf_mi') for r in recipe])} nat of RV, the telluric-referenced one "
        f"{g.span([f(r, 'ccf_telluric_mi') for r in recipe])} — above the RV node's interval in "
        f"{g.count(len(tell_beats), n)} seeds.",
    ]
    for setting, rv in control_rv_rows("shift_claims_0.5.csv"):
        line = (
            f"- **Control, {setting} (seed {g(rv['seed'])})**: RV on node {g(rv['node'])}, {g(rv['mi'])} nat "
            f"[{g(rv['mi_lo'])}, {g(rv['mi_hi'])}], {'distinct' if rv['distinct'] == '1' else 'not distinct'}, "
            + ("clean" if rv.get("node_clean") == "1" else f"also carrying {also_text(rv['node_also'], g)} nat")
        )
        if rv.get("zp_over_rv"):
            line += (
                f"; zero-point ÷ RV response {g(rv['zp_over_rv'])} [{g(rv['zp_over_rv_lo'])}, {g(rv['zp_over_rv_hi'])}]"
            )
        out.append(line + f"; plain CCF {g(rv['ccf_mi'])} nat.")
    return "\n".join(out) + "\n"


def sdss_05_prose(g: Given) -> str:
    rows = read("sdss_0.5.csv")
    n = len(rows)
    above_ccf = [r for r in rows if r.get("z_ccf_z_mi") and f(r, "z_lo") > f(r, "z_ccf_z_mi")]
    out = [
        f"- **z on a distinct node in {g.count(sum(r['z_distinct'] == '1' for r in rows), n)} seeds** "
        f"({g.span([f(r, 'z_mi') for r in rows])} nat on {g(rows[0]['n_test'])} test spectra), clean of the colour in "
        f"{g.count(sum(r['z_clean'] == '1' for r in rows), n)}; given the colour it keeps "
        f"{g.span([f(r, 'z_cmi') for r in rows])} nat of z.",
        f"- **Against the label-free cross-correlation** (`ccf_z`, {g.span([f(r, 'z_ccf_z_mi') for r in rows])} nat) "
        f"the node's interval lies above it in {g.count(len(above_ccf), n)}; the best baseline of all is "
        + ", ".join(sorted({r["z_baseline"] for r in rows}))
        + f" ({g.span([f(r, 'z_baseline_mi') for r in rows])}).",
        f"- **Fit**: the median test spectrum reconstructs to χ²/pixel {g.span([f(r, 'chi2_median') for r in rows])}; "
        f"MIG {g.span([f(r, 'mig') for r in rows], '{:.3f}')}, DCI disentanglement "
        f"{g.span([f(r, 'dci_disentanglement') for r in rows], '{:.3f}')}.",
    ]
    return "\n".join(out) + "\n"


def readme_summary(g: Given) -> str:
    """The README's lines: each finding of docs/results/README.md in a sentence, its counts from the CSVs."""
    quick, miles = read("quickstart_replication_0.5.csv"), read("miles_replication_0.5.csv")
    shift = recipe_rv_rows("shift_claims_0.5.csv")
    sdss = read("sdss_0.5.csv")
    observed = recipe_rv_rows("observed_claims_0.5.csv")
    observed_clean = [r for r in observed if f(r, "op_v_zp_given_rv_lo") <= f(r, "op_v_zp_given_rv_null")]
    n_q, n_m, n_s, n_z, n_o = len(quick), len(miles), len(shift), len(sdss), len(observed)
    clean = sum(r["rv_node_clean"] == "1" for r in quick) + sum(r["teff_node_clean"] == "1" for r in quick)
    beaten = sum(f(r, "rv_lo") > f(r, "rv_baseline_hi") or f(r, "teff_lo") > f(r, "teff_baseline_hi") for r in quick)
    out = [
        f"- **Synthetic quickstart** (fresh seeds): RV drives the built-in shift operator through a distinct node in "
        f"{g.count(sum(r['rv_distinct'] == '1' for r in quick), n_q)}, Teff has a distinct node in "
        f"{g.count(sum(r['teff_distinct'] == '1' for r in quick), n_q)}; of the best RV and Teff nodes, "
        f"{g.count(clean, 2 * n_q)} are clean (carry nothing else once their label is known)"
        + ("; a cross-correlation velocity and a continuum colour carry more of each label." if not beaten else "."),
        f"- **MILES stars**: a distinct Teff node in {g.count(sum(r['teff_distinct'] == '1' for r in miles), n_m)} "
        f"seeds, its interval above the best label-free baseline's in "
        f"{g.count(sum(f(r, 'teff_lo') > f(r, 'teff_baseline_hi') for r in miles), n_m)}; a distinct logg node in "
        f"{g.count(sum(r['logg_distinct'] == '1' for r in miles), n_m)}, [Fe/H] in "
        f"{g.count(sum(r['feh_distinct'] == '1' for r in miles), n_m)}.",
        f"- **A star's RV beside an instrument's zero-point**: the RV node's response to a km/s of zero-point is "
        f"{g.span([f(r, 'zp_over_rv') for r in shift])} times its response to a km/s of RV (the interval holds 1 in "
        f"{g.count(sum(f(r, 'zp_over_rv_lo') <= 1 <= f(r, 'zp_over_rv_hi') for r in shift), n_s)} seeds): it "
        f"{shift_reading(shift)}. A telluric-referenced cross-correlation carries more RV than the node in "
        f"{g.count(sum(f(r, 'ccf_telluric_mi_lo') > f(r, 'mi_hi') for r in shift), n_s)}.",
        f"- **A decoder that composes star, atmosphere and instrument, one node per operator**: its velocity node's "
        f"response to a km/s of zero-point is {g.span([f(r, 'op_v_zp_over_rv') for r in observed])} times its "
        f"response to RV; it keeps no zero-point once RV is known in {g.count(len(observed_clean), n_o)} fresh seeds, "
        f"carries more RV than the telluric-referenced cross-correlation in "
        f"{g.count(sum(f(r, 'op_v_mi') > f(r, 'ccf_telluric_mi') for r in observed), n_o)}, and is clean of every "
        f"label in {g.count(sum(r.get('op_v_node_clean') == '1' for r in observed), n_o)}.",
        f"- **SDSS/BOSS survey spectra**: z on a distinct node in {g.count(sum(r['z_distinct'] == '1' for r in sdss), n_z)} "
        f"seeds, clean of the continuum colour in {g.count(sum(r['z_clean'] == '1' for r in sdss), n_z)}.",
        "- Every interval is the test sample's noise for one trained model; the seeds' spread, beside each claim in "
        "docs/results, is wider.",
    ]
    return "\n".join(out) + "\n"


TABLES: dict[str, Callable[[], str]] = {
    "quickstart_05": quickstart_05,
    "sdss_05": sdss_05,
    "shift_05": shift_05,
    "miles_05": miles_05,
    "observed_first_look": observed_first_look,
    "lamost_epochs": lamost_epochs,
    "observed_choice": observed_choice,
    "observed_after": lambda: observed_choice("observed_after_0.5.csv"),
    "observed_claims": observed_claims,
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

PROSE: dict[str, Callable[[Given], str]] = {
    "quickstart_05": quickstart_05_prose,
    "miles_05": miles_05_prose,
    "shift_05": shift_05_prose,
    "sdss_05": sdss_05_prose,
    "readme_summary": readme_summary,
    "lamost_epochs": lamost_epochs_prose,
    "observed_choice": observed_choice_prose,
    "observed_claims": observed_claims_prose,
}


def render_block(kind: str, name: str) -> tuple[str, Given | None]:
    """One block's text, and for prose the numbers it was given."""
    if kind == "table":
        if name not in TABLES:
            raise SystemExit(f"no renderer for table {name!r} (have {', '.join(TABLES)})")
        return TABLES[name](), None
    if name not in PROSE:
        raise SystemExit(f"no renderer for prose {name!r} (have {', '.join(PROSE)})")
    given = Given()
    return PROSE[name](given), given


def render(text: str) -> str:
    def one(m: re.Match) -> str:
        return m.group(1) + render_block(m.group(2), m.group(3))[0] + m.group(5)

    return BLOCK.sub(one, text)


def outside_blocks(doc: Path) -> list[str]:
    """What a page of claims holds outside its blocks that should come from a file: figures in nats, and on the
    results page any table line (starting with ``|``). The record, history.md, keeps tables of runs whose outputs
    were not kept; the project's README has tables that are not results (its layout)."""
    rest = BLOCK.sub("", doc.read_text()).splitlines()
    if doc == HISTORY:
        return []
    return [line for line in rest if RESULT_OUTSIDE.search(line) or (doc == README and line.lstrip().startswith("|"))]


FIGURES = {
    # the record's (history.md): 0.2–0.4 seeds
    "replication.png": [
        ("quickstart", ("quickstart_replication.csv", "quickstart_data7_replication.csv"), ("rv", "teff")),
        ("MILES", ("miles_replication.csv",), ("teff", "logg")),
    ],
    # the claims' (README.md): 0.5's fresh seeds
    "replication_0.5.png": [
        ("quickstart", ("quickstart_replication_0.5.csv",), ("rv", "teff")),
        ("MILES", ("miles_replication_0.5.csv",), ("teff", "logg")),
    ],
}


def figure(path: Path, sources: list[tuple[str, tuple[str, ...], tuple[str, ...]]]) -> None:
    """Per recipe and label: each seed's best node (MI with its 95 % interval) beside the best label-free
    baseline of the same spectra."""
    from matplotlib.figure import Figure

    panels = [(recipe, read(*files), labels) for recipe, files, labels in sources]
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
    stale = 0
    for doc in DOCUMENTS:
        text = doc.read_text()
        new, stray = render(text), outside_blocks(doc)
        if a.check and (new != text or stray):
            stale += 1
            print(
                f"{doc}: "
                + ("blocks differ from their files; " if new != text else "")
                + f"{len(stray)} lines outside blocks"
            )
        elif not a.check and new != text:
            doc.write_text(new)
    if not a.check:
        for name, sources in FIGURES.items():
            figure(HERE / name, sources)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
