"""Redis failures in an operator's words: redis-py's own exceptions, as it raises them."""

from __future__ import annotations

import ssl

import redis.exceptions
import redis.sentinel

from tessera.fleet.failure import LIMIT, describe


def test_untrusted_certificate_names_the_url_parameter() -> None:
    e = redis.exceptions.ConnectionError(
        "Error 1 connecting to 127.0.0.1:6380. [SSL: CERTIFICATE_VERIFY_FAILED] certificate "
        "verify failed: unable to get local issuer certificate (_ssl.c:1006)."
    )
    text = describe(e)
    assert "unable to get local issuer certificate" in text
    assert "?ssl_ca_certs=FILE" in text and "_ssl.c" not in text


def test_master_not_found_drops_the_client_reprs() -> None:
    e = redis.sentinel.MasterNotFoundError(
        "No master found for 'fleetmaster' : <redis.client.Redis(<redis.connection."
        "ConnectionPool(<redis.connection.SSLConnection(db=0,username=<REDACTED>,password="
        "<REDACTED>,socket_timeout=0.5)>)>)>"
    )
    text = describe(e)
    assert text.startswith("No master found for 'fleetmaster': no sentinel named it")
    assert "<redis." not in text and "?sentinel_password=" in text


def test_credentials_timeouts_and_the_rest() -> None:
    assert describe(redis.exceptions.AuthenticationError("invalid username-password pair")) == (
        "Redis refused the user or password in --redis"
    )
    assert "did not answer in time" in describe(redis.exceptions.TimeoutError("Timeout reading"))
    try:  # as redis-py raises it: over the OSError
        try:
            raise ConnectionRefusedError(111, "Connection refused")
        except OSError as e:
            raise redis.exceptions.ConnectionError("Error 111 connecting to h:1.") from e
    except redis.exceptions.ConnectionError as e:
        assert describe(e) == "connection refused"
    bare = describe(redis.exceptions.ConnectionError("Error 111 connecting to h:1. Refused."))
    assert bare == "ConnectionError: Error 111 connecting to h:1. Refused."
    assert describe(RuntimeError()) == "RuntimeError"
    assert len(describe(ValueError("x" * 1000))) == LIMIT


def _over(cause: OSError, text: str) -> redis.exceptions.ConnectionError:
    """A redis-py ConnectionError raised over ``cause``, as redis-py raises it."""
    try:
        try:
            raise cause
        except OSError as e:
            raise redis.exceptions.ConnectionError(text) from e
    except redis.exceptions.ConnectionError as e:
        return e


def test_a_client_certificate_redis_requires_is_named_by_its_parameters() -> None:
    alert = ssl.SSLError(1, "[SSL: TLSV13_ALERT_CERTIFICATE_REQUIRED] tlsv13 alert certificate "
                            "required (_ssl.c:2580)")  # fmt: skip
    text = describe(_over(alert, "network"))
    assert text.startswith("Redis requires a TLS client certificate"), text
    assert "?ssl_certfile=FILE&ssl_keyfile=FILE" in text and "permission denied" not in text
    eof = ssl.SSLEOFError(8, "EOF occurred in violation of protocol (_ssl.c:2427)")
    text = describe(_over(eof, "Error 8 while writing to socket."))
    assert "?ssl_certfile=" in text and "eOF" not in text, text
    unknown = ssl.SSLError(1, "[SSL: TLSV1_ALERT_UNKNOWN_CA] tlsv1 alert unknown ca (_ssl.c:2580)")
    text = describe(_over(unknown, "network"))
    assert "refused the client certificate in ?ssl_certfile= (alert unknown ca)" in text, text


def test_a_sentinel_reason_after_the_client_reprs_is_kept() -> None:
    e = redis.sentinel.MasterNotFoundError(
        "No master found for 'm' : <redis.client.Redis(<redis.connection.ConnectionPool("
        "<redis.connection.SSLConnection(db=0,ssl_certfile=None)>)>)> - network:ConnectionError: "
        "Error while reading from 127.0.0.1:26379 : (1, '[SSL: TLSV13_ALERT_CERTIFICATE_REQUIRED]"
        " tlsv13 alert certificate required (_ssl.c:2580)')"
    )
    text = describe(e)
    assert "?ssl_certfile=" in text and "<redis." not in text, text


def test_other_tls_failures_say_tls_not_an_errno() -> None:
    other = ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1006)")
    other.reason = "WRONG_VERSION_NUMBER"
    text = describe(_over(other, "network"))
    assert text.startswith("the TLS connection to Redis failed (WRONG_VERSION_NUMBER)"), text
