"""Redis failures in an operator's words: redis-py's own exceptions, as it raises them."""

from __future__ import annotations

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
    refused = describe(redis.exceptions.ConnectionError("Error 111 connecting to h:1. Refused."))
    assert refused == "ConnectionError: Error 111 connecting to h:1. Refused."
    assert describe(RuntimeError()) == "RuntimeError"
    assert len(describe(ValueError("x" * 1000))) == LIMIT
