"""The full latent-space analysis as one pure function: codes + labels -> a JSON-able dict.

This dict is ``report.json`` (written by ``analyze`` and at the end of ``fit``); its
schema is documented in ``docs/report-format.md`` and kept stable.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .latent import KL_THRESHOLD, MAD_THRESHOLD, informative_nodes
from .mi import (
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

REPORT_VERSION = 1


def latent_report(
    mu: np.ndarray,
    labels: dict[str, np.ndarray],
    logvar: np.ndarray | None = None,
    threshold: float = MAD_THRESHOLD,
    kl_threshold: float = KL_THRESHOLD,
    criterion: str = "auto",
    estimators: tuple[str, ...] = ("ksg", "histogram"),
    bins: tuple[int, ...] = PAPER_BINS,
    k: int = 3,
    sigma: float | None = 5.0,
    pair_labels: bool = True,
    bootstrap: int = 0,
    seed: int = 0,
) -> dict[str, Any]:
    """Analyse codes ``mu (N, D)`` against labels ``{name: (N,)}``.

    Args:
        logvar: ``(N, D)`` posterior log-variances of a VAE (enables per-node KL).
        threshold, kl_threshold, criterion: see :func:`informative_nodes`.
        estimators: any of ``ksg``, ``histogram``.
        bins: histogram bin counts (the paper's by default).
        k: KSG neighbours.
        sigma: label sigma-clipping (None: off).
        pair_labels: also find, per label, the pair of informative nodes with the highest
            joint KSG MI (``mi_pairs``) — a label can live in a pair (e.g. a phase-like code).
        bootstrap: resamples for KSG standard errors (0: none).
    """
    mu = np.asarray(mu, np.float64)
    n, d = mu.shape
    info = informative_nodes(mu, logvar, threshold, kl_threshold, criterion)
    nodes = info["informative"]
    report: dict[str, Any] = {
        "version": REPORT_VERSION,
        "n_spectra": n,
        "latent_dim": d,
        "mad": {
            "threshold": threshold,
            "criterion": info["criterion"],
            "kl_threshold": kl_threshold,
            "values": info["values"],
            "kl": info["kl"],
            "informative": nodes,
        },
        "mi": {},
        "gap": {},
    }
    cleaned = {}
    for name, y in labels.items():
        keep, counts = clean_label(y, sigma)
        if counts["n"] < 2 * k + 2:
            counts["skipped"] = "too few finite values"
        cleaned[name] = (keep, counts)
    usable = {name: v for name, v in cleaned.items() if "skipped" not in v[1]}

    if "ksg" in estimators:
        table = {}
        for name, (keep, counts) in usable.items():
            values = mi_ksg_table(mu[keep], {name: np.asarray(labels[name], np.float64)[keep]}, k=k, seed=seed)[name]
            entry = {"values": values, **best_and_gap(values, nodes), **counts}
            if bootstrap:
                y = np.asarray(labels[name], np.float64)[keep]
                entry["se"] = bootstrap_se(lambda c, t: mi_ksg(c, t, k=k, seed=seed), mu[keep], y, bootstrap, seed)
            table[name] = entry
            report["gap"][name] = entry["gap"]
        for name, (_, counts) in cleaned.items():
            table.setdefault(name, counts)
        report["mi"]["ksg"] = table
    if "histogram" in estimators:
        report["mi"]["histogram"] = {
            name: {**mi_histogram(mu[keep], np.asarray(labels[name], np.float64)[keep], bins), "n": counts["n"]}
            for name, (keep, counts) in usable.items()
        }
    report["pair_mi"] = {
        "nodes": nodes,
        "matrix": mi_pair_matrix(mu[:, nodes], k=k, seed=seed)
        if len(nodes) > 1
        else np.zeros((len(nodes), len(nodes))),
    }
    if pair_labels:
        report["mi_pairs"] = {
            "ksg": {
                name: best_pair(mu[keep], np.asarray(labels[name], np.float64)[keep], nodes, k=k, seed=seed)
                for name, (keep, _) in usable.items()
            }
        }
    report = to_json(report)
    report["carriers"] = {
        name: label_carrier(report, name, other="teff" if name == "rv" else "rv")
        for name in ("rv", "teff")
        if name in report["mi"].get("ksg", {})
    }
    return report


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


def label_carrier(
    report: dict[str, Any],
    label: str,
    other: str | None = "teff",
    ratio: float = 2.0,
    pair_min: float = 2.5,
    other_max: float = 0.1,
    min_mi: float = 0.1,
) -> dict[str, Any]:
    """How ``label`` is carried: ``single node`` (best ≥ ratio × runner-up and ≥ ``min_mi``),
    ``phase pair`` (two informative nodes, neither carrying ``other`` above ``other_max`` nats,
    with joint MI ≥ ``pair_min``), ``diffuse`` (some MI, no clear carrier) or ``none``."""
    entry = report["mi"].get("ksg", {}).get(label, {})
    if entry.get("best_node") is None:
        return {"kind": "unknown"}
    if entry["best"] >= min_mi and entry["best"] >= ratio * max(entry["runner_up_value"], 1e-12):
        return {"kind": "single node", "nodes": [entry["best_node"]], "value": entry["best"]}
    pair = report.get("mi_pairs", {}).get("ksg", {}).get(label, {})
    if pair.get("best_pair"):
        other_values = report["mi"]["ksg"].get(other, {}).get("values") if other else None
        clean = other_values is None or all((other_values[i] or 0.0) < other_max for i in pair["best_pair"])
        if clean and pair["value"] >= pair_min:
            return {"kind": "phase pair", "nodes": pair["best_pair"], "value": pair["value"]}
    kind = "diffuse" if max(entry["best"], pair.get("value") or 0.0) >= min_mi else "none"
    return {"kind": kind, "nodes": [entry["best_node"]], "value": entry["best"]}


def format_summary(report: dict[str, Any]) -> str:
    """A short text table: informative nodes, best node per label, best pair per label."""
    m = report["mad"]
    kl = m.get("kl")
    rule = f"MAD > {m['threshold']}" + (f" and KL > {m['kl_threshold']} nat" if m["criterion"] == "both" else "")
    lines = [
        f"latent space of {report['n_spectra']} validation spectra: {len(m['informative'])} informative "
        f"of {report['latent_dim']} nodes ({rule})",
        "  node      MAD   KL (nat)",
    ]
    for i in m["informative"]:
        lines.append(
            f"  {i:4d} {m['values'][i]:8.3f}   {kl[i]:8.2f}" if kl else f"  {i:4d} {m['values'][i]:8.3f}        -"
        )
    ksg = report["mi"].get("ksg", {})
    pairs = report.get("mi_pairs", {}).get("ksg", {})
    lines.append("  label       n  best  MI(nat)  2nd  MI(nat)   gap   best pair  joint MI")
    for name, e in ksg.items():
        if e.get("best_node") is None:
            lines.append(f"  {name:6s} {e.get('n', 0):6d}  (no informative node or too few values)")
            continue
        p = pairs.get(name, {})
        pair = (
            f"{p['best_pair'][0]:3d},{p['best_pair'][1]:<3d}  {p['value']:8.2f}"
            if p.get("best_pair")
            else "      -          -"
        )
        runner = f"{e['runner_up']:4d}" if e["runner_up"] is not None else "   -"
        lines.append(
            f"  {name:6s} {e['n']:6d}  {e['best_node']:4d} {e['best']:8.2f} {runner} {e['runner_up_value']:8.2f} "
            f"{e['gap']:5.2f}   {pair}"
        )
    for name in ("rv", "teff"):
        c = label_carrier(report, name, other="teff" if name == "rv" else "rv")
        if c["kind"] != "unknown":
            lines.append(f"{name} is carried by: {c['kind']} {c.get('nodes')} ({c['value']:.2f} nat)")
    return "\n".join(lines)
