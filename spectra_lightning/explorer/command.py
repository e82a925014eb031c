"""``explore``: a local web app to move latent nodes, watch the decoded spectrum, and retrieve
the nearest real spectra (the paper's "sliders" and "RETR-SPECT" pages, offline).

Stack: the standard library's threaded HTTP server, a JSON API, and one static page of
plain JavaScript drawing on ``<canvas>`` (``static/``). No extra dependency and no
CDN: a slider move costs one decoder forward plus a few kB of JSON (see
``docs/explorer.md`` for the measured latency and why not Dash/Panel).

This module is the command (which run, which files, the server's lifetime); :class:`Explorer`
(``explorer.py``) answers the page's queries, ``explorer_server.py`` puts it behind HTTP.
"""

from __future__ import annotations

import argparse
import secrets
import sys
from typing import cast

from spectra_lightning.analysis.runs import resolve_run, run_codes
from spectra_lightning.explorer.app import Explorer
from spectra_lightning.explorer.server import is_loopback, machine_addresses, make_server, screenshot
from spectra_lightning.model.parts import add_allow_option, allowing


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def parser() -> argparse.ArgumentParser:
    """The ``explore`` command's options."""
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
    p.add_argument("--port", type=int, default=8050, help="the port to serve on (default %(default)s; 0: any free one)")
    p.add_argument(
        "--no-token",
        action="store_true",
        help="off loopback, serve without the access token (anyone who can reach the port sees the page)",
    )
    p.add_argument("--device", default="cpu", help="cpu or cuda (decoding one spectrum is fast on a CPU)")
    p.add_argument(
        "--screenshot",
        metavar="PNG",
        help="render the page in headless Chromium, save it here and exit "
        "(for reports; needs a `chromium` on the PATH)",
    )
    add_allow_option(p)
    return p


def main(argv: list[str]) -> int:
    """The ``explore`` command: build the explorer and its server, then take a screenshot or serve."""
    p = parser()
    a = p.parse_args(argv)
    if not a.run and not (a.ckpt and a.codes):
        p.error("give --run RUN_DIR, or --ckpt and --codes")
    try:
        with allowing(a.allow_module):
            explorer = build_explorer(a)
        exposed = not is_loopback(a.host)
        token = secrets.token_urlsafe(24) if exposed and not a.no_token else None
        server = make_server(explorer, a.host, a.port, tuple(a.allow_host), token)
    except (OSError, ValueError) as e:  # ExploreError, RunError, InputError, StoreError are ValueErrors
        print(f"explore: error: {e}", file=sys.stderr)
        return 2
    if a.screenshot:
        try:
            screenshot(server, a.screenshot)
        except (OSError, RuntimeError, TimeoutError) as e:
            print(f"explore: error: screenshot failed: {e}", file=sys.stderr)
            return 2
        print(f"wrote {a.screenshot}")
        return 0
    serve(server, explorer, a.host, exposed, token)
    return 0


def build_explorer(a: argparse.Namespace) -> Explorer:
    """The explorer of ``--run`` (its checkpoint, store and report; its store encoded once into RUN/codes.zarr)
    or of the files given."""
    if a.run:
        run = resolve_run(a.run)
        a.ckpt, a.store, a.report = a.ckpt or run["ckpt"], a.store or run["store"], a.report or run["report"]
        a.codes = a.codes or run_codes(run, a.device)
    return Explorer(a.ckpt, a.codes, a.store, a.report, a.device)


def serve(server, explorer: Explorer, bind: str, exposed: bool, token: str | None) -> None:
    """Say where the page is (and warn when it is open beyond this machine), then serve until Ctrl-C."""
    host, port = cast(tuple[str, int], server.server_address[:2])
    if exposed:
        guard = "without a token (--no-token)" if token is None else "with the access token below"
        print(f"explore: warning: serving beyond this machine on {host}:{port}, {guard}", file=sys.stderr, flush=True)
    query = f"?token={token}" if token else ""
    urls = [f"http://{_url_host(h)}:{port}/{query}" for h in (machine_addresses(bind) if exposed else [host])]
    print(
        f"explorer: {len(explorer.nodes)} informative nodes {explorer.nodes} over {len(explorer.mu):,} codes "
        f"-> {'  '.join(urls)}  (Ctrl-C to stop)",
        flush=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
