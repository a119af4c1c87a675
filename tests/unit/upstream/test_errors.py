"""Which upstream answers reach the client as Electric sent them, against a real socket server:
Electric's JSON errors pass, a 500 or an answer that is not JSON becomes our 502 (with the body
logged, decompressed), and a 4xx's log keeps schema messages but never a where's."""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import MutableMapping
from typing import Any

import pytest
from structlog.testing import capture_logs

from gateway.errors import Code, Refusal
from gateway.rules.model import Upstream
from gateway.upstream.client import Timeouts, UpstreamPool, UpstreamResponse, send
from gateway.upstream.errors import (
    LOGGED_BYTES,
    refuse_unless_electric_answered,
    rejection_details,
)
from tests.unit.upstream.test_connection import Script, request, started


def raw_answer(status: str, content_type: str | None, body: bytes, *extra: str) -> bytes:
    lines = [f"HTTP/1.1 {status}", f"content-length: {len(body)}", *extra]
    if content_type is not None:
        lines.append(f"content-type: {content_type}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def answered(answer: bytes) -> tuple[UpstreamResponse, UpstreamPool, asyncio.Server]:
    server, upstream = await started(Script(lambda writer, head: writer.write(answer)))
    pool = UpstreamPool()
    response = await send(pool, request(upstream), method="GET", headers={}, timeouts=Timeouts())
    return response, pool, server


async def judged(answer: bytes) -> tuple[Refusal | None, list[MutableMapping[str, Any]]]:
    """The refusal the answer is replaced with (None: passed through), and what was logged."""
    response, pool, server = await answered(answer)
    refusal = None
    with capture_logs() as logs:
        try:
            await refuse_unless_electric_answered(response)
        except Refusal as raised:
            refusal = raised
    response.close()
    pool.close()
    server.close()
    return refusal, logs


@pytest.mark.parametrize(
    "answer",
    [
        raw_answer("200 OK", "application/json", b"[]"),
        raw_answer("400 Bad Request", "application/json", b'{"errors":{"where":["bad"]}}'),
        raw_answer("409 Conflict", "application/json", b'[{"headers":{"control":"must-refetch"}}]'),
        raw_answer("409 Conflict", "text/plain", b"must refetch"),
        raw_answer("503 Service Unavailable", "application/json; charset=utf-8", b"{}",
                   "retry-after: 5"),
    ],
)  # fmt: skip
async def test_electrics_own_answers_and_json_errors_pass_through(answer: bytes) -> None:
    refusal, logs = await judged(answer)
    assert (refusal, logs) == (None, [])


@pytest.mark.parametrize(
    ("answer", "code"),
    [
        (raw_answer("500 Internal Server Error", "application/json", b'{"message":"boom"}'),
         Code.UPSTREAM_UNAVAILABLE),
        (raw_answer("502 Bad Gateway", "text/html", b"<html>nginx</html>"),
         Code.UPSTREAM_UNAVAILABLE),
        (raw_answer("404 Not Found", "text/plain", b"Not found"), Code.UPSTREAM_MISCONFIGURED),
        (raw_answer("400 Bad Request", None, b"bad"), Code.UPSTREAM_MISCONFIGURED),
    ],
)  # fmt: skip
async def test_a_500_or_an_answer_that_is_not_json_becomes_our_refusal(
    answer: bytes, code: Code
) -> None:
    refusal, logs = await judged(answer)
    assert refusal is not None
    assert refusal.code is code
    assert [log["event"] for log in logs] == ["upstream_error_replaced"]
    assert logs[0]["answered"] == code.value


async def test_the_replaced_answers_body_is_logged_decompressed_and_bounded() -> None:
    text = "ERROR: relation public.tasks does not exist " + "x" * (LOGGED_BYTES * 2)
    answer = raw_answer(
        "500 Internal Server Error", "text/plain", gzip.compress(text.encode()),
        "content-encoding: gzip",
    )  # fmt: skip
    _, logs = await judged(answer)
    assert logs[0]["body"] == text[:LOGGED_BYTES]
    assert logs[0]["upstream_status"] == 500


async def test_a_body_that_claims_gzip_and_is_not_is_logged_as_undecodable() -> None:
    answer = raw_answer(
        "500 Internal Server Error", "text/plain", b"plain", "content-encoding: gzip"
    )
    _, logs = await judged(answer)
    assert logs[0]["body"] == "(undecodable gzip body)"


async def test_a_replaced_answers_connection_is_closed() -> None:
    closed: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(raw_answer("500 Oops", "text/plain", b"x" * 100_000))
        closed.set_result(await reader.read())  # b"" once the gateway closes its end
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    upstream = Upstream("default", f"http://127.0.0.1:{port}", None)
    pool = UpstreamPool()
    response = await send(pool, request(upstream), method="GET", headers={}, timeouts=Timeouts())
    with capture_logs(), pytest.raises(Refusal):
        await refuse_unless_electric_answered(response)
    assert await asyncio.wait_for(closed, 5) == b""
    pool.close()
    server.close()


def test_schema_messages_are_kept_and_others_only_named() -> None:
    body = json.dumps(
        {"errors": {"columns": ["unknown column: titel"], "where": ["bad value 'secret-123'"]}}
    ).encode()
    assert rejection_details(body, {}) == {
        "columns": ["unknown column: titel"],
        "where": "(rejected; the message is not logged)",
    }
    assert rejection_details(gzip.compress(body), {"Content-Encoding": "gzip"})["columns"] == [
        "unknown column: titel"
    ]


@pytest.mark.parametrize("body", [b"Not found", b"[1]", b'{"errors": ["x"]}', b""])
def test_a_rejection_without_electrics_error_document_has_no_details(body: bytes) -> None:
    assert rejection_details(body, {}) == {}
