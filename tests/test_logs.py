"""Redaction: no token, secret or bound value reaches a log line, whatever the call site did."""

from __future__ import annotations

import io
import json
import logging

import structlog

from gateway.logs import REDACTOR, Redactor, configure_logging
from tests.factories import make_token


def test_sensitive_keys_are_masked_and_secrets_masked_anywhere() -> None:
    redactor = Redactor()
    redactor.add_secret("electric-secret-value")
    token = make_token()
    event = redactor(
        None,
        "info",
        {
            "event": "x",
            "token": token,
            "Authorization": f"Bearer {token}",
            "params": ["acme"],
            "where": "tenant_id = $1",
            "reason": "GET http://e:3000/v1/shape?table=t&where=a%3D%241&params%5B1%5D=acme"
            "&secret=electric-secret-value failed",
            "note": f"the token {token} and the secret electric-secret-value",
            "user": "alice",
        },
    )
    text = json.dumps(event)
    assert token not in text
    assert "electric-secret-value" not in text
    assert "acme" not in text
    assert "tenant_id" not in text
    assert event["user"] == "alice"


def test_configured_json_logging_applies_the_redactor() -> None:
    stream = io.StringIO()
    configure_logging("json", logging.INFO, cache=False)
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(stream))
    REDACTOR.add_secret("another-secret-value")
    try:
        structlog.get_logger("t").info("upstream_failed", reason="secret=another-secret-value")
    finally:
        structlog.reset_defaults()
    line = json.loads(stream.getvalue())
    assert line["event"] == "upstream_failed"
    assert "another-secret-value" not in stream.getvalue()
