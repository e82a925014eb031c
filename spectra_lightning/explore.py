"""``explore``: a local web app to move latent nodes, watch the decoded spectrum, and retrieve
the nearest real spectra (the paper's "sliders" and "RETR-SPECT" pages, offline).

Stack: the standard library's threaded HTTP server, a JSON API, and one static page of
plain JavaScript drawing on ``<canvas>`` (``explorer_static/``). No extra dependency and no
CDN: a slider move costs one decoder forward plus a few kB of JSON (see
``docs/explorer.md`` for the measured latency and why not Dash/Panel).

:class:`Explorer` holds the model, the codes and (optionally) the store and ``report.json``,
and answers the page's queries as plain dicts; :func:`serve` puts it behind HTTP.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import socket
import sys
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import numpy as np
import torch
from scipy.spatial import cKDTree

from .checkpoints import check_grid, fingerprint, load_model
from .codes import load_codes
from .grid import GRIDS, SpectralGrid
from .metrics.latent import informative_nodes, mad
from .store import SpectraStore, StoreError, fill_masked

STATIC = Path(__file__).with_name("explorer_static")
STATIC_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript", ".css": "text/css"}
# zoom presets: (name, centre Å, half-width Å), air wavelengths
PRESETS = [
    ("Ca II H&K", 3951.0, 30.0),
    ("Hβ", 4861.3, 12.0),
    ("Mg b", 5177.0, 15.0),
    ("Na D", 5892.9, 8.0),
    ("Hα", 6562.8, 12.0),
]
MAX_SCATTER = 20_000  # points sent to the scatter plot (a fixed random subset beyond that)


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
        hp = self.model.hparams
        if d != hp.latent_dim:
            raise ExploreError(
                f"{codes}: codes have {d} latent nodes but {ckpt} has {hp.latent_dim}: "
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
        else:
            info = informative_nodes(c["mu"], c["logvar"])
            picked, self.mad_values = info["informative"], info["values"]
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
            check_grid(self.model, s, store)
        except StoreError as e:
            raise ExploreError(str(e)) from None
        return s

    def _grid(self, attrs: dict) -> SpectralGrid:
        length = self.model.hparams.n_pixels
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
        """The ``k`` stored spectra whose informative-node codes are nearest (Euclidean) to ``values``."""
        k = max(1, min(int(k), len(self.mu)))
        dist, idx = self.tree.query(np.asarray(values, np.float32), k=k)
        dist, idx = np.atleast_1d(dist), np.atleast_1d(idx)
        return [{"index": int(i), "distance": float(dd), **self.describe(int(i))} for dd, i in zip(dist, idx)]

    def describe(self, i: int) -> dict:
        """Id, object and numeric metadata of spectrum ``i``."""
        out = {"id": str(self.ids[i])}
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
            "mi": mi,
            "carriers": report.get("carriers", {}),
            "wave_range": [lo, hi],
            "presets": [{"name": name, "lo": c - w, "hi": c + w} for name, c, w in PRESETS if lo <= c <= hi],
            "colors": self.color_columns(),
            "has_store": self.store is not None,
            "checkpoint": self.ckpt,
            "store": self.store.path if self.store is not None else None,
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


LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1"}


def host_allowed(header: str | None, names: set[str], port: int) -> bool:
    """Is a request's ``Host`` header one this server answers to? Against DNS rebinding: a page on another
    site can make the browser send requests here, but only ever with that site's name in ``Host``. IP
    literals cannot be rebound, so they pass; names must be ours (``names``); the port must be ours."""
    if not header:
        return False
    header = header.strip().lower()
    if header.startswith("["):  # [::1]:8050
        name, _, rest = header[1:].partition("]")
        port_part = rest[1:] if rest.startswith(":") else None
    else:
        name, sep, port_part = header.rpartition(":")
        if not sep:
            name, port_part = header, None
    if port_part is not None and port_part != str(port):
        return False
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        return name in names


class ExplorerServer(ThreadingHTTPServer):
    """A threading HTTP server with a deep listen queue (a burst of decodes must not be refused)."""

    request_queue_size = 256
    daemon_threads = True


def make_server(
    explorer: Explorer, host: str = "127.0.0.1", port: int = 8050, allowed_hosts: tuple[str, ...] = ()
) -> ThreadingHTTPServer:
    """An HTTP server (not yet serving) for ``explorer``; port 0 picks a free one. It answers requests whose
    ``Host`` is an IP address, ``localhost``, ``host``, this machine's name or one of ``allowed_hosts``
    (421 otherwise: DNS rebinding)."""
    names = {n.lower() for n in (host, *allowed_hosts, *LOOPBACK_NAMES, socket.gethostname(), socket.getfqdn())}

    class Handler(BaseHTTPRequestHandler):
        # headers and body go out in two writes; with Nagle on, the body waits ~40 ms for an ACK
        disable_nagle_algorithm = True

        def log_message(self, *args):  # quiet: the terminal shows the URL, not every request
            pass

        def _host_ok(self) -> bool:
            if host_allowed(self.headers.get("Host"), names, self.server.server_address[1]):
                return True
            self._send(
                HTTPStatus.MISDIRECTED_REQUEST, b"unknown Host: open the address the explorer printed", "text/plain"
            )
            return False

        def _send(self, status, body: bytes, ctype: str):
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            if not self._host_ok():
                return
            url = urlparse(self.path)
            if url.path.startswith("/api/"):
                q = {k: v[-1] for k, v in parse_qs(url.query).items()}
                try:
                    body, status = explorer.handle(url.path[5:], q), HTTPStatus.OK
                except KeyError as e:
                    body, status = {"error": f"no such endpoint or parameter: {e}"}, HTTPStatus.NOT_FOUND
                except ValueError as e:
                    body, status = {"error": str(e)}, HTTPStatus.BAD_REQUEST
                self._send(status, json.dumps(body).encode(), "application/json")
                return
            name = "index.html" if url.path in ("/", "/index.html") else url.path.removeprefix("/static/")
            path = STATIC / name
            if "/" in name or path.suffix not in STATIC_TYPES or not path.is_file():
                self._send(HTTPStatus.NOT_FOUND, b"not found", "text/plain")
                return
            self._send(HTTPStatus.OK, path.read_bytes(), STATIC_TYPES[path.suffix])

    try:
        return ExplorerServer((host, port), Handler)
    except OSError as e:
        raise ExploreError(
            f"cannot listen on {host}:{port} ({e.strerror or e}); is another explorer running? pick another --port"
        ) from None


def screenshot(server: ThreadingHTTPServer, path, width: int = 1500, height: int = 1000) -> None:
    """Serve in a thread, load the page in headless Chromium, save a PNG of it once drawn."""
    import tempfile

    from .headless import Chromium, find_chromium

    binary = find_chromium()
    if binary is None:
        raise RuntimeError("no chromium on the PATH (Debian: apt-get install chromium)")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with tempfile.TemporaryDirectory() as profile:
            browser = Chromium(binary, profile, width, height)
            try:
                browser.goto(f"http://{server.server_address[0]}:{server.server_address[1]}/")
                browser.wait_for("window.explorer && window.explorer.ready && !window.explorer.inflight")
                browser.wait_for(
                    "document.querySelectorAll('#neighbours tbody tr').length > 0 && "
                    "(!window.explorer.info.has_store || document.querySelectorAll('#meta tr').length > 0)",
                    timeout=20,
                )
                browser.screenshot(path)
            finally:
                browser.close()
    finally:
        server.shutdown()
        server.server_close()


def resolve_run(path) -> dict:
    """A run directory (or a folder of runs: the newest) -> its checkpoint, store, report and codes.

    Uses ``checkpoints/last.ckpt`` (the weights ``report.json`` was computed from) and the store
    named in ``split.json``; codes are ``codes.zarr`` in the run, made with ``encode`` when missing.
    """
    path = Path(path)
    if not path.is_dir():
        raise ExploreError(f"{path}: no such run directory")
    runs = (
        [path]
        if (path / "checkpoints").is_dir()
        else sorted((p for p in path.iterdir() if (p / "checkpoints").is_dir()), key=lambda p: p.name)
    )
    if not runs:
        raise ExploreError(f"{path}: not a run directory (no checkpoints/ in it or its subfolders)")
    run = runs[-1]
    ckpts = sorted((run / "checkpoints").glob("*.ckpt"), key=lambda p: p.stat().st_mtime)
    if not ckpts:
        raise ExploreError(f"{run}/checkpoints: no checkpoint yet")
    ckpt = run / "checkpoints" / "last.ckpt" if (run / "checkpoints" / "last.ckpt").exists() else ckpts[-1]
    try:
        store = json.loads((run / "split.json").read_text())["store"]
    except (OSError, KeyError, json.JSONDecodeError):
        raise ExploreError(
            f"{run}: no split.json naming the training store; pass --ckpt, --codes and --store"
        ) from None
    report = run / "report.json"
    return {
        "run": run,
        "ckpt": ckpt,
        "store": store,
        "report": report if report.exists() else None,
        "codes": run / "codes.zarr",
    }


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(
        prog="python -m spectra_lightning explore",
        description="Serve a local web page: sliders over the informative latent nodes decode spectra live; "
        "a node scatter, the nearest real spectra, MAD stems and the MI table beside them.",
    )
    p.add_argument(
        "--run",
        help="a run directory of `fit` (or runs/<config>: its newest run); finds the "
        "checkpoint, store and report, and encodes the store once into RUN/codes.zarr",
    )
    p.add_argument("--ckpt", help="checkpoint of a trained model")
    p.add_argument("--codes", help="codes from `encode` (CODES.zarr)")
    p.add_argument("--store", help="the store the codes were made from (default: the one named in the codes)")
    p.add_argument("--report", help="report.json of the run (MAD stems, MI table, informative nodes)")
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind (default: loopback only); requests must "
        "name it, an IP address, localhost or this machine in their Host header",
    )
    p.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="NAME",
        help="another host name the page may be opened under (e.g. behind a proxy); repeatable",
    )
    p.add_argument("--port", type=int, default=8050)
    p.add_argument("--device", default="cpu", help="cpu or cuda (decoding one spectrum is fast on a CPU)")
    p.add_argument(
        "--screenshot",
        metavar="PNG",
        help="render the page in headless Chromium, save it here and exit "
        "(for reports; needs a `chromium` on the PATH)",
    )
    a = p.parse_args(argv)
    if not a.run and not (a.ckpt and a.codes):
        p.error("give --run RUN_DIR, or --ckpt and --codes")
    try:
        if a.run:
            run = resolve_run(a.run)
            a.ckpt, a.store, a.report = a.ckpt or run["ckpt"], a.store or run["store"], a.report or run["report"]
            a.codes = a.codes or run["codes"]
            if not Path(a.codes).exists():
                from .encode import encode

                print(f"encoding {a.store} with {a.ckpt} -> {a.codes}", flush=True)
                encode(a.ckpt, a.store, a.codes, device=a.device)
        explorer = Explorer(a.ckpt, a.codes, a.store, a.report, a.device)
        server = make_server(explorer, a.host, a.port, tuple(a.allow_host))
    except (OSError, ValueError) as e:  # ExploreError, InputError, StoreError are ValueErrors
        print(f"explore: error: {e}", file=sys.stderr)
        return 2
    host, port = server.server_address[:2]
    if a.screenshot:
        try:
            screenshot(server, a.screenshot)
        except (OSError, RuntimeError, TimeoutError) as e:
            print(f"explore: error: screenshot failed: {e}", file=sys.stderr)
            return 2
        print(f"wrote {a.screenshot}")
        return 0
    print(
        f"explorer: {len(explorer.nodes)} informative nodes {explorer.nodes} over {len(explorer.mu):,} codes "
        f"-> http://{host}:{port}/  (Ctrl-C to stop)",
        flush=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
