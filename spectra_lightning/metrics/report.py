"""The full latent-space analysis as one pure function: codes + labels -> a JSON-able dict.

This dict is ``report.json`` (written by ``analyze`` and at the end of ``fit``); its
schema is documented in ``docs/report-format.md`` and kept stable.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from spectra_lightning.metrics.intervals import half_sample_se, interval, label_intervals
from spectra_lightning.metrics.latent import KL_THRESHOLD, MAD_THRESHOLD, informative_nodes
from spectra_lightning.metrics.mi import (
    PAPER_BINS,
    best_and_gap,
    best_pair,
    bootstrap_se,
    clean_label,
    mi_histogram,
    mi_ksg,
    mi_ksg_table,
    mi_pair_matrix,
)
from spectra_lightning.metrics.separation import separation

REPORT_VERSION = 3  # 2: mi_pairs floored, split, intervals, baselines; 3: fair runner-up and null, separation


@dataclass(frozen=True)
class ReportSettings:
    """How :func:`latent_report` reads codes.

    Args:
        threshold, kl_threshold, criterion: informative nodes (see :func:`informative_nodes`).
        estimators: any of ``ksg``, ``histogram``.
        bins: histogram bin counts (the paper's by default).
        k: KSG neighbours.
        sigma: label sigma-clipping (None: off).
        pair_labels: also find, per label, the pair of informative nodes with the highest joint KSG MI
            (``mi_pairs``) — a label can live in a pair (e.g. a phase-like code).
        bootstrap: resamples for KSG standard errors of every node (0: none; with replacement, the older and cruder
            measure: see :mod:`.intervals`).
        seed: the seed of every random draw (KSG's noise, resamples, permutations).
        intervals: half-samples and permutations for the best and runner-up node's intervals, the null level and
            the distinct verdict per label (:func:`~.intervals.label_intervals`; 0: none).
    """

    threshold: float = MAD_THRESHOLD
    kl_threshold: float = KL_THRESHOLD
    criterion: str = "auto"
    estimators: tuple[str, ...] = ("ksg", "histogram")
    bins: tuple[int, ...] = PAPER_BINS
    k: int = 3
    sigma: float | None = 5.0
    pair_labels: bool = True
    bootstrap: int = 0
    seed: int = 0
    intervals: int = 30


def latent_report(
    mu: np.ndarray,
    labels: dict[str, np.ndarray],
    logvar: np.ndarray | None = None,
    baselines: dict[str, np.ndarray] | None = None,
    baseline_info: dict[str, str] | None = None,
    split: str | None = None,
    **settings: Any,
) -> dict[str, Any]:
    """Analyse codes ``mu (N, D)`` against labels ``{name: (N,)}`` (``docs/report-format.md``).

    Args:
        logvar: ``(N, D)`` posterior log-variances of a VAE (enables per-node KL).
        baselines: label-free features of the same spectra ``{name: (N,)}`` (:mod:`.baselines`); per label the best
            one's MI (with its interval) stands beside the best node's. ``baseline_info`` says what each is.
        split: the split the codes come from (``val``, ``test``), recorded in the report.
        settings: :class:`ReportSettings`' fields.
    """
    how = ReportSettings(**settings)
    mu = np.asarray(mu, np.float64)
    info = informative_nodes(mu, logvar, how.threshold, how.kl_threshold, how.criterion)
    nodes = info["informative"]
    report: dict[str, Any] = {
        "version": REPORT_VERSION,
        "n_spectra": mu.shape[0],
        "latent_dim": mu.shape[1],
        "mad": {
            "threshold": how.threshold,
            "criterion": info["criterion"],
            "kl_threshold": how.kl_threshold,
            "values": info["values"],
            "kl": info["kl"],
            "informative": nodes,
        },
        "split": split,
        "mi": {},
        "gap": {},
    }
    if baselines is not None:
        report["baselines"] = {"names": list(baselines), "what": baseline_info or {}}
    cleaned = clean_labels(labels, how.sigma, min_n=2 * how.k + 2)
    columns = {
        name: (mu[keep], np.asarray(labels[name], np.float64)[keep], keep)
        for name, (keep, counts) in cleaned.items()
        if "skipped" not in counts
    }
    if "ksg" in how.estimators:
        report["mi"]["ksg"] = ksg_table(columns, cleaned, nodes, how, baselines)
        report["gap"] = {name: e["gap"] for name, e in report["mi"]["ksg"].items() if "gap" in e}
    if "histogram" in how.estimators:
        report["mi"]["histogram"] = {
            name: {**mi_histogram(m, y, how.bins), "n": cleaned[name][1]["n"]} for name, (m, y, _) in columns.items()
        }
    matrix = mi_pair_matrix(mu[:, nodes], k=how.k, seed=how.seed) if len(nodes) > 1 else np.zeros((len(nodes),) * 2)
    report["pair_mi"] = {"nodes": nodes, "matrix": matrix}
    if how.pair_labels:
        pairs = {name: best_pair(m, y, nodes, k=how.k, seed=how.seed) for name, (m, y, _) in columns.items()}
        report["mi_pairs"] = {"ksg": pairs}
    if how.intervals and len(columns) >= 2:  # a final report: whether each node carries one label and no other
        kept = {name: np.asarray(labels[name], np.float64) for name in columns}
        report["separation"] = separation(mu, kept, nodes, k=how.k, reps=how.intervals, seed=how.seed)
    report = to_json(report)
    report["carriers"] = label_carriers(report)
    return report


def ksg_table(
    columns: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
    cleaned: dict[str, tuple[np.ndarray, dict[str, Any]]],
    nodes: list[int],
    how: ReportSettings,
    baselines: dict[str, np.ndarray] | None,
) -> dict[str, Any]:
    """Per label, the KSG entry (:func:`ksg_entry`) of its usable rows ``columns[name] = (μ, label, rows)``, with
    what cleaning did; a label too short to estimate keeps only its counts."""
    table: dict[str, Any] = {}
    for name, (m, y, keep) in columns.items():
        features = None if baselines is None else {b: np.asarray(f)[keep] for b, f in baselines.items()}
        entry = ksg_entry(
            m, y, nodes, how.k, how.seed, bootstrap=how.bootstrap, intervals=how.intervals, baselines=features
        )
        table[name] = entry | cleaned[name][1]
    for name, (_, counts) in cleaned.items():
        table.setdefault(name, counts)
    return table


def clean_labels(
    labels: dict[str, np.ndarray], sigma: float | None, min_n: int
) -> dict[str, tuple[np.ndarray, dict[str, Any]]]:
    """Per label, the rows it is measured on (finite, σ-clipped: :func:`~.mi.clean_label`) and their counts;
    a label with fewer than ``min_n`` such rows is marked ``skipped``."""
    out = {}
    for name, y in labels.items():
        keep, counts = clean_label(y, sigma)
        if counts["n"] < min_n:
            counts["skipped"] = "too few finite values"
        out[name] = (keep, counts)
    return out


def ksg_entry(
    mu: np.ndarray,
    y: np.ndarray,
    nodes: list[int],
    k: int,
    seed: int,
    bootstrap: int = 0,
    intervals: int = 30,
    baselines: dict[str, np.ndarray] | None = None,
) -> dict[str, Any]:
    """One label's KSG entry from codes ``(n, D)`` and its values ``(n,)`` on the same rows: MI of every node,
    the best and runner-up among ``nodes`` with the gap, and optionally bootstrap SEs, intervals with the null
    and the distinct verdict, and the best label-free baseline (``baselines``: ``{name: (n,)}``)."""
    values = mi_ksg_table(mu, {"label": y}, k=k, seed=seed)["label"]
    entry: dict[str, Any] = {"values": values, **best_and_gap(values, nodes)}
    estimate = _ksg_estimator(k, seed)
    if bootstrap:
        entry["se"] = bootstrap_se(estimate, mu, y, bootstrap, seed)
    if intervals:
        entry["intervals"] = label_intervals(
            estimate, mu, y, entry["best_node"], entry["runner_up"], values, intervals, seed
        )
    if baselines is not None:
        entry["baseline"] = baseline_mi(baselines, y, k, seed, intervals)
    return entry


def _ksg_estimator(k: int, seed: int) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    return lambda codes, y: mi_ksg(codes, y, k=k, seed=seed)


def baseline_mi(baselines: dict[str, np.ndarray], y: np.ndarray, k: int, seed: int, reps: int) -> dict[str, Any]:
    """The label's MI with each label-free feature ``(n,)`` (on its rows with a finite value) and the best one:
    ``{"values": {name: nats}, "best": name, "value": nats, "interval": [lo, hi] or None}``."""
    values: dict[str, float | None] = {}
    for name, feature in baselines.items():
        f = np.asarray(feature, np.float64)
        ok = np.isfinite(f)
        values[name] = float(mi_ksg(f[ok, None], y[ok], k=k, seed=seed)[0]) if ok.sum() >= 2 * k + 2 else None
    scored = {name: v for name, v in values.items() if v is not None}
    if not scored:
        return {"values": values, "best": None, "value": None, "interval": None}
    best = max(scored, key=lambda name: scored[name])
    out: dict[str, Any] = {"values": values, "best": best, "value": scored[best], "interval": None}
    if reps:
        f = np.asarray(baselines[best], np.float64)
        ok = np.isfinite(f)
        se = float(half_sample_se(_ksg_estimator(k, seed), f[ok, None], y[ok], reps, seed)[0])
        out["se"], out["interval"] = se, interval(scored[best], se)
    return out


def to_json(obj: Any) -> Any:
    """numpy -> lists/floats, NaN/inf -> None (valid JSON)."""
    if isinstance(obj, dict):
        return {str(k): to_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_json(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_json(obj.tolist())
    if isinstance(obj, (np.floating, float)):
        v = float(obj)
        return v if math.isfinite(v) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def label_carriers(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """:func:`label_carrier` of every label with a KSG entry, each against all the others."""
    names = [n for n, e in report["mi"].get("ksg", {}).items() if e.get("best_node") is not None]
    return {name: label_carrier(report, name, others=[n for n in names if n != name]) for name in names}


def label_carrier(
    report: dict[str, Any],
    label: str,
    others: list[str] | None = None,
    ratio: float = 2.0,
    pair_min: float = 2.5,
    other_max: float = 0.1,
    min_mi: float = 0.1,
) -> dict[str, Any]:
    """How ``label`` is carried: ``single node`` (best ≥ ratio × runner-up and ≥ ``min_mi``),
    ``phase pair`` (two informative nodes, neither carrying any of the ``others`` labels above ``other_max``
    nats, with joint MI ≥ ``pair_min``), ``diffuse`` (some MI, no clear carrier) or ``none``."""
    entry = report["mi"].get("ksg", {}).get(label, {})
    if entry.get("best_node") is None:
        return {"kind": "unknown"}
    if entry["best"] >= min_mi and entry["best"] >= ratio * max(entry["runner_up_value"], 1e-12):
        return {"kind": "single node", "nodes": [entry["best_node"]], "value": entry["best"]}
    pair = report.get("mi_pairs", {}).get("ksg", {}).get(label, {})
    if pair.get("best_pair"):
        ksg = report["mi"]["ksg"]
        clean = all(
            (ksg[o]["values"][i] or 0.0) < other_max
            for o in others or []
            if ksg.get(o, {}).get("values")
            for i in pair["best_pair"]
        )
        if clean and pair["value"] >= pair_min:
            return {"kind": "phase pair", "nodes": pair["best_pair"], "value": pair["value"]}
    kind = "diffuse" if max(entry["best"], pair.get("value") or 0.0) >= min_mi else "none"
    return {"kind": kind, "nodes": [entry["best_node"]], "value": entry["best"]}


def _split_words(split: str | None) -> str:
    return {"val": "validation spectra", "test": "test spectra", "train": "training spectra"}.get(
        split or "", "spectra"
    )


def _with_interval(value: float, bounds: list[float] | None) -> str:
    return f"{value:.2f}" + (f" [{bounds[0]:.2f}, {bounds[1]:.2f}]" if bounds else "")


def format_summary(report: dict[str, Any]) -> str:
    """A short text table: informative nodes, best node per label, best pair per label."""
    m = report["mad"]
    kl = m.get("kl")
    rule = f"MAD > {m['threshold']}" + (f" and KL > {m['kl_threshold']} nat" if m["criterion"] == "both" else "")
    lines = [
        f"latent space of {report['n_spectra']} {_split_words(report.get('split'))}: "
        f"{len(m['informative'])} informative of {report['latent_dim']} nodes ({rule})",
        "  node      MAD   KL (nat)",
    ]
    for i in m["informative"]:
        lines.append(
            f"  {i:4d} {m['values'][i]:8.3f}   {kl[i]:8.2f}" if kl else f"  {i:4d} {m['values'][i]:8.3f}        -"
        )
    ksg = report["mi"].get("ksg", {})
    pairs = report.get("mi_pairs", {}).get("ksg", {})
    w = max([6, *(len(name) for name in ksg)])  # long label names keep the columns aligned
    lines.append(
        f"  {'label':{w}s}      n  best  MI (nat, 95% interval)  2nd  MI (nat)        distinct  null p95  "
        "best pair  joint MI  best label-free baseline"
    )
    for name, e in ksg.items():
        if e.get("best_node") is None:
            lines.append(f"  {name:{w}s} {e.get('n', 0):6d}  (no informative node or too few values)")
            continue
        p = pairs.get(name, {})
        pair = (
            f"{p['best_pair'][0]:3d},{p['best_pair'][1]:<3d}  {p['value']:8.2f}"
            if p.get("best_pair")
            else "      -          -"
        )
        iv = e.get("intervals") or {}
        best = _with_interval(e["best"], (iv.get("best") or {}).get("interval"))
        second = _with_interval(e["runner_up_value"], (iv.get("runner_up") or {}).get("interval"))
        runner = f"{e['runner_up']:4d}" if e["runner_up"] is not None else "   -"
        verdict = ("yes" if iv.get("distinct") else "no") if iv else "-"
        null = f"{iv['null']['p95']:8.2f}" if iv.get("null") else "       -"
        b = e.get("baseline") or {}
        base = f"{b['best']} {_with_interval(b['value'], b.get('interval'))}" if b.get("best") else "-"
        lines.append(
            f"  {name:{w}s} {e['n']:6d}  {e['best_node']:4d} {best:22s} {runner} {second:16s} {verdict:8s} {null}  "
            f"{pair}  {base}"
        )
    if any((e.get("intervals") or {}).get("rule") for e in ksg.values()):
        lines.append(
            "  intervals: ±1.96 se from half-samples (test-sample noise only, not the spread over training seeds); "
            "distinct: best − 1.96·se above the upper end of the runner-up among all nodes and the 95th percentile "
            "of the best of all nodes with the label permuted (same n)"
        )
    for name, c in label_carriers(report).items():
        lines.append(f"{name} is carried by: {c['kind']} {c.get('nodes')} ({c['value']:.2f} nat)")
    if report.get("separation"):
        lines += format_separation(report["separation"])
    return "\n".join(lines)


def _span(entry: dict[str, Any]) -> str:
    return f"{entry['value']:.2f} [{entry['lo']:.2f}, {entry['hi']:.2f}]"


def format_separation(sep: dict[str, Any]) -> list[str]:
    """The separation block as text: MIG and DCI, then per label and per node whether it is clean."""
    dci = sep["dci"]
    lines = [
        f"separation ({sep['n']} spectra with every label): MIG {_span(sep['mig'])}; DCI disentanglement "
        f"{_span(dci['disentanglement'])}, completeness {_span(dci['completeness'])}, informativeness "
        f"{_span(dci['informativeness'])}",
    ]
    w = max([12, *(len(name) for name in sep["labels"])])
    lines.append(f"  {'label':{w}s} node  MI given the other labels (nat)  distinct  clean")
    for name, e in sep["labels"].items():
        cmi = e.get("cmi")
        given = f"{cmi['value']:.2f} [{cmi['lo']:.2f}, {cmi['hi']:.2f}] null {cmi['null_p95']:.2f}" if cmi else "-"
        lines.append(
            f"  {name:{w}s} {e['node']:4d}  {given:31s}  {'yes' if e['distinct'] else 'no':8s}  "
            f"{'yes' if e['clean'] else 'no'}"
        )
    v = w + 8  # a label and its MI
    lines.append(
        f"  node  {'best label (MI)':{v}s} {'2nd label (MI)':{v}s} clean: nothing else once its best label is known"
    )
    for node, e in sep["nodes"].items():
        best = f"{e['best_label']} ({e['best_mi']:.2f})"
        second = f"{e['second_label']} ({e['second_mi']:.2f})" if e.get("second_label") else "-"
        lines.append(f"  {int(node):4d}  {best:{v}s} {second:{v}s} {'yes' if e['clean'] else 'no'}")
    return lines
