"""Redaction: no token, secret or bound value reaches a log line, whatever the call site did."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import time
from datetime import datetime
from typing import Any

import pytest
import structlog

from gateway.log_sink import LineSink
from gateway.logs import MASK, REDACTOR, Redactor, configure_logging, describe_malformed
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
    stream = io.BytesIO()
    configure_logging("json", logging.INFO, cache=False)
    structlog.configure(logger_factory=lambda *_: LineSink(stream))
    REDACTOR.add_secret("another-secret-value")
    try:
        structlog.get_logger("t").info("upstream_failed", reason="secret=another-secret-value")
        structlog.get_logger("t").info("odd_claim", user="e\udcffve")  # orjson refuses it
    finally:
        structlog.reset_defaults()
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["event"] == "upstream_failed"
    assert b"another-secret-value" not in stream.getvalue()
    assert second["user"] == "e\udcffve"


async def test_lines_logged_in_one_loop_iteration_leave_in_one_write() -> None:
    class Recording(io.BytesIO):
        writes = 0

        def write(self, data: Any) -> int:
            self.writes += 1
            return super().write(data)

    stream = Recording()
    sink = LineSink(stream)
    for n in range(50):
        sink.msg(f"line {n}".encode())
    assert stream.writes == 0
    await asyncio.sleep(0)
    assert stream.writes == 1
    assert stream.getvalue().count(b"\n") == 50


async def test_a_sink_that_cannot_write_is_unhealthy_until_it_can() -> None:
    stream = io.BytesIO()
    sink = LineSink(stream)
    stream.close()
    sink.msg(b"lost")
    await asyncio.sleep(0)
    assert not sink.healthy
    sink.stream = io.BytesIO()
    sink.msg(b"written")
    await asyncio.sleep(0)
    assert sink.healthy


def test_lines_are_stamped_in_utc_iso_8601_to_the_microsecond() -> None:
    stream = io.BytesIO()
    configure_logging("json", logging.INFO, cache=False)
    structlog.configure(logger_factory=lambda *_: LineSink(stream))
    try:
        structlog.get_logger("t").info("stamped")
    finally:
        structlog.reset_defaults()
    stamp = json.loads(stream.getvalue())["timestamp"]
    parsed = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    assert stamp.endswith("Z")
    assert abs(parsed.timestamp() - time.time()) < 5


@pytest.mark.parametrize(
    "text",
    [
        "Cookie: sg=opaque-session-value; theme=dark",
        "cookie=opaque-session-value",
        "{'Cookie': 'sg=opaque-session-value', 'Host': 'gateway'}",
        '<CIMultiDictProxy("Authorization": "Basic opaque-session-value")>',
        "ValueError: boom Authorization: Token opaque-session-value",
        "Set-Cookie: sg=opaque-session-value; HttpOnly",
        "b'Proxy-Authorization: opaque-session-value\\x01'",
    ],
)
def test_cookie_and_authorization_values_are_masked_in_any_text_jwt_shaped_or_not(
    text: str,
) -> None:
    cleaned = Redactor().clean(text)
    assert "opaque-session-value" not in cleaned
    assert MASK in cleaned


def test_text_that_only_mentions_cookies_is_left_alone() -> None:
    text = "the sg cookie was sent 2 times; GATEWAY_AUTH_COOKIE=sg is set"
    assert Redactor().clean(text) == text


@pytest.mark.parametrize(
    ("message", "described"),
    [
        ("Invalid header value char:\n\n  b'Cookie: sg=opaque\\x01'\n      ^",
         "Invalid header value char (header Cookie)"),
        ("Got more than 16384 bytes when reading: b'sg=opaqueAAAA...'.",
         "Got more than 16384 bytes when reading"),
        ('Invalid header token:\n\n  b"Authorization Bearer opaque"\n  ^', "Invalid header token"),
    ],
)  # fmt: skip
def test_aiohttps_malformed_request_errors_keep_what_was_wrong_but_not_the_bytes(
    message: str, described: str
) -> None:
    assert describe_malformed(message) == described
