"""Free ports for the servers tests (and benchmarks) start; no pytest needed."""

from __future__ import annotations

import collections
import random
import socket

# Ports for the servers tests start: below the kernel's ephemeral range (32768-60999 here), so no
# client connection of this or another test run can take one as its local port between the check
# and the server's bind; below 22768 so that a Redis Cluster's default bus port (+10000) is too.
_PORTS = range(10000, 22768)
_given: collections.deque[int] = collections.deque(maxlen=2000)


def _bindable(port: int) -> bool:
    """No socket holds ``port`` on any address (servers such as ``openssl s_server`` bind them
    all; a dual-stack ``::`` bind covers IPv4 too where IPv6 exists)."""
    for family, host in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
        try:
            s = socket.socket(family)
        except OSError:
            continue  # no IPv6 here
        with s:
            try:
                s.bind((host, port))
            except OSError:
                return False
    return True


def free_port() -> int:
    """A port no socket holds now, not given out recently by this process (two calls before
    either server binds get different ports)."""
    for _ in range(1000):
        port = random.choice(_PORTS)
        if port not in _given and _bindable(port):
            _given.append(port)
            return port
    raise RuntimeError(f"no free port in {_PORTS.start}-{_PORTS.stop - 1}")
