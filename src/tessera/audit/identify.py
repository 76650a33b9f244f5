"""First contact with an address: can it be audited at all, and which server software is it.

One connection, before the probes: TCP, a TLS handshake (any version tessera speaks) and, unless
``--server-type`` says what the server is, one HTTP request (``GET /``) whose answer may name
the software — the ``Server`` header (nginx, Apache, Caddy, lighttpd, ...), the status page of
``openssl s_server -www``, ``tessera serve --www``'s page, HAProxy's own error pages, Express's
``X-Powered-By``. A server that does not speak HTTP answers nothing useful and stays
unidentified; the remedies are then generic. Nothing is guessed: the evidence is shown.

An address that refuses TCP or fails every TLS handshake cannot be audited: one message says
so, and ``tessera check`` exits 3.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from enum import Enum

from ..addresses import describe_os_error
from ..config import ClientConfig
from ..errors import TLSError
from ..io.blocking import TLSSocket
from .probe import Endpoint

HTTP_WAIT = 2.0  # seconds to wait for an HTTP answer (a server that is not HTTP sends none)
HTTP_LIMIT = 32 * 1024  # bytes of the answer read at most


class ServerKind(Enum):
    """The server software a remedy is written for (``--server-type``)."""

    NGINX = "nginx"
    HAPROXY = "haproxy"
    NODE = "node"
    APACHE = "apache"
    OPENSSL = "openssl"  # an OpenSSL-based server in general (openssl s_server among them)
    TESSERA = "tessera"
    GENERIC = "generic"  # unidentified

    @property
    def title(self) -> str:
        return _TITLES[self]


_TITLES = {
    ServerKind.NGINX: "nginx",
    ServerKind.HAPROXY: "HAProxy",
    ServerKind.NODE: "Node.js",
    ServerKind.APACHE: "Apache httpd (mod_ssl)",
    ServerKind.OPENSSL: "an OpenSSL-based server",
    ServerKind.TESSERA: "tessera",
    ServerKind.GENERIC: "unidentified",
}


@dataclass(frozen=True, slots=True)
class Identity:
    kind: ServerKind
    product: str | None  # as the server named itself (e.g. "nginx/1.22.1")
    evidence: str  # what showed it ("HTTP Server header: nginx/1.22.1", "--server-type")

    @property
    def label(self) -> str:
        if self.kind is ServerKind.GENERIC:
            return f"server {self.product}" if self.product else "server unidentified"
        return self.product or self.kind.title


@dataclass(frozen=True, slots=True)
class Contact:
    """What the first connection to an address showed."""

    endpoint: Endpoint
    reachable: bool  # a TLS handshake completed
    error: str | None  # why not, in one message
    version: str | None
    identity: Identity


# (pattern over the Server header, kind); the first match wins.
_SERVER_HEADERS = (
    (re.compile(r"^nginx|^openresty", re.I), ServerKind.NGINX),
    (re.compile(r"^apache", re.I), ServerKind.APACHE),
    (re.compile(r"^haproxy", re.I), ServerKind.HAPROXY),
    (re.compile(r"^tessera", re.I), ServerKind.TESSERA),
)
# (marker in the body, kind, what it is)
_BODY_MARKERS = (
    (b"s_server -accept", ServerKind.OPENSSL, "openssl s_server"),
    (b"<title>tessera</title>", ServerKind.TESSERA, "tessera serve"),
    (b"No server is available to handle this request", ServerKind.HAPROXY, "HAProxy"),
)


def given(kind: ServerKind) -> Identity:
    """The identity ``--server-type`` states."""
    return Identity(kind, None, "--server-type")


def first_contact(endpoint: Endpoint, timeout: float, kind: ServerKind | None = None) -> Contact:
    """Connect and handshake; unless ``kind`` is given, ask for ``/`` over HTTP and identify
    the server from the answer. Never raises for what the network or the server does."""
    config = ClientConfig(verify=False)
    try:
        tls = TLSSocket.connect(
            (endpoint.host, endpoint.port), config, endpoint.sni, timeout=timeout
        )
    except TLSError as e:
        error = f"{endpoint.label}: no TLS handshake ({type(e).__name__}: {e})"
        return Contact(endpoint, False, error, None, _unknown("no TLS handshake"))
    except OSError as e:
        error = f"cannot connect to {endpoint.label}: {describe_os_error(e)}"
        return Contact(endpoint, False, error, None, _unknown("not reachable"))
    with tls:
        version = tls.info.version.label
        if kind is not None:
            return Contact(endpoint, True, None, version, given(kind))
        answer = _http_get(tls, endpoint, min(timeout, HTTP_WAIT))
    return Contact(endpoint, True, None, version, identify(answer))


def _unknown(evidence: str) -> Identity:
    return Identity(ServerKind.GENERIC, None, evidence)


def _http_get(tls: TLSSocket, endpoint: Endpoint, wait: float) -> bytes:
    """``GET /`` and what came back within ``wait`` seconds (at most ``HTTP_LIMIT`` bytes);
    stops early once the answer is plainly not HTTP, or complete."""
    host = endpoint.sni or endpoint.host
    request = (
        f"GET / HTTP/1.1\r\nHost: {host}\r\nUser-Agent: tessera-check\r\n"
        "Accept: */*\r\nConnection: close\r\n\r\n"
    )
    answer = b""
    deadline = time.monotonic() + wait
    try:
        tls.sendall(request.encode())
        while len(answer) < HTTP_LIMIT and not _complete(answer):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            tls.settimeout(left)
            chunk = tls.recv(HTTP_LIMIT - len(answer))
            if not chunk:
                break
            answer += chunk
    except (TLSError, OSError):
        pass  # what arrived is all there is
    return answer


def _complete(answer: bytes) -> bool:
    """An answer that is not HTTP, or whose headers and announced body have arrived."""
    if len(answer) >= 5 and not answer.startswith(b"HTTP/"):
        return True
    head, sep, body = answer.partition(b"\r\n\r\n")
    if not sep:
        return False
    length = re.search(rb"(?im)^content-length:\s*(\d+)\s*$", head)
    return length is not None and len(body) >= int(length[1])


def identify(answer: bytes) -> Identity:
    """The server software an HTTP answer names, with the evidence."""
    if not answer.startswith(b"HTTP/"):
        return _unknown("no HTTP answer to GET /" if not answer else "not an HTTP server")
    head, _, body = answer.partition(b"\r\n\r\n")
    headers = _headers(head)
    server = headers.get("server")
    if server:
        for pattern, kind in _SERVER_HEADERS:
            if pattern.search(server):
                return Identity(kind, server, f"HTTP Server header: {server}")
    for marker, kind, name in _BODY_MARKERS:
        if marker in body:
            return Identity(kind, name, f"its HTTP answer is {name}'s page")
    powered = headers.get("x-powered-by", "")
    if powered.lower().startswith("express"):
        return Identity(ServerKind.NODE, f"Node.js ({powered})", f"X-Powered-By: {powered}")
    if server:
        return Identity(ServerKind.GENERIC, server, f"HTTP Server header: {server}")
    return _unknown("its HTTP answer does not name the server")


def _headers(head: bytes) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in head.decode("latin-1").split("\r\n")[1:]:
        name, sep, value = line.partition(":")
        if sep:
            out.setdefault(name.strip().lower(), value.strip()[:100])
    return out
