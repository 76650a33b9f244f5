"""``tessera serve --www --client-cert-path PREFIX``: a client certificate for some paths only.

The way IIS (per directory) and Apache (``SSLVerifyClient`` in a ``<Location>``) do it:

1. the handshake asks for no certificate; the client sends its request;
2. the path is under a prefix that needs one, and the connection has none: the request (its
   body up to :data:`MAX_BUFFERED_BODY` bytes, Apache's ``SSLRenegBufferSize`` default; a
   larger one gets 413) is kept while the server asks for the certificate — TLS 1.2: a
   renegotiation whose resumption is refused, so that a full handshake carries the
   CertificateRequest; TLS 1.3: post-handshake authentication, when the client offered it;
3. then the kept request is answered: 200 with the certificate's subject, or 403 saying why
   there is none.

No protocol decision here: the connection (``request_client_certificate``) makes them.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

from ..crypto.x509 import describe_name
from ..enums import ProtocolVersion
from ..errors import LocalProtocolError
from ..events import ConnectionInfo, RenegotiationDeclined
from ..io.aio import TLSProtocol

MAX_BUFFERED_BODY = 128 * 1024
LINGER_SECONDS = 2.0
LINGER_BYTES = 1 << 20


@dataclass(frozen=True, slots=True)
class Outcome:
    """What to answer: an HTTP status, lines for the page, one line for the server's log."""

    status: str
    lines: tuple[str, ...]
    log: str
    linger: bool = False  # unread request bytes may follow: read them away before closing


def request_target(head: bytes) -> tuple[str, str]:
    """(method, path) from the request line; ("", "") when there is none."""
    line = head.split(b"\n", 1)[0].decode("latin-1").strip()
    parts = line.split()
    if len(parts) < 2:
        return "", ""
    return parts[0], parts[1]


def protected_prefix(path: str, prefixes: tuple[str, ...]) -> str | None:
    for prefix in prefixes:
        if path == prefix or path.startswith(prefix.rstrip("/") + "/"):
            return prefix
    return None


def _content_length(head: bytes) -> int | None:
    """The Content-Length (0 without one); None for a body of unknown length (chunked)."""
    length = 0
    for raw in head.split(b"\n")[1:]:
        name, _, value = raw.decode("latin-1").partition(":")
        key = name.strip().lower()
        if key == "transfer-encoding":
            return None
        if key == "content-length" and value.strip().isdigit():
            length = int(value.strip())
    return length


async def read_body(reader: asyncio.StreamReader, head: bytes, rest: bytes) -> bytes | Outcome:
    """The request body (what came with the head, plus the rest of Content-Length), or the
    answer when it cannot be kept."""
    length = _content_length(head)
    if length is None:
        return Outcome(
            "411 Length Required",
            ("A request to this path is kept while the client certificate is requested; it "
             "needs a Content-Length (no chunked body).",),
            "411: chunked body on a client-certificate path", linger=True,
        )  # fmt: skip
    if length > MAX_BUFFERED_BODY:
        return Outcome(
            "413 Request Entity Too Large",
            (f"A request to this path is kept while the client certificate is requested; its "
             f"body ({length} bytes) is larger than {MAX_BUFFERED_BODY} bytes.",),
            f"413: body of {length} bytes over {MAX_BUFFERED_BODY}", linger=True,
        )  # fmt: skip
    body = rest
    while len(body) < length:
        chunk = await reader.read(length - len(body))
        if not chunk:
            break
        body += chunk
    return body[:length]


async def authenticate(tls: TLSProtocol, method: str, path: str, body: bytes,
                       timeout: float) -> Outcome:  # fmt: skip
    """Ask for the client certificate if the connection has none; the page that answers."""
    info = _info(tls)
    asked = not info.peer_certificates
    if asked:
        try:
            info = await tls.request_client_certificate(timeout)
        except LocalProtocolError as e:
            reason = str(e).removeprefix("cannot ask for a client certificate: ")
            return _forbidden(path, reason.removeprefix("cannot renegotiate: "))
    declined = (
        asked
        and bool(tls.handshake_notices)
        and (isinstance(tls.handshake_notices[-1], RenegotiationDeclined))
    )
    if declined:
        return _forbidden(path, "the client declined to renegotiate (no_renegotiation)")
    if not info.peer_certificates:
        return _forbidden(path, "the client sent no certificate")
    how = _how(info) if asked else "the handshake (the connection had it already)"
    subject = describe_name(info.peer_certificates[0].subject)
    lines = (
        f"Client certificate subject: {subject}",
        f"Client certificate issuer: {describe_name(info.peer_certificates[0].issuer)}",
        f"Obtained by: {how}",
        f"Request: {method} {path} ({len(body)} body bytes kept meanwhile)",
    )
    return Outcome("200 ok", lines, f"{path}: client certificate {subject} by {how}")


def _info(tls: TLSProtocol) -> ConnectionInfo:
    info = tls.conn.info
    if info is None:
        raise LocalProtocolError("the handshake has not completed")
    return info


def _how(info: ConnectionInfo) -> str:
    if info.version == ProtocolVersion.TLS1_3:
        return "post-handshake authentication (TLS 1.3)"
    decision = info.resumption.describe() if info.resumption is not None else "full handshake"
    return f"renegotiation (TLS 1.2): {decision}"


def _forbidden(path: str, reason: str) -> Outcome:
    return Outcome(
        "403 Forbidden",
        (f"{path} needs a client certificate: {reason}.",),
        f"403 for {path}: {reason}",
    )


async def linger(reader: asyncio.StreamReader) -> None:
    """Read away what the client still sends (a body we did not take), for a short while, so
    that closing does not reset the connection before it has read our answer."""
    taken = 0
    with contextlib.suppress(OSError, TimeoutError):
        async with asyncio.timeout(LINGER_SECONDS):
            while taken < LINGER_BYTES:
                chunk = await reader.read(1 << 16)
                if not chunk:
                    return
                taken += len(chunk)
