"""The upstream leg against a real socket server that misbehaves on demand: kept-alive
connections are reused, a stale one is retried once, bodies stream with back-pressure, a
silent or broken upstream becomes the spec's refusal, never a hang."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from gateway.errors import Code, Refusal
from gateway.rules.model import Upstream
from gateway.shape.plan import UpstreamRequest
from gateway.upstream.client import Timeouts, UpstreamPool, send
from gateway.upstream.connection import UpstreamBroken

OK = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n[]"


@dataclass
class Script:
    """What the server does with each request it reads: `answer(writer, head) -> None`."""

    answer: Callable[[asyncio.StreamWriter, bytes], object]
    connections: int = 0
    heads: list[bytes] = field(default_factory=list)
    pending: list[int] = field(default_factory=list)  # the server's unsent bytes, when asked


async def _serve(
    script: Script, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    script.connections += 1
    try:
        while head := await reader.readuntil(b"\r\n\r\n"):
            script.heads.append(head)
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    await reader.readexactly(int(line.split(b":")[1]))
            result = script.answer(writer, head)
            if asyncio.iscoroutine(result):
                await result
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def started(script: Script) -> tuple[asyncio.Server, Upstream]:
    server = await asyncio.start_server(lambda r, w: _serve(script, r, w), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, Upstream("default", f"http://127.0.0.1:{port}", "the-secret")


def request(upstream: Upstream, sse: bool = False) -> UpstreamRequest:
    return UpstreamRequest(
        shape="tasks", table="public.tasks", upstream=upstream, where="tenant_id = $1",
        params=("acme",), sources=("tenant",), columns=None,
        query=(("table", "public.tasks"), ("where", "tenant_id = $1"), ("params[1]", "acme"),
               ("offset", "-1")),
        live=False, sse=sse, subset=False,
    )  # fmt: skip


async def fetch(
    pool: UpstreamPool,
    upstream: Upstream,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    timeouts: Timeouts | None = None,
) -> bytes:
    response = await send(pool, request(upstream), method=method, headers=headers or {},
                          timeouts=timeouts or Timeouts())  # fmt: skip
    body = b"".join([chunk async for chunk in response.chunks()])
    response.release()
    return body


async def test_kept_alive_connections_are_reused() -> None:
    script = Script(lambda writer, head: writer.write(OK))
    server, upstream = await started(script)
    pool = UpstreamPool()
    for _ in range(5):
        assert await fetch(pool, upstream) == b"[]"
    assert script.connections == 1
    pool.close()
    server.close()


async def test_the_request_carries_the_secret_encoded_and_only_forwarded_headers() -> None:
    script = Script(lambda writer, head: writer.write(OK))
    server, upstream = await started(script)
    pool = UpstreamPool()
    headers = {"If-None-Match": '"abc"', "Authorization": "Bearer x", "Accept": "caf\u00e9"}
    await fetch(pool, upstream, headers=headers)
    head = script.heads[0].decode()
    assert head.startswith("GET /v1/shape?table=public.tasks&where=tenant_id%20%3D%20%241&")
    assert "params%5B1%5D=acme" in head
    assert "secret=the-secret" in head
    assert 'If-None-Match: "abc"' in head
    assert "Authorization" not in head  # the caller's token never goes upstream
    assert "Accept:" not in head  # a value that is not printable ASCII is dropped
    pool.close()
    server.close()


async def test_a_kept_alive_connection_closed_under_a_request_is_retried_once() -> None:
    script = Script(lambda writer, head: None)

    def close_the_second(writer: asyncio.StreamWriter, head: bytes) -> None:
        if len(script.heads) == 2:
            writer.transport.abort()  # the race a keep-alive timeout makes: no answer at all
        else:
            writer.write(OK)

    script.answer = close_the_second
    server, upstream = await started(script)
    pool = UpstreamPool()
    assert await fetch(pool, upstream) == b"[]"
    assert await fetch(pool, upstream) == b"[]"
    assert (script.connections, len(script.heads)) == (2, 3)  # the second was sent twice
    pool.close()
    server.close()


async def test_a_fresh_connection_that_fails_is_not_retried() -> None:
    script = Script(lambda writer, head: writer.transport.abort())
    server, upstream = await started(script)
    pool = UpstreamPool()
    with pytest.raises(Refusal) as caught:
        await fetch(pool, upstream)
    assert caught.value.code is Code.UPSTREAM_UNAVAILABLE
    assert len(script.heads) == 1
    pool.close()
    server.close()


async def test_chunked_bodies_stream_piece_by_piece() -> None:
    async def chunked(writer: asyncio.StreamWriter, head: bytes) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        for piece in (b"[1", b",2", b"]"):
            writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            await writer.drain()
            await asyncio.sleep(0.02)
        writer.write(b"0\r\n\r\n")

    server, upstream = await started(Script(chunked))
    pool = UpstreamPool()
    response = await send(pool, request(upstream), method="GET", headers={}, timeouts=Timeouts())
    pieces = [chunk async for chunk in response.chunks()]
    assert b"".join(pieces) == b"[1,2]"
    assert len(pieces) >= 2  # delivered as they came, not collected
    pool.close()
    server.close()


async def test_a_head_answer_ends_with_its_headers() -> None:
    script = Script(lambda writer, head: writer.write(
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 5000\r\n\r\n"
    ))  # fmt: skip
    server, upstream = await started(script)
    pool = UpstreamPool()
    async with asyncio.timeout(2):
        assert await fetch(pool, upstream, method="HEAD") == b""
        assert await fetch(pool, upstream, method="HEAD") == b""
    assert script.connections == 2  # its framing describes a body never sent: not reused
    pool.close()
    server.close()


async def test_a_silent_upstream_is_upstream_timeout() -> None:
    server, upstream = await started(Script(lambda writer, head: None))
    pool = UpstreamPool()
    with pytest.raises(Refusal) as caught:
        await fetch(pool, upstream, timeouts=Timeouts(read=0.3))
    assert caught.value.code is Code.UPSTREAM_TIMEOUT
    pool.close()
    server.close()


async def test_a_body_that_stalls_or_is_cut_raises_instead_of_ending_cleanly() -> None:
    async def stall(writer: asyncio.StreamWriter, head: bytes) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n[partial")
        await writer.drain()
        await asyncio.sleep(5)

    async def cut(writer: asyncio.StreamWriter, head: bytes) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n[partial")
        await writer.drain()
        writer.transport.abort()

    for behaviour, error in ((stall, TimeoutError), (cut, UpstreamBroken)):
        server, upstream = await started(Script(behaviour))
        pool = UpstreamPool()
        response = await send(pool, request(upstream), method="GET", headers={},
                              timeouts=Timeouts(read=0.3))  # fmt: skip
        with pytest.raises(error):
            _ = [chunk async for chunk in response.chunks()]
        response.close()
        pool.close()
        server.close()


async def test_a_reader_that_falls_behind_stops_the_upstream_sending() -> None:
    size = 16 * 1024 * 1024
    script = Script(lambda writer, head: None)

    async def big(writer: asyncio.StreamWriter, head: bytes) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % size)
        writer.write(b"x" * size)
        await asyncio.sleep(0.5)  # meanwhile the gateway reads nothing of the body
        script.pending.append(writer.transport.get_write_buffer_size())

    script.answer = big
    server, upstream = await started(script)
    pool = UpstreamPool()
    response = await send(pool, request(upstream), method="GET", headers={}, timeouts=Timeouts())
    await asyncio.sleep(0.6)
    assert script.pending
    assert script.pending[0] > size // 2  # most of it could not be sent
    total = 0
    async for chunk in response.chunks():
        total += len(chunk)
    assert total == size
    response.release()
    pool.close()
    server.close()


async def test_nothing_listening_is_upstream_unavailable() -> None:
    server, upstream = await started(Script(lambda writer, head: None))
    server.close()
    await server.wait_closed()
    pool = UpstreamPool()
    with pytest.raises(Refusal) as caught:
        await fetch(pool, upstream)
    assert caught.value.code is Code.UPSTREAM_UNAVAILABLE


async def test_unparsable_answers_are_upstream_unavailable() -> None:
    server, upstream = await started(
        Script(lambda writer, head: writer.write(b"SSH-2.0-x\r\n\r\n"))
    )
    pool = UpstreamPool()
    with pytest.raises(Refusal) as caught:
        await fetch(pool, upstream)
    assert caught.value.code is Code.UPSTREAM_UNAVAILABLE
    pool.close()
    server.close()
