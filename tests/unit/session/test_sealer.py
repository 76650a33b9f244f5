"""Rfc5077Sealer: ``key_name | iv | AES-CBC(state) | HMAC-SHA256``; MAC first, length first."""

from __future__ import annotations

import hashlib
import hmac
import os

import pytest
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from tessera import TicketKey, TicketKeyring
from tessera.session import sealer as sealer_module
from tessera.session.sealer import MAX_TICKET, MIN_TICKET, Opened, Rfc5077Sealer
from tessera.session.stats import FallbackReason


class Clock:
    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=[48, 80], ids=["aes128", "aes256"])
def ring(request: pytest.FixtureRequest) -> TicketKeyring:
    return TicketKeyring([TicketKey.generate(0.0, request.param)], clock=Clock())


def test_format(ring: TicketKeyring) -> None:
    k = ring.encryption_key()
    assert k is not None
    iv = bytes(range(16))
    state = b"session state of some length"
    ticket = Rfc5077Sealer(ring).seal(state, iv)
    assert ticket is not None
    assert ticket[:16] == k.name
    assert ticket[16:32] == iv
    body, mac = ticket[:-32], ticket[-32:]
    assert mac == hmac.digest(k.hmac_key, body, hashlib.sha256)
    dec = Cipher(algorithms.AES(k.aes_key), modes.CBC(iv)).decryptor()
    padded = dec.update(ticket[32:-32]) + dec.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    assert unpadder.update(padded) + unpadder.finalize() == state
    assert (len(ticket) - 64) % 16 == 0


def test_open_round_trip(ring: TicketKeyring) -> None:
    for state in (b"", b"x", bytes(16), os.urandom(1000)):
        ticket = Rfc5077Sealer(ring).seal(state, os.urandom(16))
        assert Rfc5077Sealer(ring).open(ticket) == Opened(state, True, ticket[:16])


def test_old_key_is_not_current() -> None:
    clock = Clock()
    ring = TicketKeyring(rotation_interval=10, keep=1, clock=clock)
    ticket = Rfc5077Sealer(ring).seal(b"state", bytes(16))
    clock.now = 10
    assert Rfc5077Sealer(ring).open(ticket) == Opened(b"state", False, ticket[:16])
    fresh = Rfc5077Sealer(ring).seal(b"state", bytes(16))
    assert fresh[:16] != ticket[:16]
    assert Rfc5077Sealer(ring).open(fresh) == Opened(b"state", True, fresh[:16])


def test_no_key_no_ticket() -> None:
    ring = TicketKeyring([], generate=False, clock=Clock())
    assert Rfc5077Sealer(ring).seal(b"state", bytes(16)) is None


def test_every_bit_is_authenticated(ring: TicketKeyring) -> None:
    ticket = Rfc5077Sealer(ring).seal(b"0123456789", bytes(16))
    for i in range(len(ticket)):
        bad = bytearray(ticket)
        bad[i] ^= 0x04
        expected = FallbackReason.TICKET_UNKNOWN_KEY if i < 16 else FallbackReason.TICKET_MAC_FAILED
        assert Rfc5077Sealer(ring).open(bytes(bad)) is expected


def test_valid_mac_over_bad_padding(ring: TicketKeyring) -> None:
    """Someone holding the keys made a ticket with broken padding: refused, not a crash."""
    k = ring.encryption_key()
    assert k is not None
    iv = bytes(16)
    enc = Cipher(algorithms.AES(k.aes_key), modes.CBC(iv)).encryptor()
    body = k.name + iv + enc.update(b"\x00" * 15 + b"\x11") + enc.finalize()
    ticket = body + hmac.digest(k.hmac_key, body, hashlib.sha256)
    assert Rfc5077Sealer(ring).open(ticket) is FallbackReason.TICKET_MAC_FAILED


@pytest.mark.parametrize(
    "length",
    [0, 1, 16, 63, 64, MIN_TICKET - 1, MIN_TICKET + 1, MIN_TICKET + 15, MAX_TICKET + 16, 10**5],
)
def test_impossible_lengths_rejected_before_any_crypto(
    ring: TicketKeyring, length: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(*args: object, **kw: object) -> None:
        raise AssertionError("cryptography ran on a ticket of impossible length")

    monkeypatch.setattr(ring, "decryption_key", boom)
    monkeypatch.setattr(sealer_module, "hmac_digest", boom)
    monkeypatch.setattr(sealer_module.hmac, "compare_digest", boom)
    monkeypatch.setattr(TicketKey, "cbc_decrypt", boom)
    assert Rfc5077Sealer(ring).open(bytes(length)) is FallbackReason.TICKET_MALFORMED


def test_mac_checked_with_compare_digest_before_decrypting(
    ring: TicketKeyring, monkeypatch: pytest.MonkeyPatch
) -> None:
    ticket = Rfc5077Sealer(ring).seal(b"state", bytes(16))
    assert ticket is not None
    calls: list[str] = []
    real_compare = hmac.compare_digest
    real_decrypt = TicketKey.cbc_decrypt

    def compare(a: bytes, b: bytes) -> bool:
        calls.append("compare_digest")
        return real_compare(a, b)

    def decrypt(key: TicketKey, iv: bytes, data: bytes) -> bytes:
        calls.append("decrypt")
        return real_decrypt(key, iv, data)

    monkeypatch.setattr(sealer_module.hmac, "compare_digest", compare)
    monkeypatch.setattr(TicketKey, "cbc_decrypt", decrypt)
    assert Rfc5077Sealer(ring).open(ticket) == Opened(b"state", True, ticket[:16])
    assert calls == ["compare_digest", "decrypt"]

    calls.clear()
    bad = ticket[:-1] + bytes([ticket[-1] ^ 1])
    assert Rfc5077Sealer(ring).open(bad) is FallbackReason.TICKET_MAC_FAILED
    assert calls == ["compare_digest"]  # no decryption of an unauthenticated ticket


def test_unknown_key_name_needs_no_mac(
    ring: TicketKeyring, monkeypatch: pytest.MonkeyPatch
) -> None:
    ticket = Rfc5077Sealer(ring).seal(b"state", bytes(16))
    assert ticket is not None
    other = TicketKeyring([TicketKey.generate(0.0)], clock=Clock())
    assert Rfc5077Sealer(other).open(ticket) is FallbackReason.TICKET_UNKNOWN_KEY


def test_iv_is_what_the_caller_gives(ring: TicketKeyring) -> None:
    a = Rfc5077Sealer(ring).seal(b"same", b"\x01" * 16)
    b = Rfc5077Sealer(ring).seal(b"same", b"\x02" * 16)
    assert a is not None and b is not None
    assert a[32:-32] != b[32:-32]


@pytest.mark.parametrize("size", [48, 80])
@pytest.mark.parametrize("blocks", [1, 2, 7, 64])
def test_cbc_matches_cryptography(size: int, blocks: int) -> None:
    """TicketKey's CBC (chained over AES block operations) is AES-CBC, both ways."""
    key = TicketKey.generate(0.0, size)
    for _ in range(3):  # the key's encryptor lives on: each message must still start afresh
        iv, data = os.urandom(16), os.urandom(16 * blocks)
        enc = Cipher(algorithms.AES(key.aes_key), modes.CBC(iv)).encryptor()
        expected = enc.update(data) + enc.finalize()
        assert key.cbc_encrypt(iv, data) == expected
        assert key.cbc_decrypt(iv, expected) == data


def test_cbc_from_many_threads() -> None:
    """Each thread gets its own block contexts: concurrent seals and opens stay correct."""
    import threading

    ring = TicketKeyring([TicketKey.generate(0.0)], clock=Clock())
    sealer = Rfc5077Sealer(ring)
    errors: list[str] = []

    def work(n: int) -> None:
        for i in range(300):
            state = f"thread {n} state {i}".encode() * (1 + i % 5)
            ticket = sealer.seal(state, os.urandom(16))
            assert ticket is not None
            opened = sealer.open(ticket)
            if opened != Opened(state, True, ticket[:16]):
                errors.append(f"{n}/{i}: {opened!r}")

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
