"""The explorer's HTTP side: a stdlib threaded server in front of an :class:`~spectra_lightning.explorer.Explorer`
(a JSON API and the static page in ``explorer_static/``), its ``Host`` check, and page screenshots."""

from __future__ import annotations

import ipaddress
import json
import socket
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from .explorer import ExploreError, Explorer

STATIC = Path(__file__).with_name("explorer_static")
STATIC_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript", ".css": "text/css"}


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
