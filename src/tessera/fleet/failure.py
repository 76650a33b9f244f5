"""A Redis failure in words an operator acts on, for banners, status pages and logs.

redis-py's exceptions carry what a developer needs — ``MasterNotFoundError`` quotes the repr of
every client it tried, a TLS failure the ``_ssl.c`` line — which buries the cause in a status
line. :func:`describe` keeps the cause and says which part of ``--redis`` to change. It looks
only at the exception's class name and text, so nothing here imports redis-py.
"""

from __future__ import annotations

LIMIT = 240


def _plain(text: str) -> str:
    """``text`` without the client reprs redis-py appends (``... : <redis.client.Redis(...``)."""
    cut = text.find("<redis.")
    if cut >= 0:
        text = text[:cut]
    return text.strip().rstrip(":,(").strip()


def describe(error: BaseException) -> str:
    """What went wrong and what to check, at most :data:`LIMIT` characters."""
    name = type(error).__name__
    text = _plain(str(error))
    low = text.lower()
    if "certificate verify failed" in low:
        why = low.partition("certificate verify failed:")[2].partition("(_ssl")[0].strip()
        hint = (f"Redis's TLS certificate was refused ({why or 'not trusted'}): give the CA "
                "that signed it in --redis as ?ssl_ca_certs=FILE")  # fmt: skip
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
    else:
        hint = f"{name}: {text}" if text else name
    return hint[:LIMIT]
