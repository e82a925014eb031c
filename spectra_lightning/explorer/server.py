"""The explorer's HTTP side: a stdlib threaded server in front of an :class:`~spectra_lightning.explorer.app.Explorer`
(a JSON API and the static page in ``static/``), its ``Host`` check, and page screenshots."""

from __future__ import annotations

import ipaddress
import json
import secrets
import socket
import threading
from http import HTTPStatus
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import cast
from urllib.parse import parse_qs, urlparse

from spectra_lightning.explorer.app import ExploreError, Explorer
from spectra_lightning.store import DamagedStoreError

STATIC = Path(__file__).with_name("static")
STATIC_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript", ".css": "text/css"}


LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1"}
TOKEN_COOKIE = "spectra_lightning_token"
REQUEST_TIMEOUT_S = 30.0  # a connection idle this long mid-request is closed


def is_loopback(host: str) -> bool:
    """Does binding ``host`` keep the server on this machine?"""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def machine_addresses(host: str) -> list[str]:
    """The addresses a browser elsewhere can use for a server bound to ``host`` (``0.0.0.0`` / ``::``: this
    machine's own addresses as its name resolves, without asking the network)."""
    if host not in ("0.0.0.0", "::", ""):
        return [host]
    found = []
    for name in (socket.gethostname(), socket.getfqdn()):
        try:
            infos = socket.getaddrinfo(name, None, type=socket.SOCK_STREAM)
        except OSError:
            continue
        for info in infos:
            address = str(info[4][0])
            if address not in found and not ipaddress.ip_address(address).is_loopback:
                found.append(address)
    return found or [socket.gethostname()]


def host_allowed(header: str | None, names: set[str], port: int, ips: set[str] | None = None) -> bool:
    """Is a request's ``Host`` header one this server answers to? Against DNS rebinding: a page on another
    site can make the browser send requests here, but only ever with that site's name in ``Host``. Names
    must be ours (``names``); IP literals cannot be rebound, so they pass (``ips`` given: only those and
    loopback ones); the port must be ours."""
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
        ip = ipaddress.ip_address(name)
    except ValueError:
        return name in names
    return ips is None or ip.is_loopback or str(ip) in ips


def same(given: str, token: str) -> bool:
    """A constant-time comparison of a given token with ours, for any text given (``compare_digest`` refuses
    strings with non-ASCII characters: compared as UTF-8 bytes)."""
    return secrets.compare_digest(given.encode("utf-8", "surrogateescape"), token.encode())


class ExplorerServer(ThreadingHTTPServer):
    """A threading HTTP server with a deep listen queue (a burst of decodes must not be refused), holding what its
    handlers answer with: the ``explorer``, the host names and addresses requests may name, and the ``token``."""

    request_queue_size = 256
    daemon_threads = True

    def __init__(self, address, handler, explorer: Explorer, names: set[str], ips: set[str] | None, token):
        super().__init__(address, handler)
        self.explorer, self.names, self.ips, self.token = explorer, names, ips, token


class Handler(BaseHTTPRequestHandler):
    """One request: the Host check, the token check, then the JSON API (``/api/...``) or a static file."""

    server: ExplorerServer
    # headers and body go out in two writes; with Nagle on, the body waits ~40 ms for an ACK
    disable_nagle_algorithm = True
    timeout = REQUEST_TIMEOUT_S  # the socket's: an idle or half-sent connection is dropped, not held

    def log_message(self, *args):  # quiet: the terminal shows the URL, not every request
        pass

    def _host_ok(self) -> bool:
        port = cast(tuple[str, int], self.server.server_address)[1]
        if host_allowed(self.headers.get("Host"), self.server.names, port, self.server.ips):
            return True
        self._send(HTTPStatus.MISDIRECTED_REQUEST, b"unknown Host: open the address the explorer printed", "text/plain")
        return False

    def _token_ok(self, query: dict) -> tuple[bool, bool]:
        """(allowed, set the cookie)."""
        token = self.server.token
        if token is None:
            return True, False
        given = query.get("token")
        if given is not None and same(given, token):
            return True, True
        cookie = SimpleCookie(self.headers.get("Cookie") or "")
        if TOKEN_COOKIE in cookie and same(cookie[TOKEN_COOKIE].value, token):
            return True, False
        auth = self.headers.get("Authorization") or ""
        return auth.startswith("token ") and same(auth[6:].strip(), token), False

    def _send(self, status, body: bytes, ctype: str, cookie: bool = False):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        if cookie:
            self.send_header("Set-Cookie", f"{TOKEN_COOKIE}={self.server.token}; Path=/; HttpOnly; SameSite=Strict")
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if not self._host_ok():
            return
        url = urlparse(self.path)
        q = {k: v[-1] for k, v in parse_qs(url.query).items()}
        allowed, cookie = self._token_ok(q)
        if not allowed:
            body = b'{"error": "open the address with ?token= the explorer printed"}'
            self._send(HTTPStatus.FORBIDDEN, body, "application/json")
        elif url.path.startswith("/api/"):
            q.pop("token", None)
            body, status = self._answer(url.path[5:], q)
            self._send(status, json.dumps(body).encode(), "application/json", cookie)
        else:
            self._static(url.path, cookie)

    def _answer(self, endpoint: str, query: dict) -> tuple[dict, HTTPStatus]:
        """The API's answer and its status; never a dropped connection: the page shows the reason."""
        try:
            return self.server.explorer.handle(endpoint, query), HTTPStatus.OK
        except KeyError as e:
            return {"error": f"no such endpoint or parameter: {e}"}, HTTPStatus.NOT_FOUND
        except DamagedStoreError as e:  # the data, not the request: a server-side failure
            return {"error": str(e)}, HTTPStatus.INTERNAL_SERVER_ERROR
        except ValueError as e:
            return {"error": str(e)}, HTTPStatus.BAD_REQUEST
        except Exception as e:
            reason = f"internal error: {type(e).__name__}: {' '.join(str(e).split())[:300]}"
            return {"error": reason}, HTTPStatus.INTERNAL_SERVER_ERROR

    def _static(self, path: str, cookie: bool) -> None:
        name = "index.html" if path in ("/", "/index.html") else path.removeprefix("/static/")
        file = STATIC / name
        if "/" in name or file.suffix not in STATIC_TYPES or not file.is_file():
            self._send(HTTPStatus.NOT_FOUND, b"not found", "text/plain")
            return
        self._send(HTTPStatus.OK, file.read_bytes(), STATIC_TYPES[file.suffix], cookie)


def make_server(
    explorer: Explorer,
    host: str = "127.0.0.1",
    port: int = 8050,
    allowed_hosts: tuple[str, ...] = (),
    token: str | None = None,
    timeout: float = REQUEST_TIMEOUT_S,
) -> ExplorerServer:
    """An HTTP server (not yet serving) for ``explorer``; port 0 picks a free one. It answers requests whose
    ``Host`` is ``localhost``, ``host``, this machine's name or one of ``allowed_hosts``, or an IP address
    (off loopback: one of this machine's; 421 otherwise: DNS rebinding). With a ``token``, every request must
    carry it: ``?token=`` (the page then keeps it in a cookie), the cookie, or ``Authorization: token T``
    (403 otherwise). A connection that sends nothing for ``timeout`` seconds is closed (a half-sent request would
    otherwise hold its thread forever)."""
    names = {n.lower() for n in (host, *allowed_hosts, *LOOPBACK_NAMES, socket.gethostname(), socket.getfqdn())}
    ips = None if is_loopback(host) else {host, *machine_addresses(host), *allowed_hosts}
    handler = type("TimedHandler", (Handler,), {"timeout": timeout})
    try:
        return ExplorerServer((host, port), handler, explorer, names, ips, token)
    except OSError as e:
        raise ExploreError(
            f"cannot listen on {host}:{port} ({e.strerror or e}); is another explorer running? pick another --port"
        ) from None


def screenshot(server: ThreadingHTTPServer, path, width: int = 1500, height: int = 1000) -> None:
    """Serve in a thread, load the page in headless Chromium, save a PNG of it once drawn."""
    import tempfile

    from spectra_lightning.explorer.headless import Chromium, find_chromium

    binary = find_chromium()
    if binary is None:
        raise RuntimeError("no chromium on the PATH (Debian: apt-get install chromium)")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with tempfile.TemporaryDirectory() as profile:
            browser = Chromium(binary, profile, width, height)
            try:
                host, port = str(server.server_address[0]), int(server.server_address[1])
                browser.goto(f"http://{host}:{port}/")
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
