"""A Redis failure in words an operator acts on, for banners, status pages and logs.

redis-py's exceptions carry what a developer needs — ``MasterNotFoundError`` quotes the repr of
every client it tried, a TLS failure the ``_ssl.c`` line — which buries the cause in a status
line. :func:`describe` keeps the cause and says which part of ``--redis`` to change. It looks
only at the exception's class name, text and cause, so nothing here imports redis-py.
"""

from __future__ import annotations

import ssl

from ..addresses import describe_os_error

LIMIT = 240
CLIENT_CERT = "give one in --redis as ?ssl_certfile=FILE&ssl_keyfile=FILE"
# What a TLS client reads when Redis wants a client certificate it was not given: TLS 1.3's
# alert; TLS 1.2's (also sent for other reasons), or the bare EOF of a TLS 1.3 server that closed
# before its alert was read: these two only suggest it.
_CERT_REQUIRED = "alert certificate required"
_CERT_SUGGESTED = {"alert handshake failure": "alert handshake failure",
                   "eof occurred in violation of protocol": "EOF in the handshake"}  # fmt: skip
_CERT_REFUSED = ("alert unknown ca", "alert bad certificate", "alert certificate unknown",
                 "alert unsupported certificate", "alert certificate expired")  # fmt: skip


def _plain(text: str) -> str:
    """``text`` without the client reprs redis-py appends (``... : <redis.client.Redis(...``)."""
    cut = text.find("<redis.")
    if cut >= 0:
        text = text[:cut]
    return text.strip().rstrip(":,(").strip()


def _os_cause(error: BaseException) -> OSError | None:
    """The OSError a client's error is about (redis-py raises its ConnectionError over it)."""
    cause: BaseException | None = error
    for _ in range(4):
        if cause is None or isinstance(cause, OSError):
            return cause
        cause = cause.__cause__ or cause.__context__
    return None


def _chain_text(error: BaseException) -> str:
    """The texts of ``error`` and of the errors it was raised over, lower case: redis-py puts
    the TLS reason in the cause, or (``MasterNotFoundError``) after each sentinel's repr."""
    texts, cause = [], error.__cause__ or error.__context__
    for _ in range(4):
        if cause is None:
            break
        texts.append(str(cause))
        cause = cause.__cause__ or cause.__context__
    return " ".join([str(error), *texts]).lower()


def _tls_hint(error: BaseException) -> str | None:
    """A TLS handshake with Redis (or a sentinel) that its side refused: the client
    certificate it requires or does not trust, in the options that give it."""
    low = _chain_text(error)
    if _CERT_REQUIRED in low:
        return f"Redis requires a TLS client certificate: {CLIENT_CERT}"
    if refused := next((alert for alert in _CERT_REFUSED if alert in low), None):
        return (f"Redis refused the client certificate in ?ssl_certfile= ({refused}): give "
                "one signed by a CA in its tls-ca-cert-file")  # fmt: skip
    if why := next((said for seen, said in _CERT_SUGGESTED.items() if seen in low), None):
        return (f"Redis ended the TLS handshake ({why}); if it requires client certificates "
                f"(tls-auth-clients yes), {CLIENT_CERT}")  # fmt: skip
    return None


def describe(error: BaseException) -> str:
    """What went wrong and what to check, at most :data:`LIMIT` characters."""
    name = type(error).__name__
    text = _plain(str(error))
    low = text.lower()
    if "certificate verify failed" in low:
        why = low.partition("certificate verify failed:")[2].partition("(_ssl")[0].strip()
        hint = (f"Redis's TLS certificate was refused ({why or 'not trusted'}): give the CA "
                "that signed it in --redis as ?ssl_ca_certs=FILE")  # fmt: skip
    elif tls_hint := _tls_hint(error):
        hint = tls_hint
    elif name == "MasterNotFoundError":
        hint = (f"{text or 'no master found'}: no sentinel named it; check the sentinels' "
                "addresses, the master's name, ?sentinel_password= and (TLS) ?ssl_ca_certs= "
                "in --redis")  # fmt: skip
    elif name == "AuthenticationError" or "wrongpass" in low or "invalid username" in low:
        hint = "Redis refused the user or password in --redis"
    elif name == "NoPermissionError" or low.startswith("noperm"):
        hint = f"the Redis user in --redis may not do this ({text}); allow it ~tessera:* keys"
    elif name in ("TimeoutError", "TimeoutException") or "timed out" in low:
        hint = f"Redis did not answer in time ({text or 'timeout'})"
    elif isinstance(os_error := _os_cause(error), ssl.SSLError):  # (its errno is OpenSSL's)
        why = os_error.reason or _plain(str(os_error))
        hint = f"the TLS connection to Redis failed ({why}); check the ?ssl_ options in --redis"
    elif os_error is not None:  # connection refused, no such host...
        hint = describe_os_error(os_error)
    else:
        hint = f"{name}: {text}" if text else name
    return hint[:LIMIT]
