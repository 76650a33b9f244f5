"""What ``ssl.SSLObject`` tells about a connection, answered from a tessera connection.

:class:`SSLInfo` is shared by the front ends: ``TLSSocket`` inherits it (so it answers
``version()``, ``cipher()``, ``getpeercert()``... like ``ssl.SSLSocket``) and the asyncio
transport hands one out as ``get_extra_info("ssl_object")``. :func:`peercert_dict` renders a
certificate the way ``SSLSocket.getpeercert()`` does (the same dict as CPython's
``ssl._ssl._test_decode_cert``), for code written against the standard library.
"""

from __future__ import annotations

import datetime
import ipaddress
import socket
from types import TracebackType
from typing import Any, Self, TypeAlias, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtensionOID

from ..config import ClientAuth
from ..connection import ClientConnection, ServerConnection
from ..crypto.suites import BulkCipher
from ..errors import LocalProtocolError
from ..events import ConnectionInfo
from ..session.model import ClientSession

# OpenSSL's long names where cryptography's differ.
_LONG_NAMES = {"userID": "userId"}


# What getpeercert() gives, as ``ssl`` does: strings, numbers and nested tuples of them.
PeerCertValue: TypeAlias = "str | int | tuple[PeerCertValue, ...]"
PeerCert: TypeAlias = dict[str, PeerCertValue]
Address: TypeAlias = Any  # a socket address, as typeshed's socket._RetAddress
E = TypeVar("E", bound=x509.ExtensionType)


def _name(name: x509.Name) -> tuple[tuple[tuple[str, str], ...], ...]:
    out = []
    for rdn in name.rdns:
        pairs = []
        for attr in rdn:
            label = getattr(attr.oid, "_name", None) or attr.oid.dotted_string
            if label == "Unknown OID":
                label = attr.oid.dotted_string
            value = attr.value if isinstance(attr.value, str) else attr.value.hex()
            pairs.append((_LONG_NAMES.get(label, label), value))
        out.append(tuple(pairs))
    return tuple(out)


def _asn1_time(when: datetime.datetime) -> str:
    """OpenSSL's ASN1_TIME_print: ``May  9 00:00:00 2007 GMT``."""
    return f"{when:%b} {when.day:2d} {when:%H:%M:%S} {when.year} GMT"


def _ip(address: object) -> str:
    if isinstance(address, ipaddress.IPv6Address):
        return ":".join(
            f"{int.from_bytes(address.packed[i : i + 2], 'big'):X}" for i in range(0, 16, 2)
        )
    return str(address)


def _general_names(names: x509.SubjectAlternativeName) -> tuple[tuple[str, PeerCertValue], ...]:
    out: list[tuple[str, PeerCertValue]] = []
    for n in names:
        if isinstance(n, x509.DNSName):
            out.append(("DNS", n.value))
        elif isinstance(n, x509.IPAddress):
            out.append(("IP Address", _ip(n.value)))
        elif isinstance(n, x509.RFC822Name):
            out.append(("email", n.value))
        elif isinstance(n, x509.UniformResourceIdentifier):
            out.append(("URI", n.value))
        elif isinstance(n, x509.DirectoryName):
            out.append(("DirName", _name(n.value)))
        elif isinstance(n, x509.RegisteredID):
            out.append(("Registered ID", n.value.dotted_string))
        else:
            out.append(("othername", "<unsupported>"))
    return tuple(out)


def _extension(cert: x509.Certificate, oid: x509.ObjectIdentifier, kind: type[E]) -> E | None:
    try:
        value = cert.extensions.get_extension_for_oid(oid).value
    except (x509.ExtensionNotFound, ValueError):
        return None
    return value if isinstance(value, kind) else None


def peercert_dict(cert: x509.Certificate) -> PeerCert:
    """``cert`` as ``ssl.SSLSocket.getpeercert()`` returns a validated certificate."""
    serial = format(cert.serial_number, "X")
    out: PeerCert = {
        "subject": _name(cert.subject),
        "issuer": _name(cert.issuer),
        "version": cert.version.value + 1,
        "serialNumber": serial.zfill(len(serial) + len(serial) % 2),
        "notBefore": _asn1_time(cert.not_valid_before_utc),
        "notAfter": _asn1_time(cert.not_valid_after_utc),
    }
    san = _extension(cert, ExtensionOID.SUBJECT_ALTERNATIVE_NAME, x509.SubjectAlternativeName)
    if san is not None:
        out["subjectAltName"] = _general_names(san)
    aia = _extension(
        cert, ExtensionOID.AUTHORITY_INFORMATION_ACCESS, x509.AuthorityInformationAccess
    )
    if aia is not None:
        for key, method in (
            ("OCSP", AuthorityInformationAccessOID.OCSP),
            ("caIssuers", AuthorityInformationAccessOID.CA_ISSUERS),
        ):
            uris = tuple(
                d.access_location.value
                for d in aia
                if d.access_method == method
                and isinstance(d.access_location, x509.UniformResourceIdentifier)
            )
            if uris:
                out[key] = uris
    crl = _extension(cert, ExtensionOID.CRL_DISTRIBUTION_POINTS, x509.CRLDistributionPoints)
    if crl is not None:
        uris = tuple(
            n.value
            for point in crl
            for n in point.full_name or ()
            if isinstance(n, x509.UniformResourceIdentifier)
        )
        if uris:
            out["crlDistributionPoints"] = uris
    return out


def secret_bits(info: ConnectionInfo) -> int:
    suite = info.cipher_suite
    return 256 if suite.cipher is BulkCipher.CHACHA20_POLY1305 else suite.key_len * 8


class SSLInfo:
    """``ssl.SSLObject``'s questions about a connection (``conn``), answered by tessera."""

    conn: ClientConnection | ServerConnection

    @property
    def server_side(self) -> bool:
        return isinstance(self.conn, ServerConnection)

    @property
    def server_hostname(self) -> str | None:
        conn = self.conn
        return conn.server_name if isinstance(conn, ClientConnection) else None

    def _info(self) -> ConnectionInfo | None:
        return self.conn.info

    def version(self) -> str | None:
        """``"TLSv1.3"`` or ``"TLSv1.2"``; None before the handshake completed."""
        info = self._info()
        return None if info is None else info.version.label

    def cipher(self) -> tuple[str, str, int] | None:
        """(suite name as OpenSSL spells it, protocol version, secret bits), as ``ssl``."""
        info = self._info()
        if info is None:
            return None
        return (info.cipher_suite.openssl_name, info.version.label, secret_bits(info))

    def compression(self) -> None:
        return None  # TLS compression is refused

    def selected_alpn_protocol(self) -> str | None:
        info = self._info()
        return None if info is None else info.alpn_protocol

    def selected_npn_protocol(self) -> None:
        return None

    def _peer_verified(self) -> bool:
        conn = self.conn
        if isinstance(conn, ClientConnection):
            return conn.config.verify
        return conn.config.client_auth is not ClientAuth.NONE

    def getpeercert(self, binary_form: bool = False) -> PeerCert | bytes | None:
        """The peer's certificate: as DER with ``binary_form``, else as a dict once validated
        (``{}`` when it was not validated, None when the peer sent none), as ``ssl`` does."""
        info = self._info()
        if info is None:
            raise ValueError("handshake not done yet")
        if not info.peer_certificates:
            return None
        leaf = info.peer_certificates[0]
        if binary_form:
            return leaf.public_bytes(Encoding.DER)
        return peercert_dict(leaf) if self._peer_verified() else {}

    @property
    def session(self) -> ClientSession | None:
        """A client's latest resumable session (pass it as ``session=`` next time)."""
        conn = self.conn
        return conn.session if isinstance(conn, ClientConnection) else None

    @property
    def session_reused(self) -> bool:
        info = self._info()
        return info is not None and info.resumed

    @property
    def connection_info(self) -> ConnectionInfo:
        info = self._info()
        if info is None:
            raise LocalProtocolError("the handshake has not completed")
        return info


class SSLObjectView(SSLInfo):
    """An ``ssl.SSLObject`` look-alike over a connection (asyncio's ``ssl_object``)."""

    def __init__(self, conn: ClientConnection | ServerConnection) -> None:
        self.conn = conn

    def __repr__(self) -> str:
        return f"<tessera SSLObjectView {self.version() or 'handshaking'}>"


class SocketDelegate:
    """The plain socket calls of a wrapper, passed to the socket it wraps (``sock``)."""

    sock: socket.socket

    def settimeout(self, value: float | None) -> None:
        self.sock.settimeout(value)

    def gettimeout(self) -> float | None:
        return self.sock.gettimeout()

    def setblocking(self, flag: bool) -> None:
        self.sock.setblocking(flag)

    def getblocking(self) -> bool:
        return self.sock.getblocking()

    def getpeername(self) -> Address:
        return self.sock.getpeername()

    def getsockname(self) -> Address:
        return self.sock.getsockname()

    def setsockopt(self, level: int, optname: int, value: int | bytes) -> None:
        self.sock.setsockopt(level, optname, value)

    def getsockopt(self, level: int, optname: int, buflen: int | None = None) -> int | bytes:
        if buflen is None:
            return self.sock.getsockopt(level, optname)
        return self.sock.getsockopt(level, optname, buflen)

    def fileno(self) -> int:
        return self.sock.fileno()

    @property
    def family(self) -> socket.AddressFamily:
        return self.sock.family

    @property
    def proto(self) -> int:
        return self.sock.proto

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()
