"""``tessera connect``: a TLS client (like ``openssl s_client``)."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import selectors
import sys
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import click

from .options import common_options, keylog_option, pass_option, read_password, tls_options

if TYPE_CHECKING:
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


def summary(tls: TLSSocket) -> list[tuple[str, str]]:
    """The handshake's outcome as (field, value) pairs."""
    from ..crypto.x509 import describe_name
    from ..enums import NamedGroup, ProtocolVersion, code_name

    info = tls.info
    rows = [
        ("Protocol", info.version.label),
        ("Cipher", f"{info.cipher_suite.openssl_name} ({info.cipher_suite.name})"),
    ]
    if info.group is not None:
        rows.append(("Group", code_name(NamedGroup, info.group)))
    if info.peer_certificates:
        leaf = info.peer_certificates[0]
        rows.append(("Server certificate subject", describe_name(leaf.subject)))
        rows.append(("Server certificate issuer", describe_name(leaf.issuer)))
    rows.append(("Session-ID", info.session_id.hex().upper() or "(none)"))
    if info.resumed:
        rows.append(("Resumed by", str(info.resumed_by)))
    if info.version != ProtocolVersion.TLS1_3:  # TLS 1.3 always binds the whole handshake
        rows.append(("Extended master secret", "yes" if info.extended_master_secret else "no"))
    if info.alpn_protocol:
        rows.append(("ALPN", info.alpn_protocol))
    if info.early_data_accepted:
        rows.append(("Early data", "accepted"))
    elif tls.early_data_rejected:
        rows.append(("Early data", "rejected"))
    return rows


def print_summary(rows: list[tuple[str, str]]) -> None:
    """``Field: value`` lines on stderr, coloured on a terminal (plain text otherwise)."""
    from rich.console import Console
    from rich.markup import escape

    console = Console(stderr=True, highlight=False, soft_wrap=True)
    for name, value in rows:
        style = "yellow" if value in ("no", "rejected", "(none)") else "green"
        console.print(f"[bold]{escape(name)}:[/] [{style}]{escape(value)}[/]")


def print_outcome(info: ConnectionInfo) -> None:
    """The New/Reused line on stdout (what scripts grep, as with s_client)."""
    from ..observe.logs import session_line

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
        click.echo("tessera: the server gave no resumable session", err=True)
        return
    from .files import write_private

    pem = session.to_pem()
    write_private(path, lambda tmp: tmp.write_text(pem), overwrite=True)


UNKNOWN_CA_HINT = (
    "if the server is `tessera serve` with generated certificates, start it with "
    "--save-cert FILE and pass --ca FILE here"
)


@click.command()
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
    type=float,
    help="Seconds allowed for connecting and for the handshake.",
)
@click.option(
    "--linger",
    default=1.0,
    show_default=True,
    type=float,
    help="After the end of input, wait this many seconds of server silence before closing.",
)
@click.option("-q", "--quiet", is_flag=True, help="Print only the New/Reused line.")
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
    from ..enums import AlertDescription
    from ..errors import BadCertificate, ConfigError
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

    def once(sess: ClientSession | None) -> TLSSocket:
        from ..connection import ClientConnection
        from ..io.blocking import TLSSocket

        tls = TLSSocket.open((host, port), config, name_for_tls, session=sess, timeout=timeout)
        assert isinstance(tls.conn, ClientConnection)
        limit = tls.conn.early_data_limit
        send_early = early is not None and 0 < len(early) <= limit
        if early is not None and not send_early and not quiet:
            why = f"the session allows {limit} bytes" if limit else "no TLS 1.3 session allows it"
            click.echo(f"Early data: not sent ({why})", err=True)
        try:
            tls.do_handshake(early_data=early if send_early else None)
        except BadCertificate as e:
            tls.sock.close()
            if e.alert == AlertDescription.unknown_ca:
                raise click.ClickException(f"{e}\n  ({UNKNOWN_CA_HINT})") from None
            raise
        except BaseException:
            tls.sock.close()
            raise
        return tls

    if reconnect:
        for i in range(RECONNECTS + 1):
            tls = once(session if i == 0 else None)
            print_outcome(tls.info)
            if early is not None and tls.info.resumed and not quiet:
                accepted = tls.info.early_data_accepted
                click.echo(f"Early data: {'accepted' if accepted else 'rejected'}", err=True)
            drain(tls)
            tls.close()
            if i == 0 and not quiet:
                print_summary(summary(tls))
        if sess_out:
            save_session(sess_out, tls.session)
        return
    tls = once(session)
    print_outcome(tls.info)
    if not quiet:
        print_summary(summary(tls))
    try:
        relay(tls, linger)
    finally:
        tls.close()
        if sess_out:
            save_session(sess_out, tls.session)
