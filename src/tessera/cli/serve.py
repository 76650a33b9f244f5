"""``tessera serve``: a TLS server with resumption on (like ``openssl s_server``)."""

from __future__ import annotations

import contextlib
import html
import logging
import os
import signal
import sys
import threading
from types import FrameType
from typing import Any

import click
from rich.console import Console

from ..config import ClientAuth, ServerConfig
from ..enums import NamedGroup, ProtocolVersion, code_name
from ..errors import ConfigError, TLSError
from ..fleet.cli import FleetOptions, FleetRuntime, fleet_options, status_lines
from ..io.blocking import TLSServer, TLSSocket
from ..session.keyring import KeyFileFormat, TicketKeyring
from ..session.store import MemoryStore
from . import metrics as metrics_cli
from . import secure_path, serving
from .options import common_options, keylog_option, pass_option, read_password, tls_options

err = Console(stderr=True, highlight=False, soft_wrap=True)  # log lines stay whole
MAX_REQUEST = 16 * 1024


def session_line(tls: TLSSocket) -> str:
    info = tls.info
    word = "Reused" if info.resumed else "New"
    return f"{word}, {info.version.label}, Cipher is {info.cipher_suite.openssl_name}"


def www_page(
    tls: TLSSocket, config: ServerConfig, status: str = "200 ok", notes: tuple[str, ...] = ()
) -> bytes:
    info = tls.info
    stats = config.statistics
    rows = [
        ("Protocol", info.version.label),
        ("Cipher", info.cipher_suite.openssl_name),
        ("Session-ID", info.session_id.hex().upper() or "(none)"),
        ("Resumed", f"yes, by {info.resumed_by}" if info.resumed else "no"),
        ("Resumption", info.resumption.describe() if info.resumption else "(none)"),
        (
            "Extended master secret",
            "n/a (TLS 1.3)"
            if info.version == ProtocolVersion.TLS1_3
            else ("yes" if info.extended_master_secret else "no"),
        ),
        ("Group", code_name(NamedGroup, info.group) if info.group else "(none)"),
        ("SNI", info.server_name or "(none)"),
        ("ALPN", info.alpn_protocol or "(none)"),
        ("Early data", "yes (0-RTT, replayable)" if tls.early_data else "no"),
    ]
    body = ["<html><head><title>tessera</title></head><body><pre>"]
    if notes:
        body += [*(html.escape(n) for n in notes), ""]
    body += [html.escape(session_line(tls)), ""]
    body += [f"{html.escape(k)}: {html.escape(v)}" for k, v in rows]
    body += ["", "Session statistics:"]
    body += [f"  {k}: {v}" for k, v in stats.snapshot().items()]
    store = config.session_store
    if isinstance(store, MemoryStore):
        body += [f"  cache_entries: {len(store)}", f"  cache_evictions: {store.evictions}"]
    reasons = stats.fallback_reasons()
    body += ["", "Resumption fallbacks (why a full handshake was done):"]
    body += [f"  {html.escape(k)}: {v}" for k, v in sorted(reasons.items())] or ["  (none)"]
    body += [html.escape(line) for line in status_lines(config)]
    body += ["</pre></body></html>", ""]
    text = "\n".join(body).encode()
    head = (
        f"HTTP/1.0 {status}\r\nContent-Type: text/html\r\n"
        f"Content-Length: {len(text)}\r\nConnection: close\r\n\r\n"
    ).encode()
    return head + text


def read_request(tls: TLSSocket) -> bytes | None:
    buf = b""
    while b"\r\n\r\n" not in buf and b"\n\n" not in buf:
        chunk = tls.recv(4096)
        if not chunk:
            return None
        buf += chunk
        if len(buf) > MAX_REQUEST:
            return None
    return buf


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "-p",
    "--port",
    default=4433,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port to listen on (0: any free port).",
)
@click.option(
    "--cert",
    "certs",
    multiple=True,
    metavar="FILE",
    help="PEM certificate chain (repeat for ECDSA + RSA). Default: generated.",
)
@click.option("--key", "keys", multiple=True, metavar="FILE", help="PEM private key per --cert.")
@pass_option
@click.option(
    "--save-cert",
    metavar="FILE",
    type=click.Path(dir_okay=False),
    help="Write the generated certificates to FILE (for tessera connect --ca FILE).",
)
@click.option("--www", "mode", flag_value="www", help="Answer HTTP GET with a status page.")
@click.option("--echo", "mode", flag_value="echo", default=True, help="Echo data back (default).")
@click.option(
    "--no-ticket",
    is_flag=True,
    help="No TLS 1.2 tickets; TLS 1.3 tickets become stateful (single use, in the session "
    "cache), as with openssl s_server -no_ticket.",
)
@click.option("--no-cache", is_flag=True, help="No server-side session cache (no session ids).")
@click.option(
    "--cache-size",
    default=20000,
    show_default=True,
    type=int,
    help="Sessions kept in the in-memory cache.",
)
@click.option(
    "--session-timeout",
    default=300.0,
    show_default=True,
    type=float,
    help="Seconds a cached session stays resumable.",
)
@click.option(
    "--ticket-keys",
    metavar="FILE",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False),
    help="Ticket key file (shared by a fleet); repeat it: the first encrypts, the others only "
    "decrypt. Reloaded on SIGHUP. Default: random keys in memory.",
)
@click.option(
    "--ticket-key-format",
    type=click.Choice([f.value for f in KeyFileFormat]),
    default="native",
    show_default=True,
    help="Byte layout of --ticket-keys.",
)
@click.option(
    "--ticket-rotation",
    default=3600.0,
    show_default=True,
    type=float,
    help="Seconds between ticket key rotations (generated keys only).",
)
@click.option(
    "--ticket-keep",
    default=2,
    show_default=True,
    type=int,
    help="Old ticket keys kept for decryption only (generated keys only).",
)
@click.option(
    "--ticket-lifetime",
    default=7200,
    show_default=True,
    type=int,
    help="Ticket lifetime (hint) in seconds.",
)
@click.option(
    "--num-tickets",
    default=2,
    show_default=True,
    type=int,
    help="TLS 1.3 tickets sent after each handshake.",
)
@click.option(
    "--stateful-tickets",
    is_flag=True,
    help="TLS 1.3 tickets are ids into the session cache (single use).",
)
@click.option(
    "--max-early-data",
    default=0,
    show_default=True,
    type=int,
    help="Accept up to N bytes of TLS 1.3 0-RTT data (0: refuse).",
)
@click.option(
    "--ticket-age-skew",
    default=10.0,
    show_default=True,
    type=float,
    help="TLS 1.3: seconds a client's ticket age may differ from the server's.",
)
@click.option("--psk-ke", is_flag=True, help="TLS 1.3: accept resumption without (EC)DHE.")
@click.option(
    "--legacy-sha1",
    is_flag=True,
    help="TLS 1.2: sign with SHA-1 for clients that send no signature_algorithms "
    "(refused by default, RFC 9155).",
)
@click.option(
    "--verify-client",
    type=click.Choice([a.value for a in ClientAuth]),
    default="none",
    show_default=True,
    help="Ask for a client certificate.",
)
@click.option(
    "--client-ca",
    metavar="FILE",
    type=click.Path(exists=True, dir_okay=False),
    help="CA file for client certificates (loaded at start and on SIGHUP).",
)
@click.option(
    "--client-cert-path",
    "client_cert_paths",
    multiple=True,
    metavar="PREFIX",
    help="--www: requests under PREFIX need a client certificate, asked for after the request "
    "(TLS 1.2 renegotiation, TLS 1.3 post-handshake authentication); repeatable; needs "
    "--client-ca.",
)
@click.option(
    "--client-renegotiation",
    is_flag=True,
    help="TLS 1.2: accept renegotiation started by the client (rate-limited; refused by default).",
)
@click.option(
    "--handshake-timeout",
    default=10.0,
    show_default=True,
    type=float,
    help="Seconds a client may take to complete the handshake.",
)
@click.option(
    "--idle-timeout",
    default=300.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds a connection may stay idle after the handshake before it is closed.",
)
@click.option(
    "--max-connections",
    default=1000,
    show_default=True,
    type=click.IntRange(min=1),
    help="Connections served at once; more clients wait in the listen queue.",
)
@click.option("-q", "--quiet", is_flag=True, help="Do not print a line per connection.")
@metrics_cli.metrics_option
@common_options
@fleet_options
def serve(
    host: str,
    port: int,
    certs: tuple[str, ...],
    keys: tuple[str, ...],
    password: str | None,
    save_cert: str | None,
    mode: str,
    no_ticket: bool,
    no_cache: bool,
    cache_size: int,
    session_timeout: float,
    ticket_keys: tuple[str, ...],
    ticket_key_format: str,
    ticket_rotation: float,
    ticket_keep: int,
    ticket_lifetime: int,
    num_tickets: int,
    stateful_tickets: bool,
    max_early_data: int,
    ticket_age_skew: float,
    psk_ke: bool,
    legacy_sha1: bool,
    verify_client: str,
    client_ca: str | None,
    client_cert_paths: tuple[str, ...],
    client_renegotiation: bool,
    handshake_timeout: float,
    idle_timeout: float,
    max_connections: int,
    quiet: bool,
    metrics: str | None,
    tls1_2: bool,
    tls1_3: bool,
    ciphers: str | None,
    ciphersuites: str | None,
    groups: str | None,
    sigalgs: str | None,
    alpn: str | None,
    keylogfile: str | None,
    fleet: FleetOptions,
) -> None:
    """Run a TLS server with session resumption on (session cache and tickets).

    SIGHUP reloads the certificate, ticket key and client CA files for new connections;
    Ctrl-C prints the final statistics and exits with status 130.
    """
    logging.basicConfig(level=logging.WARNING, format="tessera: %(message)s")
    files = serving.ServeFiles(certs, keys, read_password(password), ticket_keys,
                               KeyFileFormat(ticket_key_format), client_ca)  # fmt: skip
    check_serve_options(click.get_current_context(), files, no_ticket, save_cert)
    try:
        certificates = serving.load_certificates(files)
        keyring = None
        if ticket_keys:
            keyring = serving.file_keyring(files)
        elif not no_ticket:
            keyring = TicketKeyring(rotation_interval=ticket_rotation, keep=ticket_keep)
        serving.check_client_ca(client_ca)
        runtime = FleetRuntime(
            fleet, keyring, generated_keys=not ticket_keys, rotation=ticket_rotation,
            keep=ticket_keep,
        )  # fmt: skip
        exporter = metrics_cli.exporter_for(metrics, runtime)
        store = runtime.session_store(None if no_cache else MemoryStore(cache_size))
        config = ServerConfig(
            certificates=certificates,
            session_store=metrics_cli.instrumented(exporter, store),
            observers=metrics_cli.observers(exporter),
            session_timeout=session_timeout,
            ticket_keyring=runtime.keyring,
            ticket_lifetime=ticket_lifetime,
            num_tickets=num_tickets,
            # --no-ticket: TLS 1.3 resumes with stateful tickets when there is a cache
            stateful_tickets=stateful_tickets or (no_ticket and not no_cache),
            max_early_data_size=runtime.early_data(max_early_data),
            max_ticket_age_skew=ticket_age_skew,
            psk_ke=psk_ke,
            legacy_sha1_signatures=legacy_sha1,
            client_auth=ClientAuth(verify_client),
            client_cafile=client_ca,
            client_renegotiation=client_renegotiation,
            keylog=keylog_option(keylogfile),
            **tls_options(tls1_2, tls1_3, ciphers, ciphersuites, groups, sigalgs, alpn),
        )
    except ConfigError as e:
        raise click.UsageError(str(e)) from None
    if config.client_auth is not ClientAuth.NONE and client_ca is None:
        raise click.UsageError("--verify-client needs --client-ca FILE")
    if client_cert_paths and (client_ca is None or mode != "www"):
        raise click.UsageError("--client-cert-path needs --www and --client-ca FILE")
    if save_cert:
        serving.save_certificates(save_cert, certificates)

    lock = threading.Lock()

    def log(line: str) -> None:
        with lock:
            err.print(line, markup=False)

    # The TLSServer of this process (with --workers, each worker makes its own after the fork);
    # its config is swapped on SIGHUP.
    servers: list[TLSServer] = []

    def handler(tls: TLSSocket) -> None:
        if not quiet:
            log(serving.connection_line(tls, session_line(tls)))
        if mode == "www":
            request = read_request(tls)
            if request is not None:
                www(tls, request, servers[0].config if servers else config)
            return
        while True:
            data = tls.recv(65536)
            if not data:
                return
            tls.sendall(data)

    def www(tls: TLSSocket, request: bytes, current: ServerConfig) -> None:
        method, path = secure_path.request_target(request)
        if secure_path.protected_prefix(path, client_cert_paths) is None:
            tls.sendall(www_page(tls, current))
            return
        head, _, rest = request.partition(b"\r\n\r\n" if b"\r\n\r\n" in request else b"\n\n")
        body = secure_path.read_body(tls, head, rest)
        try:
            outcome = (
                body
                if isinstance(body, secure_path.Outcome)
                else secure_path.authenticate(tls, method, path, body, handshake_timeout)
            )
        except TLSError as e:
            log(f"{path}: asking for the client certificate failed: {e}")
            raise
        log(outcome.log)
        tls.sendall(www_page(tls, current, outcome.status, outcome.lines))
        if outcome.linger:
            secure_path.linger(tls)

    def handshake_error(peer: Any, error: Exception) -> None:
        if not quiet:
            log(f"{serving.timestamp()} {serving.peer_text(peer)}: handshake failed: {error}")

    def make_server(address: tuple[str, int], reuse_port: bool) -> TLSServer:
        metrics_cli.in_worker(exporter)
        made = TLSServer(
            address,
            config,
            metrics_cli.metered(exporter, handler),
            handshake_timeout=handshake_timeout,
            idle_timeout=idle_timeout,
            max_connections=max_connections,
            on_handshake_error=handshake_error,
            reuse_port=reuse_port,
        )
        servers.append(made)
        return made

    server = runtime.server(make_server, (host, port))
    if exporter is not None:
        exporter.start()
        err.print(f"metrics: http://{exporter.address[0]}:{exporter.address[1]}/metrics")
    for line in serving.banner(config, files, mode, server.address, ticket_rotation,
                               ticket_keep, save_cert):  # fmt: skip
        err.print(line, markup=False)
    for line in runtime.banner_lines(max_early_data):
        err.print(line, markup=False)
    sys.stderr.flush()
    stopped_by: list[int] = []

    def stop(signum: int, frame: FrameType | None) -> None:
        stopped_by.append(signum)
        server.shutdown()

    def hangup(signum: int, frame: FrameType | None) -> None:
        if servers:
            serving.reload(servers[0], files, log)
            return
        for pid in getattr(server, "pids", {}).values():  # a supervisor: each worker reloads
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGHUP)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, hangup)
    try:
        server.serve_forever()
    except TLSError as e:
        raise click.ClickException(str(e)) from None
    finally:
        if exporter is not None:
            exporter.close()
    if servers:  # (a supervisor's workers print their own)
        with lock:
            err.print(serving.final_statistics(servers[0].config.statistics))
    if stopped_by and stopped_by[0] == signal.SIGINT:
        sys.exit(130)  # as a shell reports a program ended by Ctrl-C


def check_serve_options(
    ctx: click.Context, files: serving.ServeFiles, no_ticket: bool, save_cert: str | None
) -> None:
    """Option combinations that cannot do what they say."""
    if files.keys and not files.certs:
        raise click.UsageError("--key needs --cert (the certificate the key belongs to)")
    if save_cert and files.certs:
        raise click.UsageError("--save-cert writes generated certificates; --cert gives your own")
    if files.ticket_keys and no_ticket:
        raise click.UsageError("--no-ticket turns tickets off: drop --ticket-keys")
    for name in ("ticket_rotation", "ticket_keep"):
        given = ctx.get_parameter_source(name) is click.core.ParameterSource.COMMANDLINE
        if given and files.ticket_keys:
            option = "--" + name.replace("_", "-")
            raise click.UsageError(
                f"{option} applies to generated keys; keys from --ticket-keys files are "
                "rotated by replacing the files and sending SIGHUP"
            )
