"""Figures of the latent space, shared by the callbacks and ``analyze``.

Every function takes arrays or a report dict (see ``metrics.report``) and returns a
``matplotlib.figure.Figure`` built without pyplot: no global figure registry, no backend switch, so a
notebook's own plots are untouched and nothing needs closing.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import seaborn as sns
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from spectra_lightning.physics.lines import windows_within

# Well-known regions (air Å) for zoomed reconstructions and traversals.


def subplots(*grid: int, figsize: tuple[float, float], **kwargs):
    """``pyplot.subplots`` without pyplot: a free-standing Figure and its axes."""
    fig = Figure(figsize=figsize)
    return fig, fig.subplots(*grid, **kwargs)


def envelope(x: np.ndarray, y: np.ndarray, n_max: int = 2400) -> tuple[np.ndarray, np.ndarray]:
    """At most ~``n_max`` points of the line ``(x, y)`` that draw the same at figure widths: the lowest and
    the highest point of each of ``n_max / 2`` bins, in order (a 327,680-px spectrum renders in
    milliseconds instead of seconds; every line's extremes stay visible, gaps stay gaps)."""
    n = len(x)
    if n <= n_max:
        return x, y
    size = -(-n // (n_max // 2))
    bins = -(-n // size)
    y = np.asarray(y, dtype=float)
    padded = np.full(bins * size, np.nan)
    padded[:n] = y
    rows = padded.reshape(bins, size)
    finite = np.isfinite(rows)
    lo = np.where(finite, rows, np.inf).argmin(1)
    hi = np.where(finite, rows, -np.inf).argmax(1)
    gap = (~finite).argmax(1)  # a bin's first NaN: kept so that masked pixels still break the line
    cols = np.sort(np.stack([lo, hi, np.where(finite.all(1), -1, gap)], 1), 1) + (np.arange(bins) * size)[:, None]
    keep = np.ones_like(cols, dtype=bool)
    keep[:, 0] = ~finite.all(1)  # the -1 placeholder sorts first: drop it where the bin has no NaN
    idx = np.unique(np.minimum(cols[keep], n - 1))
    return x[idx], y[idx]


def windows_in(wave: np.ndarray, valid: np.ndarray | None = None, n: int = 3) -> dict:
    """Up to ``n`` zoom windows that lie on the grid's valid pixels."""
    lo, hi = (wave[valid].min(), wave[valid].max()) if valid is not None else (wave.min(), wave.max())
    return dict(list(windows_within(lo, hi).items())[:n])


def mad_stems(report: dict) -> Figure:
    """MAD per node (log scale) with the threshold; informative nodes highlighted."""
    values = np.array(report["mad"]["values"], float)
    info = set(report["mad"]["informative"])
    fig, ax = subplots(figsize=(max(6, 0.18 * len(values)), 3.2))
    x = np.arange(len(values))
    floor = max(values[values > 0].min() / 10, 1e-8) if (values > 0).any() else 1e-8
    v = np.maximum(values, floor)
    colors = ["C3" if i in info else "0.55" for i in x]
    ax.vlines(x, floor, v, colors=colors)
    ax.scatter(x, v, c=colors, s=14, zorder=3)
    ax.axhline(report["mad"]["threshold"], ls="--", c="k", lw=0.8, label=f"threshold {report['mad']['threshold']}")
    ax.set_yscale("log")
    ax.set(
        xlabel="latent node", ylabel="MAD of μ", title=f"{len(info)} informative nodes ({report['mad']['criterion']})"
    )
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    return fig


def mi_heatmap(report: dict, estimator: str = "ksg") -> Figure:
    """MI (nats) of each node with each label, nodes ordered by MAD; informative nodes starred."""
    table = {k: v for k, v in report["mi"][estimator].items() if "values" in v}
    order = np.argsort(-np.array(report["mad"]["values"], float))[: min(32, report["latent_dim"])]
    info = set(report["mad"]["informative"])
    data = np.array([[table[k]["values"][i] or 0.0 for i in order] for k in table])
    fig, ax = subplots(figsize=(max(6, 0.32 * len(order) + 2), 0.45 * len(table) + 1.6))
    sns.heatmap(
        data,
        ax=ax,
        cmap="viridis",
        annot=len(order) <= 16,
        fmt=".2f",
        cbar_kws={"label": "MI (nats)"},
        xticklabels=[f"{i}*" if i in info else str(i) for i in order],
        yticklabels=list(table),
    )
    ax.set(xlabel="latent node (by MAD; * informative)", title=f"MI node × label ({estimator})")
    fig.tight_layout()
    return fig


def indicator_heatmap(report: dict, label: str) -> Figure:
    """The paper's MI indicator (MI / max over nodes) for one label: bin counts × nodes."""
    h = report["mi"]["histogram"][label]
    order = np.argsort(-np.array(report["mad"]["values"], float))[: min(32, report["latent_dim"])]
    data = np.array(h["indicator"])[:, order]
    fig, ax = subplots(figsize=(max(6, 0.3 * len(order) + 2), 3.2))
    sns.heatmap(
        data,
        ax=ax,
        cmap="magma",
        vmin=0,
        vmax=1,
        xticklabels=list(order),
        yticklabels=h["bins"],
        cbar_kws={"label": "MI / max"},
    )
    ax.set(xlabel="latent node (by MAD)", ylabel="histogram bins", title=f"MI indicator: {label}")
    fig.tight_layout()
    return fig


def pair_mi_matrix(report: dict) -> Figure:
    """KSG MI between informative nodes: off-diagonal ~0 means they carry separate information."""
    nodes = report["pair_mi"]["nodes"]
    m = np.array(report["pair_mi"]["matrix"], dtype=float) if nodes else np.zeros((0, 0))
    fig, ax = subplots(figsize=(1.0 + 0.6 * max(len(nodes), 2), 0.8 + 0.55 * max(len(nodes), 2)))
    if len(nodes):
        sns.heatmap(
            m,
            ax=ax,
            annot=True,
            fmt=".2f",
            cmap="rocket_r",
            xticklabels=nodes,
            yticklabels=nodes,
            mask=~np.isfinite(m),
            cbar_kws={"label": "MI (nats)"},
        )
    ax.set_title("MI between informative nodes")
    fig.tight_layout()
    return fig


def node_scatter(mu: np.ndarray, labels: dict, x_node: int, y: str | int, color: str) -> Figure:
    """A node against a label (``y`` a label name) or another node (``y`` an int), coloured by a label."""
    fig, ax = subplots(figsize=(5, 4))
    yv = mu[:, y] if isinstance(y, (int, np.integer)) else labels[y]
    sc = ax.scatter(mu[:, x_node], yv, c=labels[color], s=5, cmap="coolwarm")
    fig.colorbar(sc, ax=ax, label=color)
    ax.set(xlabel=f"node {x_node}", ylabel=f"node {y}" if isinstance(y, (int, np.integer)) else y)
    fig.tight_layout()
    return fig


def reconstructions(wave: np.ndarray, flux: np.ndarray, mask: np.ndarray, recon: np.ndarray, windows: dict) -> Figure:
    """A few spectra ``(n, L)`` and their reconstructions, whole and in zoom windows."""
    n = len(flux)
    cols = 1 + len(windows)
    fig, axes = subplots(
        n,
        cols,
        figsize=(4 * cols + 2, 1.9 * n),
        squeeze=False,
        gridspec_kw={"width_ratios": [2.5] + [1] * len(windows)},
    )
    for r in range(n):
        f = np.where(mask[r], flux[r], np.nan)
        for c, (name, (lo, hi)) in enumerate(
            [("full", (wave[mask[r]].min(), wave[mask[r]].max()))] + list(windows.items())
        ):
            ax = axes[r, c]
            sel = (wave >= lo) & (wave <= hi)
            ax.plot(*envelope(wave[sel], f[sel]), c="k", lw=0.6, label="data")
            ax.plot(*envelope(wave[sel], recon[r][sel]), c="C1", lw=0.6, label="reconstruction")
            if r == 0:
                ax.set_title(name, fontsize=9)
            ax.tick_params(labelsize=7)
    axes[0, 0].legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    return fig


# Lines marked on the full-range panel of a traversal (air Å): where a reader looks first.
MARKED_LINES = {
    "Ca II K": 3933.7,
    "Ca II H": 3968.5,
    "Hδ": 4101.7,
    "Hγ": 4340.5,
    "Hβ": 4861.3,
    "Mg b": 5172.7,
    "Na D": 5892.9,
    "Hα": 6562.8,
}


def traversal(
    wave: np.ndarray, decoded: np.ndarray, values: np.ndarray, node: int, windows: dict, valid: np.ndarray | None = None
) -> Figure:
    """Spectra decoded from the mean code while one node sweeps its range, overplotted; the full-range
    panel (the grid's ``valid`` pixels when given, padding left out) marks the Balmer lines, Mg b, Na D."""
    cols = 1 + len(windows)
    fig, axes = subplots(
        1, cols, figsize=(4 * cols + 4, 2.8), squeeze=False, gridspec_kw={"width_ratios": [3.5] + [1] * len(windows)}
    )
    colors = matplotlib.colormaps["viridis"](np.linspace(0, 1, len(values)))
    full = (wave[valid].min(), wave[valid].max()) if valid is not None and valid.any() else (wave.min(), wave.max())
    spans = [("full", full)] + list(windows.items())
    for c, (name, (lo, hi)) in enumerate(spans):
        sel = (wave >= lo) & (wave <= hi)
        for spec, col in zip(decoded, colors):
            axes[0, c].plot(*envelope(wave[sel], spec[sel]), c=col, lw=0.6)
        axes[0, c].set_title(f"node {node}: {name}" if c == 0 else name, fontsize=9)
        axes[0, c].tick_params(labelsize=7)
    top = axes[0, 0].get_ylim()[1]
    for label, w in MARKED_LINES.items():
        if full[0] <= w <= full[1]:
            axes[0, 0].axvline(w, c="0.5", lw=0.5, ls=":")
            axes[0, 0].text(w, top, label, fontsize=6, rotation=90, va="top", ha="right", color="0.3")
    sm = ScalarMappable(cmap="viridis", norm=Normalize(values.min(), values.max()))
    fig.colorbar(sm, ax=axes[0, -1], label=f"z[{node}]")
    fig.tight_layout()
    return fig


def report_figures(report: dict, mu: np.ndarray, labels: dict[str, np.ndarray]) -> dict[str, Figure]:
    """The figures that need only codes and labels: MAD stems, MI heatmaps, pair MI, scatters."""
    figs = {"mad": mad_stems(report)}
    ksg = {k: v for k, v in report["mi"].get("ksg", {}).items() if v.get("best_node") is not None}
    if ksg:
        figs["mi_heatmap"] = mi_heatmap(report, "ksg")
    for name in report["mi"].get("histogram", {}):
        figs[f"mi_indicator_{name}"] = indicator_heatmap(report, name)
    if len(report["pair_mi"]["nodes"]) > 1:
        figs["pair_mi"] = pair_mi_matrix(report)
    names = list(ksg)
    for a, name in enumerate(names[:3]):
        color = names[1] if a == 0 and len(names) > 1 else names[0]
        figs[f"scatter_{name}"] = node_scatter(mu, labels, ksg[name]["best_node"], name, color)
    for name, pair in report.get("mi_pairs", {}).get("ksg", {}).items():
        if name in ("rv", "teff") and pair.get("best_pair"):
            i, j = pair["best_pair"]
            figs[f"pair_{name}"] = node_scatter(mu, labels, i, int(j), name)
    return figs


def save_figures(figs: dict[str, Figure], out: str | Path) -> dict[str, Path]:
    """Write each figure as ``out/<name>.png``; returns the paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, fig in figs.items():
        paths[name] = out / f"{name}.png"
        fig.savefig(paths[name], dpi=90)
    return paths
