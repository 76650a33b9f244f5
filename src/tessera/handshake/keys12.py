"""TLS 1.2 key material: master secret, key block, Finished. The key block and both Finished
come from one :class:`~tessera.crypto.prf.Prf` of the master secret (keyed once per handshake)."""

from __future__ import annotations

from ..crypto import prf
from ..crypto.prf import Prf
from ..crypto.suites import CipherSuite
from ..record.protection import RecordProtection
from .port import Direction, Epoch, Keys12, protection


def compute_master_secret(
    suite: CipherSuite,
    premaster: bytes,
    client_random: bytes,
    server_random: bytes,
    session_hash: bytes | None,
) -> bytes:
    """The master secret; extended (RFC 7627) when ``session_hash`` is given."""
    if session_hash is not None:
        return prf.extended_master_secret(suite.prf_hash, premaster, session_hash)
    return prf.master_secret(suite.prf_hash, premaster, client_random, server_random)


def master_prf(suite: CipherSuite, master: bytes) -> Prf:
    """The PRF under the master secret, for :func:`key_block` and :func:`finished_data`."""
    return Prf(suite.prf_hash, master)


def key_block(
    suite: CipherSuite, master: Prf, client_random: bytes, server_random: bytes, etm: bool
) -> tuple[Keys12, Keys12]:
    """(client write, server write) key material from the key block (RFC 5246 §6.3)."""
    mac, key, iv = suite.mac_len, suite.key_len, suite.fixed_iv_len
    block = master.key_block(client_random, server_random, 2 * (mac + key + iv))
    c_mac, s_mac = block[:mac], block[mac : 2 * mac]
    p = 2 * mac
    c_key, s_key = block[p : p + key], block[p + key : p + 2 * key]
    p += 2 * key
    c_iv, s_iv = block[p : p + iv], block[p + iv : p + 2 * iv]
    return Keys12(c_key, c_iv, c_mac, etm), Keys12(s_key, s_iv, s_mac, etm)


def finished_data(master: Prf, from_client: bool, digest: bytes) -> bytes:
    return master.verify_data(from_client, digest)


def protections(
    suite: CipherSuite, master: bytes, client_random: bytes, server_random: bytes, etm: bool
) -> tuple[RecordProtection, RecordProtection]:
    """(client write, server write) record protection, as the port builds them."""
    c, s = key_block(suite, master_prf(suite, master), client_random, server_random, etm)
    app = Epoch.APPLICATION
    return protection(Direction.WRITE, app, suite, c), protection(Direction.WRITE, app, suite, s)
