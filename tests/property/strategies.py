"""Hypothesis strategies for messages and extensions (only values the codec can represent)."""

from __future__ import annotations

from hypothesis import strategies as st

from tessera.messages import (
    Alert,
    Certificate12,
    Certificate13,
    CertificateEntry,
    CertificateRequest12,
    CertificateRequest13,
    CertificateVerify,
    ClientHello,
    ClientKeyExchangeECDHE,
    ClientKeyExchangeRSA,
    EncryptedExtensions,
    Finished,
    KeyUpdate,
    NewSessionTicket12,
    NewSessionTicket13,
    ServerHello,
    ServerHelloDone,
    ServerKeyExchangeECDHE,
)
from tessera.messages import extensions as X
from tessera.messages.hello import HELLO_RETRY_REQUEST_RANDOM

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)


def opaque(min_size: int = 0, max_size: int = 40) -> st.SearchStrategy[bytes]:
    return st.binary(min_size=min_size, max_size=max_size)


def u16s(min_size: int = 1, max_size: int = 8) -> st.SearchStrategy[tuple[int, ...]]:
    return st.lists(u16, min_size=min_size, max_size=max_size).map(tuple)


# DNS host names (RFC 6066 §3): dot-separated labels, at most one trailing dot.
_labels = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_", min_size=1, max_size=15)
host_names = st.builds(
    lambda labels, dot: ".".join(labels) + dot,
    st.lists(_labels, min_size=1, max_size=4),
    st.sampled_from(["", "."]),
)
alpn_protocols = st.lists(opaque(1, 12), min_size=1, max_size=4).map(tuple)


def key_share_entries(min_size: int = 0) -> st.SearchStrategy[tuple[X.KeyShareEntry, ...]]:
    return st.lists(
        st.builds(X.KeyShareEntry, u16, opaque(1, 40)),
        min_size=min_size,
        max_size=4,
        unique_by=lambda e: e.group,
    ).map(tuple)


psks = st.integers(1, 3).flatmap(
    lambda n: st.builds(
        X.OfferedPsks,
        st.lists(st.builds(X.PskIdentity, opaque(1, 30), u32), min_size=n, max_size=n).map(tuple),
        st.lists(opaque(32, 48), min_size=n, max_size=n).map(tuple),
    )
)

# Extensions a ClientHello can carry (each code at most once), with their bodies.
client_hello_extensions = st.lists(
    st.one_of(
        st.builds(X.ServerName, host_names),
        st.builds(X.SupportedGroups, u16s()),
        st.builds(X.ECPointFormats, st.lists(u8, min_size=1, max_size=3).map(tuple)),
        st.builds(X.SignatureAlgorithms, u16s()),
        st.builds(X.SignatureAlgorithmsCert, u16s()),
        st.builds(X.ALPN, alpn_protocols),
        st.just(X.EncryptThenMac()),
        st.just(X.ExtendedMasterSecret()),
        st.builds(X.SessionTicketExt, opaque(0, 100)),
        st.builds(X.RenegotiationInfo, opaque(0, 12)),
        st.builds(X.SupportedVersionsOffer, u16s(1, 5)),
        st.builds(X.KeyShareOffer, key_share_entries()),
        psks,
        st.builds(X.PskKeyExchangeModes, st.lists(u8, min_size=1, max_size=2).map(tuple)),
        st.just(X.EarlyDataIndication()),
        st.builds(X.Cookie, opaque(1, 30)),
        st.just(X.PostHandshakeAuth()),
        st.builds(X.UnknownExtension, st.integers(0x5000, 0xFEFF), opaque(0, 20)),
    ),
    max_size=8,
    unique_by=X.ext_code,
).map(tuple)

server_hello_extensions = st.lists(
    st.one_of(
        st.just(X.ServerNameAck()),
        st.builds(X.ECPointFormats, st.lists(u8, min_size=1, max_size=3).map(tuple)),
        st.builds(X.ALPN, alpn_protocols.map(lambda p: p[:1])),
        st.just(X.EncryptThenMac()),
        st.just(X.ExtendedMasterSecret()),
        st.builds(X.SessionTicketExt, opaque(0, 0)),
        st.builds(X.RenegotiationInfo, opaque(0, 24)),
        st.builds(X.SupportedVersionSelected, u16),
        st.builds(X.KeyShareSelected, st.builds(X.KeyShareEntry, u16, opaque(1, 40))),
        st.builds(X.PreSharedKeySelected, u16),
    ),
    max_size=6,
    unique_by=X.ext_code,
).map(tuple)

randoms = st.binary(min_size=32, max_size=32).filter(lambda r: r != HELLO_RETRY_REQUEST_RANDOM)

client_hellos = st.builds(
    ClientHello,
    u16,
    randoms,
    opaque(0, 32),
    u16s(1, 20),
    st.lists(u8, min_size=1, max_size=3).map(tuple),
    client_hello_extensions,
    st.booleans(),
)

server_hellos = st.builds(
    ServerHello, u16, randoms, opaque(0, 32), u16, u8, server_hello_extensions
)

der = opaque(1, 60)

messages = st.one_of(
    client_hellos,
    server_hellos,
    st.builds(Certificate12, st.lists(der, max_size=4).map(tuple)),
    st.builds(
        Certificate13,
        opaque(0, 10),
        st.lists(st.builds(CertificateEntry, der, st.just(())), max_size=3).map(tuple),
    ),
    st.builds(
        CertificateRequest12,
        st.lists(u8, min_size=1, max_size=3).map(tuple),
        u16s(1, 6),
        st.lists(opaque(1, 30), max_size=3).map(tuple),
    ),
    st.builds(
        CertificateRequest13,
        opaque(0, 10),
        st.lists(st.builds(X.SignatureAlgorithms, u16s()), max_size=1).map(tuple),
    ),
    st.builds(CertificateVerify, u16, opaque(1, 80)),
    st.builds(ServerKeyExchangeECDHE, u16, opaque(1, 97), u16, opaque(1, 80)),
    st.builds(ClientKeyExchangeECDHE, opaque(1, 97)),
    st.builds(ClientKeyExchangeRSA, opaque(1, 300)),
    st.just(ServerHelloDone()),
    st.builds(Finished, opaque(0, 48)),
    st.builds(NewSessionTicket12, u32, opaque(0, 200)),
    st.builds(
        NewSessionTicket13,
        u32,
        u32,
        opaque(0, 8),
        opaque(1, 100),
        st.lists(st.builds(X.EarlyDataLimit, u32), max_size=1).map(tuple),
    ),
    st.builds(
        EncryptedExtensions,
        st.lists(
            st.one_of(
                st.just(X.ServerNameAck()),
                st.builds(X.SupportedGroups, u16s()),
                st.builds(X.ALPN, alpn_protocols.map(lambda p: p[:1])),
                st.just(X.EarlyDataIndication()),
            ),
            max_size=4,
            unique_by=X.ext_code,
        ).map(tuple),
    ),
    st.builds(KeyUpdate, st.integers(0, 1)),
)

alerts = st.builds(Alert, st.integers(1, 2), u8)
