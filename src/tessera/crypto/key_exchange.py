"""Ephemeral (EC)DH over the named groups: X25519, secp256r1, secp384r1 (and secp521r1, X448)."""

from __future__ import annotations

from collections.abc import Callable

from cryptography.hazmat.primitives.asymmetric import ec, x448, x25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ..enums import NamedGroup
from ..errors import IllegalParameter

_CURVES: dict[int, type[ec.EllipticCurve]] = {
    NamedGroup.secp256r1: ec.SECP256R1,
    NamedGroup.secp384r1: ec.SECP384R1,
    NamedGroup.secp521r1: ec.SECP521R1,
}
# Length of an uncompressed point (0x04 | X | Y).
_POINT_LEN: dict[int, int] = {
    NamedGroup.secp256r1: 65,
    NamedGroup.secp384r1: 97,
    NamedGroup.secp521r1: 133,
}

SUPPORTED_GROUPS: frozenset[int] = frozenset(
    (
        NamedGroup.x25519,
        NamedGroup.secp256r1,
        NamedGroup.secp384r1,
        NamedGroup.secp521r1,
        NamedGroup.x448,
    )
)
DEFAULT_GROUPS: tuple[NamedGroup, ...] = (
    NamedGroup.x25519,
    NamedGroup.secp256r1,
    NamedGroup.secp384r1,
)


class KeyShare:
    """One ephemeral private key and its encoded public value.

    With ``rng`` (the client passes its config's), X25519 and X448 private keys are drawn from
    it, so a fixed rng reproduces a ClientHello byte for byte (the auditor's 0-RTT replay
    probe); EC keys always come from OpenSSL's generator.
    """

    __slots__ = ("_private", "group", "public")

    def __init__(self, group: int, rng: Callable[[int], bytes] | None = None) -> None:
        self.group = group
        if group == NamedGroup.x25519:
            xk = (
                x25519.X25519PrivateKey.from_private_bytes(rng(32))
                if rng is not None
                else x25519.X25519PrivateKey.generate()
            )
            self._private: object = xk
            self.public = xk.public_key().public_bytes_raw()
        elif group == NamedGroup.x448:
            k448 = (
                x448.X448PrivateKey.from_private_bytes(rng(56))
                if rng is not None
                else x448.X448PrivateKey.generate()
            )
            self._private = k448
            self.public = k448.public_key().public_bytes_raw()
        elif group in _CURVES:
            ek = ec.generate_private_key(_CURVES[group]())
            self._private = ek
            self.public = ek.public_key().public_bytes(
                Encoding.X962, PublicFormat.UncompressedPoint
            )
        else:
            raise ValueError(f"unsupported group {group}")

    def exchange(self, peer_public: bytes) -> bytes:
        """The shared secret with the peer's public value; a bad value is illegal_parameter."""
        group = self.group
        try:
            if group == NamedGroup.x25519:
                if len(peer_public) != 32:
                    raise IllegalParameter("an X25519 key share must be 32 bytes")
                assert isinstance(self._private, x25519.X25519PrivateKey)
                peer_x = x25519.X25519PublicKey.from_public_bytes(peer_public)
                return self._private.exchange(peer_x)
            if group == NamedGroup.x448:
                if len(peer_public) != 56:
                    raise IllegalParameter("an X448 key share must be 56 bytes")
                assert isinstance(self._private, x448.X448PrivateKey)
                peer_448 = x448.X448PublicKey.from_public_bytes(peer_public)
                return self._private.exchange(peer_448)
            if len(peer_public) != _POINT_LEN[group] or peer_public[0] != 4:
                raise IllegalParameter("an EC key share must be an uncompressed point")
            assert isinstance(self._private, ec.EllipticCurvePrivateKey)
            peer_ec = ec.EllipticCurvePublicKey.from_encoded_point(_CURVES[group](), peer_public)
            return self._private.exchange(ec.ECDH(), peer_ec)
        except ValueError as e:
            raise IllegalParameter(f"the peer's key share is not a valid point: {e}") from None
