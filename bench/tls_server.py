"""The library's blocking ``TLSServer`` as a process for ``engine.py``'s serve part: an echo
handler (a ping answered, then close_notify both ways), resumption on as ``tessera serve``
has it (memory cache, rotating ticket keys).

    python bench/tls_server.py PORT CERT KEY [--threads pool|per-connection]

``pool`` is the server as shipped (a bounded pool of long-lived threads); ``per-connection``
starts and ends a thread for every connection, as the server did before, for comparison.
Stops on SIGTERM; on SIGUSR1 writes its CPU so far (getrusage: every thread, ended ones
too) to /tmp/tessera-bench-cpu-PID.
"""

from __future__ import annotations

import argparse
import os
import resource
import signal
import socket
import threading
from pathlib import Path

from tessera import CertifiedKey, ServerConfig, TLSServer, TLSSocket
from tessera.session.keyring import TicketKeyring
from tessera.session.store import MemoryStore


class ThreadPerConnection(TLSServer):
    """The server before the pool: a new thread for every accepted connection."""

    def _start(self, client: socket.socket, peer: object) -> None:
        client.settimeout(None)
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=self._serve_one, args=((client, peer),), daemon=True).start()


def echo(tls: TLSSocket) -> None:
    while data := tls.recv(65536):
        tls.sendall(data)


def report_cpu() -> None:
    """This process's CPU (every thread, ended ones too) in ns, for engine.py."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    path = Path(f"/tmp/tessera-bench-cpu-{os.getpid()}")
    tmp = path.with_suffix(".tmp")
    tmp.write_text(f"{int((usage.ru_utime + usage.ru_stime) * 1e9)}\n")
    tmp.replace(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("port", type=int)
    ap.add_argument("cert")
    ap.add_argument("key")
    ap.add_argument("--threads", choices=("pool", "per-connection"), default="pool")
    a = ap.parse_args()
    config = ServerConfig(certificates=(CertifiedKey.load(a.cert, a.key),),
                          session_store=MemoryStore(20000), ticket_keyring=TicketKeyring())  # fmt: skip
    kind = TLSServer if a.threads == "pool" else ThreadPerConnection
    server = kind(("127.0.0.1", a.port), config, echo)
    signal.signal(signal.SIGTERM, lambda signum, frame: server.shutdown())
    signal.signal(signal.SIGUSR1, lambda signum, frame: report_cpu())
    try:
        server.serve_forever()
    finally:
        Path(f"/tmp/tessera-bench-cpu-{os.getpid()}").unlink(missing_ok=True)


if __name__ == "__main__":
    main()
