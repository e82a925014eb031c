"""Explorer latency: what a slider move costs, from the bare decoder to the redrawn page.

    python benchmarks/explore_latency.py [--run runs/quickstart] [--out docs/benchmarks.md]

Needs a trained run (the README's main command makes ``runs/quickstart``). Measures, in one
run: the decoder forward alone (the baseline), ``Explorer.decode``, the HTTP ``/api/decode``
request as the page makes it (decimated to the plot width) and at full resolution, the
page's own slider-to-redraw time in headless Chromium (when a ``chromium`` is installed),
and k-NN retrieval over 100k and 1M codes.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import threading
import time
import urllib.request
from datetime import date

import numpy as np
import torch
from report import publish
from scipy.spatial import cKDTree

from spectra_lightning.analysis.encode import encode
from spectra_lightning.explorer.app import Explorer
from spectra_lightning.explorer.command import resolve_run
from spectra_lightning.explorer.headless import Chromium, find_chromium
from spectra_lightning.explorer.server import make_server


def median_ms(fn, repeat: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * float(np.median(times))


def browser_ms(url: str, moves: int) -> float:
    """Median time from a slider's input event to the finished redraw, measured by the page."""
    with tempfile.TemporaryDirectory() as profile:
        b = Chromium(find_chromium(), profile)
        try:
            b.goto(url + "/")
            b.wait_for("window.explorer && window.explorer.ready && !window.explorer.inflight")
            b.js("window.explorer.latency = []")
            for i in range(moves):
                version = b.js("window.explorer.version")
                b.js(
                    f"(() => {{ const s = document.getElementById('s0');"
                    f" s.value = +s.min + (+s.max - +s.min) * {(i % 10) / 9};"
                    f" s.dispatchEvent(new Event('input')); }})()"
                )
                b.wait_for(f"window.explorer.version > {version} && !window.explorer.inflight")
            return float(np.median(b.js("window.explorer.latency")))
        finally:
            b.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", default="runs/quickstart")
    p.add_argument("--repeat", type=int, default=50)
    p.add_argument("--out")
    a = p.parse_args()
    run = resolve_run(a.run)
    if not run["codes"].exists():
        encode(run["ckpt"], run["store"], run["codes"], progress=False)
    ex = Explorer(run["ckpt"], run["codes"], run["store"], run["report"])
    h = ex.model.hparams
    values = ex.range[2]
    z = torch.as_tensor(ex.code(values)[None])
    with torch.no_grad():
        t_forward = median_ms(lambda: ex.model.net.decoder(z), a.repeat)
    t_decode = median_ms(lambda: ex.decode(values), a.repeat)
    server = make_server(ex, port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    q = ",".join(map(repr, values.tolist()))

    def http(n):
        with urllib.request.urlopen(f"{url}/api/decode?z={q}&n={n}") as r:
            return json.loads(r.read())

    t_http_plot = median_ms(lambda: http(1200), a.repeat)
    t_http_full = median_ms(lambda: http(0), a.repeat)
    t_page = browser_ms(url, 30) if find_chromium() else None
    server.shutdown()

    from spectra_lightning.model.nets import ConvAutoencoder

    full = ConvAutoencoder(latent_dim=ex.model.latent_dim).decoder.eval()  # the paper's size, untrained weights
    with torch.no_grad():
        t_full = median_ms(lambda: full(z), 5)

    rng = np.random.default_rng(0)
    knn = {}
    for n in (100_000, 1_000_000):
        codes = rng.standard_normal((n, len(ex.nodes))).astype(np.float32)
        t0 = time.perf_counter()
        tree = cKDTree(codes)
        build = time.perf_counter() - t0
        knn[n] = (build, median_ms(lambda: tree.query(codes[0] + 0.01, k=10), a.repeat))

    page = f"{t_page:.0f} ms" if t_page is not None else "not measured (no chromium)"
    lines = [
        f"## Explorer latency ({date.today().isoformat()})",
        "",
        f"`python benchmarks/explore_latency.py --run {a.run}` on {platform.machine()}, {torch.get_num_threads()} "
        f"torch threads, CPU: the quickstart model ({ex.model.latent_dim} nodes, depth {ex.model.net.depth}, {h.n_pixels:,} px), "
        f"{len(ex.mu):,} codes, {len(ex.nodes)} informative nodes; medians of {a.repeat}.",
        "",
        "| step | time | × decoder forward |",
        "|---|---|---|",
        f"| decoder forward, one code (baseline) | {t_forward:.1f} ms | 1.0 |",
        f"| `Explorer.decode` (code assembly + forward) | {t_decode:.1f} ms | {t_decode / t_forward:.1f} |",
        f"| HTTP `/api/decode`, decimated to 1,200 px (what the page asks) | {t_http_plot:.1f} ms | "
        f"{t_http_plot / t_forward:.1f} |",
        f"| HTTP `/api/decode`, all {ex.grid.n_pixels:,} px | {t_http_full:.1f} ms | {t_http_full / t_forward:.1f} |",
        f"| page: slider input → redrawn canvas (headless Chromium) | {page} | "
        f"{'' if t_page is None else f'{t_page / t_forward:.1f}'} |",
        f"| full-size decoder (327,680 px, depth 15), one code, for scale | {t_full:.0f} ms | "
        f"{t_full / t_forward:.0f} |",
        "",
        "k-NN retrieval (k = 10) in the informative-node subspace, cKDTree:",
        "",
        "| codes | build | query |",
        "|---|---|---|",
        *[f"| {n:,} | {b:.2f} s | {q_ms:.2f} ms |" for n, (b, q_ms) in knn.items()],
        "",
        "Target: a redraw within ~0.2 s on a CPU for the quickstart model.",
    ]
    publish(lines, a.out)


if __name__ == "__main__":
    main()
