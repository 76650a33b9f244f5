"""``tessera connect``: a TLS client (like ``openssl s_client``)."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import selectors
import sys
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import click
from cryptography import x509

from ..addresses import describe_os_error
from ..observe.render import (
    ACCEPTED,
    REJECTED,
    Extra,
    Field,
    by_key,
    connection_fields,
    rows,
    session_line,
    values,
)
from .command import Command, FiniteFloatRange, target_error
from .options import common_options, keylog_option, pass_option, read_password, tls_options

if TYPE_CHECKING:
    from ..config import ClientConfig
    from ..events import ConnectionInfo, Event
    from ..io.blocking import TLSSocket
    from ..session.model import ClientSession

RECONNECTS = 5
HTTPS_PORT = 443


def parse_target(target: str) -> tuple[str, int]:
    """HOST:PORT, [IPv6]:PORT or https://HOST[:PORT][/path] (port 443 by default)."""
    if "://" in target:
        url = urlsplit(target)
        if url.scheme != "https":
            raise click.BadParameter(
                f"{url.scheme}:// is not TLS; give HOST:PORT or https://HOST[:PORT]",
                param_hint="TARGET",
            )
        try:
            port = url.port or HTTPS_PORT
        except ValueError:
            raise click.BadParameter(f"bad port in {target!r}", param_hint="TARGET") from None
        if not url.hostname:
            raise click.BadParameter(f"no host in {target!r}", param_hint="TARGET")
        return url.hostname, port
    host, sep, port_text = target.rpartition(":")
    if not sep or not port_text.isdigit() or not host:
        raise click.BadParameter("expected HOST:PORT or https://HOST[:PORT]", param_hint="TARGET")
    port = int(port_text)
    if not 0 < port < 65536:
        raise click.BadParameter(f"port {port} is not between 1 and 65535", param_hint="TARGET")
    return host.strip("[]"), port


# ``--json``'s keys: the renderer's fields, in this order, then the certificate chain.
JSON_FIELDS = ("target", "server_name", "protocol", "cipher", "cipher_iana", "group",
               "signature_scheme", "session_id", "resumed", "resumed_by",
               "extended_master_secret", "alpn", "early_data", "handshake_ms",
               "verified")  # fmt: skip
# The summary's optional rows, shown when known (``Resumed by`` only when it resumed, ...).
SUMMARY_FIELDS = ("resumed_by", "extended_master_secret", "alpn", "early_data")


def handshake_fields(tls: TLSSocket, target: str, verified: bool) -> tuple[Field, ...]:
    """The connection as the one renderer's fields."""
    extra = Extra(target=target, verified=verified, early_data_rejected=tls.early_data_rejected)
    return connection_fields(tls.info, extra)


def handshake_record(fields: tuple[Field, ...], tls: TLSSocket,
                     pem: bool = False) -> dict[str, object]:  # fmt: skip
    """The handshake's outcome, the shape of ``--json`` (one object per connection)."""
    record: dict[str, object] = dict(values(fields, JSON_FIELDS))
    record["certificates"] = [certificate_record(c, pem) for c in tls.info.peer_certificates]
    return record


def certificate_record(cert: x509.Certificate, pem: bool) -> dict[str, object]:
    """One certificate of the chain the server sent (``pem``: with its PEM text)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.serialization import Encoding

    from ..crypto.x509 import describe_name

    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = [str(n.value) for n in san]
    except (x509.ExtensionNotFound, ValueError):
        names = []
    record: dict[str, object] = {
        "subject": describe_name(cert.subject),
        "issuer": describe_name(cert.issuer),
        "version": cert.version.value + 1,
        "serial": format(cert.serial_number, "X"),
        "not_before": cert.not_valid_before_utc.isoformat(),
        "not_after": cert.not_valid_after_utc.isoformat(),
        "subject_alt_names": names,
        "sha256": cert.fingerprint(hashes.SHA256()).hex().upper(),
    }
    if pem:
        record["pem"] = cert.public_bytes(Encoding.PEM).decode()
    return record


def summary(fields: tuple[Field, ...], record: dict[str, object]) -> list[tuple[str, str]]:
    """The handshake's outcome as (field, value) pairs: the renderer's fields, and the server
    certificate from :func:`handshake_record`."""
    found = by_key(fields)
    out = rows(fields, ("protocol",))
    out.append((found["cipher"].label, f"{found['cipher'].text} ({found['cipher_iana'].text})"))
    out += rows(fields, ("group",) if found["group"].shown else ())
    certificates = record["certificates"]
    assert isinstance(certificates, list)
    if certificates:
        out.append(("Server certificate subject", str(certificates[0]["subject"])))
        out.append(("Server certificate issuer", str(certificates[0]["issuer"])))
    out += rows(fields, ("session_id",))
    return out + rows(fields, [k for k in SUMMARY_FIELDS if found[k].shown])


def print_chain(record: dict[str, object]) -> None:
    """``--showcerts``: the chain the server sent, as ``openssl s_client -showcerts`` prints
    it (on stdout: the PEM blocks can be saved and given to ``--ca``)."""
    certificates = record["certificates"]
    assert isinstance(certificates, list)
    lines = ["Certificate chain"]
    for i, c in enumerate(certificates):
        lines += [f" {i} s:{c['subject']}", f"   i:{c['issuer']}",
                  f"   v:NotBefore: {c['not_before']}; NotAfter: {c['not_after']}",
                  str(c["pem"]).rstrip("\n")]  # fmt: skip
    click.echo("\n".join(lines))


def print_summary(lines: list[tuple[str, str]]) -> None:
    """``Field: value`` lines on stderr, coloured on a terminal (plain text otherwise)."""
    from rich.console import Console
    from rich.markup import escape

    console = Console(stderr=True, highlight=False, soft_wrap=True)
    for name, value in lines:
        style = "yellow" if value in ("no", "rejected", "(none)") else "green"
        console.print(f"[bold]{escape(name)}:[/] [{style}]{escape(value)}[/]")


def print_outcome(info: ConnectionInfo) -> None:
    """The New/Reused line on stdout (what scripts grep, as with s_client)."""
    click.echo(session_line(info))


def notice_line(event: Event) -> str:
    """What a renegotiation or a post-handshake authentication did, in one line."""
    from ..events import PostHandshakeAuthCompleted, RenegotiationCompleted, RenegotiationDeclined

    if isinstance(event, RenegotiationCompleted):
        info = event.info
        if info.resumed:
            how = f"resumed by {info.resumed_by}"
        elif event.session_offered:
            how = "full handshake, resumption refused by the server"
        else:
            how = "full handshake"
        asked = "the server asked" if event.initiator == "server" else "we asked"
        suite = info.cipher_suite.openssl_name
        return f"Renegotiated: {how} ({asked}; {info.version.label}, {suite})"
    if isinstance(event, RenegotiationDeclined):
        return "Renegotiation declined by the server (no_renegotiation)"
    if isinstance(event, PostHandshakeAuthCompleted):
        what = "client certificate sent" if event.certificate_sent else "no certificate to send"
        return f"Post-handshake authentication: the server asked; {what}"
    return type(event).__name__


def report_notices(tls: TLSSocket, seen: int) -> int:
    """Print the renegotiations and post-handshake authentications since ``seen``; the new
    count."""
    new = tls.reauthentications - seen
    if new > 0:
        for event in list(tls.handshake_notices)[-new:]:
            click.echo(notice_line(event), err=True)
    return tls.reauthentications


def relay(tls: TLSSocket, linger: float) -> None:
    """Copy stdin to the server and the server's data to stdout until one side closes.

    At the end of input nothing is closed at once: many servers (``openssl s_server -www``
    among them) stop reading and answering as soon as a close_notify arrives. The server's
    data is read on until it closes, or until it has been silent for ``linger`` seconds; then
    our close_notify goes out.
    """
    sel = selectors.DefaultSelector()
    sel.register(tls.sock, selectors.EVENT_READ, "net")
    stdin_open = True
    try:
        sel.register(sys.stdin.fileno(), selectors.EVENT_READ, "stdin")
    except (ValueError, OSError):
        stdin_open = False
    out = sys.stdout.buffer
    seen = report_notices(tls, 0)
    while True:
        seen = report_notices(tls, seen)
        # Application data already decrypted and buffered is written first.
        while tls.pending():
            out.write(tls.recv(1 << 20))
        out.flush()
        if tls.peer_closed:
            return
        ready = sel.select(None if stdin_open else linger)
        if not ready:
            return  # input over and the server silent for `linger` seconds
        for key, _ in ready:
            if key.data == "net":
                if not tls.receive_some():
                    report_notices(tls, seen)
                    while tls.pending():
                        out.write(tls.recv(1 << 20))
                    out.flush()
                    return
            elif stdin_open:
                chunk = os.read(sys.stdin.fileno(), 65536)
                if chunk:
                    tls.sendall(chunk)
                else:
                    stdin_open = False
                    sel.unregister(sys.stdin.fileno())


def drain(tls: TLSSocket) -> None:
    """Close our side and read until the server closes (collecting TLS 1.3 tickets)."""
    from ..errors import TLSError

    tls.sock.settimeout(5.0)
    with contextlib.suppress(TLSError, OSError):
        tls.unwrap().close()  # close_notify, then read (tickets too) until the server's


def save_session(path: str, session: ClientSession | None) -> None:
    """Write the session for --sess-in (mode 0600, written atomically: it holds the session's
    secret)."""
    if session is None:
        click.echo(
            "tessera connect: warning: the server gave no resumable session; "
            "--sess-out not written",
            err=True,
        )
        return
    from .files import write_private

    pem = session.to_pem()
    write_private(path, lambda tmp: tmp.write_text(pem), overwrite=True)


UNKNOWN_CA_HINT = (
    "if the server is `tessera serve` with generated certificates, start it with "
    "--save-cert FILE and pass --ca FILE here"
)


@click.command(cls=Command)
@click.argument("target")
@click.option("--sni", metavar="NAME", help="Server name to send and check (default: the host).")
@click.option("--no-sni", is_flag=True, help="Send no server_name.")
@click.option(
    "--ca",
    metavar="FILE",
    type=click.Path(exists=True, dir_okay=False),
    help="Trust these CA certificates instead of the system store.",
)
@click.option("-k", "--insecure", is_flag=True, help="Do not validate the server certificate.")
@click.option(
    "--verify-profile",
    type=click.Choice(["webpki", "openssl"]),
    default="webpki",
    show_default=True,
    help="webpki: the strict Web PKI rules; openssl: also what OpenSSL accepts (CAs without "
    "keyUsage, self-signed CA:TRUE certificates).",
)
@click.option(
    "--min-rsa-bits",
    default=2048,
    show_default=True,
    type=click.IntRange(512, 16384),
    help="Smallest RSA key accepted in the server's certificate.",
)
@click.option("--cert", metavar="FILE", help="Client certificate chain (PEM).")
@click.option("--key", metavar="FILE", help="Client private key (PEM; default: in --cert).")
@pass_option
@click.option(
    "--reconnect",
    is_flag=True,
    help=f"One full handshake, then {RECONNECTS} resumptions; print New/Reused.",
)
@click.option(
    "--sess-out",
    metavar="FILE",
    type=click.Path(dir_okay=False),
    help="Save the session (its secret too) to FILE, mode 0600.",
)
@click.option(
    "--sess-in",
    metavar="FILE",
    type=click.Path(exists=True, dir_okay=False),
    help="Resume the session saved in FILE.",
)
@click.option("--no-ticket", is_flag=True, help="Offer no session tickets (session ids only).")
@click.option("--no-ems", is_flag=True, help="Do not offer the extended master secret.")
@click.option(
    "--no-renegotiation",
    is_flag=True,
    help="TLS 1.2: refuse the server's requests to renegotiate (no_renegotiation).",
)
@click.option(
    "--early-data",
    metavar="FILE",
    type=click.Path(exists=True, dir_okay=False),
    help="Send FILE as TLS 1.3 0-RTT data when resuming.",
)
@click.option("--psk-ke", is_flag=True, help="TLS 1.3: also offer resumption without (EC)DHE.")
@click.option(
    "--timeout",
    default=30.0,
    show_default=True,
    type=FiniteFloatRange(min=0, min_open=True),
    help="Seconds allowed for connecting and for the handshake.",
)
@click.option(
    "--linger",
    default=1.0,
    show_default=True,
    type=FiniteFloatRange(min=0),
    help="After the end of input, wait this many seconds of server silence before closing.",
)
@click.option("-q", "--quiet", is_flag=True, help="Print only the New/Reused line.")
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print each handshake as one JSON object a line on stdout (protocol, cipher, "
    "session, resumption, the certificate chain) and relay no data.",
)
@click.option(
    "--showcerts",
    is_flag=True,
    help="Print the certificate chain the server sent, in PEM (with --json: a pem field).",
)
@common_options
def connect(
    target: str,
    sni: str | None,
    no_sni: bool,
    ca: str | None,
    insecure: bool,
    verify_profile: str,
    min_rsa_bits: int,
    cert: str | None,
    key: str | None,
    password: str | None,
    reconnect: bool,
    sess_out: str | None,
    sess_in: str | None,
    no_ticket: bool,
    no_ems: bool,
    no_renegotiation: bool,
    early_data: str | None,
    psk_ke: bool,
    timeout: float,
    linger: float,
    quiet: bool,
    as_json: bool,
    showcerts: bool,
    tls1_2: bool,
    tls1_3: bool,
    ciphers: str | None,
    ciphersuites: str | None,
    groups: str | None,
    sigalgs: str | None,
    alpn: str | None,
    keylogfile: str | None,
) -> None:
    """Connect to TARGET, print the handshake, relay stdin and stdout.

    TARGET is HOST:PORT, [IPv6]:PORT or https://HOST[:PORT].
    """
    from ..certs import CertifiedKey
    from ..config import ClientConfig
    from ..crypto.x509 import VerifyProfile
    from ..errors import ConfigError
    from ..session.client_cache import ClientSessionCache
    from ..session.model import ClientSession, SessionDecodeError

    host, port = parse_target(target)
    if no_sni:
        server_name = None
    elif sni:
        server_name = sni
    else:
        server_name = host
    try:
        ipaddress.ip_address(host)
        is_ip = True
    except ValueError:
        is_ip = False
    if key and not cert:
        raise click.UsageError("--key needs --cert (the certificate the key belongs to)")
    extra = tls_options(tls1_2, tls1_3, ciphers, ciphersuites, groups, sigalgs, alpn)
    try:
        certificate = CertifiedKey.load(cert, key, read_password(password)) if cert else None
        config = ClientConfig(
            verify=not insecure,
            cafile=ca,
            check_hostname=server_name is not None,
            verify_profile=VerifyProfile(verify_profile),
            min_rsa_bits=min_rsa_bits,
            certificate=certificate,
            session_cache=ClientSessionCache(),
            session_tickets=not no_ticket,
            extended_master_secret=not no_ems,
            renegotiation=not no_renegotiation,
            psk_ke=psk_ke,
            keylog=keylog_option(keylogfile),
            **extra,
        )
    except ConfigError as e:
        raise click.UsageError(str(e)) from None
    session = None
    if sess_in:
        try:
            session = ClientSession.from_pem(Path(sess_in).read_text())
        except (SessionDecodeError, UnicodeDecodeError) as e:
            raise click.UsageError(f"--sess-in {sess_in}: {e}") from None
    name_for_tls = server_name if server_name is not None or is_ip else None
    early = Path(early_data).read_bytes() if early_data else None

    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    verified = not insecure

    def once(sess: ClientSession | None) -> TLSSocket:
        tls = handshake(where, (host, port), config, name_for_tls, sess, timeout, early,
                        quiet or as_json)  # fmt: skip
        fields = handshake_fields(tls, where, verified)
        record = handshake_record(fields, tls, pem=showcerts)
        if as_json:
            click.echo(json.dumps(record, ensure_ascii=False))
        else:
            print_outcome(tls.info)
            if showcerts:
                print_chain(record)
        if not quiet and not as_json and (not reconnect or not tls.info.resumed):
            print_summary(summary(fields, record))
        return tls

    if reconnect or as_json:
        for i in range(RECONNECTS + 1 if reconnect else 1):
            tls = once(session if i == 0 else None)
            if early is not None and not quiet and not as_json:
                report_early_data(tls)
            drain(tls)
            tls.close()
        if sess_out:
            save_session(sess_out, tls.session)
        return
    tls = once(session)
    try:
        relay(tls, linger)
    finally:
        tls.close()
        if sess_out:
            save_session(sess_out, tls.session)


def report_early_data(tls: TLSSocket) -> None:
    """``Early data: accepted`` or ``rejected``, in the renderer's words, when the 0-RTT data
    was sent (when it was not, :func:`handshake` has said why)."""
    if tls.info.early_data_accepted:
        click.echo(f"Early data: {ACCEPTED}", err=True)
    elif tls.early_data_rejected:
        click.echo(f"Early data: {REJECTED}", err=True)


def handshake(where: str, address: tuple[str, int], config: ClientConfig,
              server_name: str | None, session: ClientSession | None, timeout: float,
              early: bytes | None, quiet: bool) -> TLSSocket:  # fmt: skip
    """Connect and complete the handshake; every failure names the target (exit status 3
    when it cannot be reached)."""
    from ..connection import ClientConnection
    from ..enums import AlertDescription
    from ..errors import BadCertificate, ConfigError, TLSError
    from ..io.blocking import TLSSocket

    try:
        tls = TLSSocket.open(address, config, server_name, session=session, timeout=timeout)
    except ConfigError:
        raise
    except OSError as e:
        raise target_error(where, e) from None
    assert isinstance(tls.conn, ClientConnection)
    limit = tls.conn.early_data_limit
    send_early = early is not None and 0 < len(early) <= limit
    if early is not None and not send_early and not quiet:
        why = f"the session allows {limit} bytes" if limit else "no TLS 1.3 session allows it"
        click.echo(f"Early data: not sent ({why})", err=True)
    try:
        tls.do_handshake(early_data=early if send_early else None)
    except BadCertificate as e:
        hint = f" ({UNKNOWN_CA_HINT})" if e.alert == AlertDescription.unknown_ca else ""
        raise click.ClickException(f"{where}: {e}{hint}") from None
    except TLSError as e:
        raise click.ClickException(f"{where}: {e}") from None
    except OSError as e:
        raise click.ClickException(f"{where}: during the handshake: {describe_os_error(e)}") \
            from None  # fmt: skip
    finally:
        if not tls.conn.handshake_complete:
            tls.sock.close()
    return tls
