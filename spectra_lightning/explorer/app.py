"""The explorer's query layer: :class:`Explorer` holds a model, its codes and (optionally) the store and
``report.json``, and answers the page's queries (decode a code, the nearest stored spectra, a node scatter,
a stored spectrum) as plain dicts. No HTTP here (``explorer_server.py``), no command line (``explore.py``).
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import torch
from scipy.spatial import cKDTree

from spectra_lightning.analysis.codes import load_codes
from spectra_lightning.metrics.latent import MAD_THRESHOLD, informative_nodes, mad
from spectra_lightning.model.checkpoints import check_grid, fingerprint, load_model
from spectra_lightning.physics.grid import GRIDS, SpectralGrid
from spectra_lightning.physics.lines import windows_within
from spectra_lightning.store import SpectraStore, StoreError, fill_masked

MAX_SCATTER = 20_000  # points sent to the scatter plot (a fixed random subset beyond that)
MAX_NEIGHBOURS = 1000  # a bound on /api/neighbours?k= (an archive holds hundreds of thousands)


class ExploreError(ValueError):
    """Inputs that cannot be explored together (one line, names the file and the reason)."""


def envelope(y: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Decimate ``y (L,)`` to at most ``2n`` points keeping each bucket's min and max, so a
    narrow line survives at any zoom. Returns ``(pixel indices, values)``, indices increasing;
    ``n <= 0`` or ``L <= 2n`` returns every pixel."""
    length = len(y)
    if n <= 0 or length <= 2 * n:
        return np.arange(length), y
    k = -(-length // n)  # bucket size; the last bucket is padded
    padded = np.full(n * k, np.nan)
    padded[:length] = np.where(np.isfinite(y), y, np.nan)
    rows = padded.reshape(n, k)
    empty = np.isnan(rows).all(axis=1)
    lo = np.argmin(np.where(np.isnan(rows), np.inf, rows), axis=1)
    hi = np.argmax(np.where(np.isnan(rows), -np.inf, rows), axis=1)
    start = np.arange(n) * k
    pairs = np.sort(np.column_stack([lo, hi]), axis=1) + start[:, None]
    pairs[empty] = start[empty, None]  # an all-masked bucket keeps one (masked) point: a gap
    idx = np.unique(pairs[pairs < length])
    return idx, y[idx]


def _finite_list(a: np.ndarray, decimals: int = 6) -> list:
    """JSON has no NaN: masked pixels become null (a gap in the plotted line)."""
    a = np.round(np.asarray(a, np.float64), decimals)
    return [None if v != v or v in (np.inf, -np.inf) else v for v in a.tolist()]


class Explorer:
    """A trained model with its codes, ready to answer the page's queries.

    Args:
        ckpt: checkpoint of a trained :class:`SpectrumAutoencoder`.
        codes: codes written by ``encode`` (``.zarr``; ``.npy``/``.csv`` work without retrieval metadata).
        store: the store the codes were made from (real spectra, labels, metadata); defaults to
            the store named in the codes when it exists.
        report: a ``report.json`` for the MAD stems and the MI table; informative nodes are
            taken from it, else computed from the codes.
    """

    def __init__(self, ckpt, codes, store=None, report=None, device: str = "cpu"):
        self.ckpt = str(ckpt)
        self.model = load_model(ckpt, torch.device(device))
        self.device = torch.device(device)
        c = load_codes(codes)
        self.mu = c["mu"].astype(np.float32)
        n, d = self.mu.shape
        if d != self.model.latent_dim:
            raise ExploreError(
                f"{codes}: codes have {d} latent nodes but {ckpt} has {self.model.latent_dim}: "
                "they come from another model (run `encode` with this checkpoint)"
            )
        attrs = c["attrs"]
        if attrs.get("model_fingerprint") not in (None, fingerprint(self.model)):
            raise ExploreError(
                f"{codes}: codes were made by another model than {ckpt} "
                f"(its checkpoint was {attrs.get('checkpoint')}); run `encode` with this checkpoint"
            )
        self.ids = c["id"] if c["id"] is not None else np.arange(n).astype(str)
        named = attrs.get("store")
        self.store = self._open_store(store or (named if named and Path(named).exists() else None), n)
        self.grid = self._grid(attrs)
        self.wave = self.grid.wavelength.astype(np.float64)
        self.meta = self.store.meta if self.store is not None else {}
        self.report = self._read_report(report, d) if report else None
        if self.report:
            picked, self.mad_values = self.report["mad"]["informative"], np.asarray(self.report["mad"]["values"])
            self.threshold = float(self.report["mad"].get("threshold", MAD_THRESHOLD))
        else:
            info = informative_nodes(c["mu"], c["logvar"])
            picked, self.mad_values, self.threshold = info["informative"], info["values"], MAD_THRESHOLD
        # with nothing informative, still offer the three most variable nodes to play with
        self.nodes = [int(i) for i in (picked or np.argsort(-mad(c["mu"]), kind="stable")[:3])]
        sub = self.mu[:, self.nodes]
        self.range = np.percentile(sub, [1, 50, 99], axis=0)
        self.base = np.median(self.mu, axis=0).astype(np.float32)  # every node at its median code
        self.tree = cKDTree(sub)
        self._lock = threading.Lock()  # one forward at a time: torch threads are shared anyway
        self.base_flux = self.decode(self.range[1])

    # -- loading -----------------------------------------------------------------
    def _open_store(self, store, n: int) -> SpectraStore | None:
        if store is None:
            return None
        s = SpectraStore.open(store)
        if s.n != n:
            raise ExploreError(
                f"{store}: {s.n} spectra but the codes have {n}; pass the store the codes were made from"
            )
        try:
            check_grid(self.model.hparams, s.grid, str(store))
        except StoreError as e:
            raise ExploreError(str(e)) from None
        return s

    def _grid(self, attrs: dict) -> SpectralGrid:
        length = self.model.n_pixels
        if self.store is not None:
            return self.store.grid
        if "grid" in attrs:
            return SpectralGrid(**attrs["grid"])
        for grid in GRIDS.values():
            if grid.length == length:
                return grid
        raise ExploreError(f"no wavelength grid of {length} px known: pass --store")

    @staticmethod
    def _read_report(path, d: int) -> dict:
        try:
            report = json.loads(Path(path).read_text())
        except FileNotFoundError:
            raise ExploreError(f"{path}: no such report") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ExploreError(f"{path}: not a JSON report ({e})") from None
        if report.get("latent_dim") != d or "mad" not in report:
            raise ExploreError(f"{path}: a report of a {report.get('latent_dim')}-node latent space, the model has {d}")
        return report

    # -- queries -------------------------------------------------------------------
    def code(self, values) -> np.ndarray:
        """Full latent code ``(D,)``: the informative nodes at ``values``, the rest at their median."""
        values = np.asarray(values, np.float32).ravel()
        if values.shape != (len(self.nodes),):
            raise ValueError(f"expected {len(self.nodes)} values (nodes {self.nodes}), got {values.size}")
        if not np.isfinite(values).all():
            raise ValueError("latent values must be finite")
        z = self.base.copy()
        z[self.nodes] = values
        return z

    def decode(self, values) -> np.ndarray:
        """Decoded spectrum ``(L,)`` at the informative-node ``values``, exactly the decoder's output."""
        z = torch.as_tensor(self.code(values)[None], device=self.device)
        with self._lock, torch.no_grad():
            return self.model.decode(z)[0].float().cpu().numpy()

    def window(self, lo: float | None, hi: float | None) -> slice:
        """Pixels between ``lo`` and ``hi`` Å, one beyond each end; the on-grid pixels (no padding)
        when not given."""
        first, last = self.grid.pad_left, self.grid.pad_left + self.grid.n_pixels
        a = first if lo is None else max(int(np.searchsorted(self.wave, lo, "left")) - 1, 0)
        b = last if hi is None else min(int(np.searchsorted(self.wave, hi, "right")) + 1, len(self.wave))
        return slice(a, max(b, a + 1))

    def curves(self, series: dict[str, np.ndarray], lo=None, hi=None, n: int = 0) -> dict:
        """``{"wave": [...], name: [...]}`` for a wavelength window, decimated to ~``2n`` points
        by the first series' envelope (the same pixels for every series)."""
        w = self.window(lo, hi)
        first = next(iter(series.values()))[w]
        idx, _ = envelope(first, n)
        out = {"wave": np.round(self.wave[w][idx], 4).tolist()}
        out.update({name: _finite_list(y[w][idx]) for name, y in series.items()})
        return out

    def neighbours(self, values, k: int = 10) -> list[dict]:
        """The ``k`` (1..:data:`MAX_NEIGHBOURS`) stored spectra whose informative-node codes are nearest
        (Euclidean) to ``values``."""
        if not 1 <= k <= MAX_NEIGHBOURS:
            raise ValueError(f"k must be in 1..{MAX_NEIGHBOURS}, got {k}")
        k = min(int(k), len(self.mu))
        dist, idx = self.tree.query(np.asarray(values, np.float32), k=k)
        dist, idx = np.atleast_1d(dist), np.atleast_1d(idx)
        return [{"index": int(i), "distance": float(dd), **self.describe(int(i))} for dd, i in zip(dist, idx)]

    def describe(self, i: int) -> dict:
        """Id, object and numeric metadata of spectrum ``i``."""
        out: dict[str, str | float | None] = {"id": str(self.ids[i])}
        for name, col in self.meta.items():
            v = col[i]
            if col.dtype.kind in "fiu":
                out[name] = None if not np.isfinite(v) else round(float(v), 4)
            elif name in ("object", "instrument", "product", "date_obs"):
                out[name] = str(v)
        return out

    def color_columns(self) -> list[str]:
        return [k for k, v in self.meta.items() if v.dtype.kind in "fiu" and np.isfinite(v.astype(float)).any()]

    def scatter(self, x: int, y: int, color: str | None) -> dict:
        d = self.mu.shape[1]
        if not (0 <= x < d and 0 <= y < d):
            raise ValueError(f"nodes must be in 0..{d - 1}")
        rows = np.arange(len(self.mu))
        if len(rows) > MAX_SCATTER:
            rows = np.sort(np.random.default_rng(0).choice(rows, MAX_SCATTER, replace=False))
        out = {"index": rows.tolist(), "x": _finite_list(self.mu[rows, x]), "y": _finite_list(self.mu[rows, y])}
        if color:
            if color not in self.color_columns():
                raise ValueError(f"unknown colour column {color!r}")
            out["c"] = _finite_list(self.meta[color][rows].astype(float))
        return out

    def spectrum(self, i: int, lo=None, hi=None, n: int = 0) -> dict:
        """A real spectrum, its reconstruction and metadata."""
        if self.store is None:
            raise ValueError("no store: start the explorer with --store to see real spectra")
        if not 0 <= i < len(self.mu):
            raise ValueError(f"spectrum index must be in 0..{len(self.mu) - 1}")
        flux = self.store.read([i])[0]
        with self._lock, torch.no_grad():
            x = torch.as_tensor(fill_masked(flux[None])[0], device=self.device)
            recon = self.model(x)[0][0].float().cpu().numpy()  # eval mode: decodes μ
        return {
            **self.curves({"flux": flux, "recon": recon}, lo, hi, n),
            "meta": self.describe(i),
            "code": [round(float(v), 5) for v in self.mu[i, self.nodes]],
        }

    def info(self) -> dict:
        report = self.report or {}
        # a label the report skipped (too few finite values) has counts and a reason but no values
        mi = {
            label: {"values": [round(v, 4) for v in entry["values"]], "best_node": entry.get("best_node")}
            for label, entry in report.get("mi", {}).get("ksg", {}).items()
            if isinstance(entry, dict) and entry.get("values") is not None
        }
        lo, hi = float(self.wave[self.grid.pad_left]), float(self.wave[self.grid.pad_left + self.grid.n_pixels - 1])
        return {
            "latent_dim": int(self.mu.shape[1]),
            "n_codes": int(len(self.mu)),
            "nodes": self.nodes,
            "range": {"p1": self.range[0].tolist(), "median": self.range[1].tolist(), "p99": self.range[2].tolist()},
            "mad": [round(float(v), 5) for v in self.mad_values],
            "mad_threshold": self.threshold,
            "mi": mi,
            "carriers": report.get("carriers", {}),
            # per node: its best label and whether it carries nothing else once that is known (report's separation)
            "verdicts": {
                node: {"best_label": e["best_label"], "second_label": e.get("second_label"), "clean": e["clean"]}
                for node, e in (report.get("separation") or {}).get("nodes", {}).items()
            },
            "wave_range": [lo, hi],
            "presets": [
                {"name": name, "lo": a, "hi": b} for name, (a, b) in windows_within(lo, hi, self.grid.medium).items()
            ],
            "colors": self.color_columns(),
            "has_store": self.store is not None,
            # names only: a page may be served off this machine, and local paths are not its business
            "checkpoint": Path(self.ckpt).name,
            "store": Path(self.store.path).name if self.store is not None else None,
        }

    # -- the HTTP API ----------------------------------------------------------------
    def handle(self, route: str, q: dict) -> dict:
        """Answer ``/api/<route>`` with query parameters ``q`` (single values)."""

        def num(name, default=None, kind=float):
            return kind(q[name]) if q.get(name) not in (None, "") else default

        def values():
            return [float(v) for v in q["z"].split(",")] if q.get("z") else self.range[1]

        lo, hi, n = num("lo"), num("hi"), num("n", 0, int)
        if route == "info":
            return self.info()
        if route == "decode":
            return self.curves({"flux": self.decode(values()), "base": self.base_flux}, lo, hi, n)
        if route == "neighbours":
            return {"neighbours": self.neighbours(values(), num("k", 10, int))}
        if route == "scatter":
            return self.scatter(
                num("x", self.nodes[0], int),
                num("y", self.nodes[min(1, len(self.nodes) - 1)], int),
                q.get("color") or None,
            )
        if route == "spectrum":
            return self.spectrum(num("index", 0, int), lo, hi, n)
        raise KeyError(route)
