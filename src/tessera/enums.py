"""Protocol code points, named as in the RFCs and the IANA TLS registries."""

from __future__ import annotations

from enum import Enum, IntEnum


class ProtocolVersion(IntEnum):
    SSL3 = 0x0300
    TLS1_0 = 0x0301
    TLS1_1 = 0x0302
    TLS1_2 = 0x0303
    TLS1_3 = 0x0304

    @property
    def label(self) -> str:
        """The name OpenSSL prints for this version (``TLSv1.2``)."""
        return _VERSION_LABELS[self]


_VERSION_LABELS = {
    ProtocolVersion.SSL3: "SSLv3",
    ProtocolVersion.TLS1_0: "TLSv1",
    ProtocolVersion.TLS1_1: "TLSv1.1",
    ProtocolVersion.TLS1_2: "TLSv1.2",
    ProtocolVersion.TLS1_3: "TLSv1.3",
}


class ContentType(IntEnum):
    CHANGE_CIPHER_SPEC = 20
    ALERT = 21
    HANDSHAKE = 22
    APPLICATION_DATA = 23


class HandshakeType(IntEnum):
    HELLO_REQUEST = 0
    CLIENT_HELLO = 1
    SERVER_HELLO = 2
    NEW_SESSION_TICKET = 4
    END_OF_EARLY_DATA = 5
    ENCRYPTED_EXTENSIONS = 8
    CERTIFICATE = 11
    SERVER_KEY_EXCHANGE = 12
    CERTIFICATE_REQUEST = 13
    SERVER_HELLO_DONE = 14
    CERTIFICATE_VERIFY = 15
    CLIENT_KEY_EXCHANGE = 16
    FINISHED = 20
    KEY_UPDATE = 24
    MESSAGE_HASH = 254


class AlertLevel(IntEnum):
    WARNING = 1
    FATAL = 2


class AlertDescription(IntEnum):
    close_notify = 0
    unexpected_message = 10
    bad_record_mac = 20
    decryption_failed = 21
    record_overflow = 22
    decompression_failure = 30
    handshake_failure = 40
    no_certificate = 41
    bad_certificate = 42
    unsupported_certificate = 43
    certificate_revoked = 44
    certificate_expired = 45
    certificate_unknown = 46
    illegal_parameter = 47
    unknown_ca = 48
    access_denied = 49
    decode_error = 50
    decrypt_error = 51
    export_restriction = 60
    protocol_version = 70
    insufficient_security = 71
    internal_error = 80
    inappropriate_fallback = 86
    user_canceled = 90
    no_renegotiation = 100
    missing_extension = 109
    unsupported_extension = 110
    certificate_unobtainable = 111
    unrecognized_name = 112
    bad_certificate_status_response = 113
    bad_certificate_hash_value = 114
    unknown_psk_identity = 115
    certificate_required = 116
    no_application_protocol = 120


class ExtensionType(IntEnum):
    server_name = 0
    max_fragment_length = 1
    status_request = 5
    supported_groups = 10
    ec_point_formats = 11
    signature_algorithms = 13
    use_srtp = 14
    heartbeat = 15
    application_layer_protocol_negotiation = 16
    signed_certificate_timestamp = 18
    padding = 21
    encrypt_then_mac = 22
    extended_master_secret = 23
    compress_certificate = 27
    record_size_limit = 28
    session_ticket = 35
    pre_shared_key = 41
    early_data = 42
    supported_versions = 43
    cookie = 44
    psk_key_exchange_modes = 45
    certificate_authorities = 47
    oid_filters = 48
    post_handshake_auth = 49
    signature_algorithms_cert = 50
    key_share = 51
    renegotiation_info = 0xFF01


class NamedGroup(IntEnum):
    secp256r1 = 0x0017
    secp384r1 = 0x0018
    secp521r1 = 0x0019
    x25519 = 0x001D
    x448 = 0x001E
    ffdhe2048 = 0x0100
    ffdhe3072 = 0x0101


class SignatureScheme(IntEnum):
    rsa_pkcs1_sha1 = 0x0201
    ecdsa_sha1 = 0x0203
    rsa_pkcs1_sha256 = 0x0401
    rsa_pkcs1_sha384 = 0x0501
    rsa_pkcs1_sha512 = 0x0601
    ecdsa_secp256r1_sha256 = 0x0403
    ecdsa_secp384r1_sha384 = 0x0503
    ecdsa_secp521r1_sha512 = 0x0603
    rsa_pss_rsae_sha256 = 0x0804
    rsa_pss_rsae_sha384 = 0x0805
    rsa_pss_rsae_sha512 = 0x0806
    ed25519 = 0x0807
    ed448 = 0x0808
    rsa_pss_pss_sha256 = 0x0809
    rsa_pss_pss_sha384 = 0x080A
    rsa_pss_pss_sha512 = 0x080B


class ECPointFormat(IntEnum):
    uncompressed = 0
    ansiX962_compressed_prime = 1
    ansiX962_compressed_char2 = 2


class PskKeyExchangeMode(IntEnum):
    psk_ke = 0
    psk_dhe_ke = 1


class CertificateType(IntEnum):
    """ClientCertificateType of a TLS 1.2 CertificateRequest."""

    rsa_sign = 1
    dss_sign = 2
    ecdsa_sign = 64


class KeyUpdateRequest(IntEnum):
    update_not_requested = 0
    update_requested = 1


class NameType(IntEnum):
    host_name = 0


def code_name(enum_type: type[IntEnum], value: int) -> str:
    """``enum_type(value).name`` or a hex code for values we have no name for."""
    try:
        return enum_type(value).name
    except ValueError:
        return f"0x{value:04x}"


class ClientAuth(Enum):
    """What a server asks of the client: no certificate, one if it has one, or one without
    which the handshake fails."""

    NONE = "none"
    OPTIONAL = "optional"
    REQUIRED = "required"
