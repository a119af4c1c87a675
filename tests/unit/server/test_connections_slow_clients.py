"""Slow clients cannot hold the gateway: half-sent headers, trickled bodies and idle
connections are closed in bounded time, and the number of open connections is capped, while
normal requests keep being served with their usual latency."""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time

import aiohttp

from tests.factories import make_token
from tests.gateway import Gateway, GatewayFactory

TIMEOUT = 1  # GATEWAY_HEADER_TIMEOUT for these tests, in seconds


async def open_slow(
    gateway: Gateway, data: bytes
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection(gateway.url.host, gateway.url.port)
    writer.write(data)
    await writer.drain()
    return reader, writer


async def closed_within(reader: asyncio.StreamReader, seconds: float) -> bool:
    """True when the server closes the connection (EOF or reset) within `seconds`."""
    try:
        async with asyncio.timeout(seconds):
            while await reader.read(65536):
                pass
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True
    return True


async def latency(gateway: Gateway, samples: int = 20) -> float:
    times = []
    for _ in range(samples):
        started = time.perf_counter()
        async with gateway.request("GET", "/v1/memberships") as response:
            assert response.status == 200
            await response.read()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


async def test_thousands_of_unfinished_requests_are_closed_while_others_are_served(
    gateway_factory: GatewayFactory,
) -> None:
    gateway = await gateway_factory(header_timeout=TIMEOUT)
    baseline = await latency(gateway)
    slow = [
        await open_slow(gateway, b"GET /v1/shape?table=tasks&offset=-1 HTTP/1.1\r\nHost: x\r\n")
        for _ in range(2000)
    ]
    under_attack = await latency(gateway)
    started = time.monotonic()
    closed = await asyncio.gather(*(closed_within(r, TIMEOUT + 3) for r, _ in slow))
    assert all(closed), f"{closed.count(False)} of {len(slow)} still open"
    assert time.monotonic() - started < TIMEOUT + 3
    for _, writer in slow:
        writer.close()
    assert under_attack < max(baseline * 5, 0.05), (baseline, under_attack)


async def test_an_idle_keep_alive_connection_is_closed_after_the_header_timeout(
    gateway_factory: GatewayFactory,
) -> None:
    gateway = await gateway_factory(header_timeout=TIMEOUT)
    request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    reader, writer = await open_slow(gateway, request)
    assert (await reader.readline()).startswith(b"HTTP/1.1 200")
    started = time.monotonic()
    assert await closed_within(reader, TIMEOUT + 3)
    assert time.monotonic() - started >= TIMEOUT * 0.5
    writer.close()


async def test_a_connection_that_sends_nothing_is_closed(gateway_factory: GatewayFactory) -> None:
    gateway = await gateway_factory(header_timeout=TIMEOUT)
    reader, writer = await open_slow(gateway, b"")
    assert await closed_within(reader, TIMEOUT + 3)
    writer.close()


async def test_a_trickled_body_is_refused_as_request_timeout(
    gateway_factory: GatewayFactory,
) -> None:
    gateway = await gateway_factory(header_timeout=TIMEOUT)
    body = b'[{"id": "a", "action": "x"}]' + b" " * 4000
    head = (
        f"POST /v1/audit-events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {make_token()}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    reader, writer = await open_slow(gateway, head + body[:10])
    started = time.monotonic()
    async with asyncio.timeout(TIMEOUT + 10):
        status = await reader.readline()
        while (await reader.readline()) not in (b"\r\n", b""):
            pass
        answer = await reader.read(4096)
    assert status.startswith(b"HTTP/1.1 408"), status
    assert b'"request_timeout"' in answer
    assert time.monotonic() - started < TIMEOUT + len(body) / 1024 + 2
    writer.close()


async def answer_and_close(reader: asyncio.StreamReader, within: float) -> bytes:
    """What the server sent until it closed the connection: an end, or a reset (a close
    while the client is still sending resets the connection, which may cost it the answer)."""
    answer = b""
    async with asyncio.timeout(within):
        with contextlib.suppress(ConnectionResetError):
            while chunk := await reader.read(65536):
                answer += chunk
    return answer


def audit_post(declared: int) -> bytes:
    return (
        f"POST /v1/audit-events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {make_token()}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {declared}\r\n\r\n"
    ).encode()


async def test_a_declared_body_that_never_comes_is_refused_and_closed_after_the_header_timeout(
    gateway_factory: GatewayFactory,
) -> None:
    # A megabyte declared (under the audit route's 1 MiB limit; a larger one is refused at once)
    # once bought 10 + 1,000 s (a second per KiB declared).
    gateway = await gateway_factory(header_timeout=TIMEOUT)
    reader, writer = await open_slow(gateway, audit_post(1_000_000))
    started = time.monotonic()
    answer = await answer_and_close(reader, TIMEOUT + 10)
    held = time.monotonic() - started
    writer.close()
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert b'"request_timeout"' in answer
    assert b"Connection: close" in answer
    assert TIMEOUT * 0.9 <= held < TIMEOUT + 1, held  # then closed: no lingering for the body


async def test_a_body_that_trickles_below_the_rate_is_refused_whatever_length_it_declares(
    gateway_factory: GatewayFactory,
) -> None:
    # A byte every 0.2 s is progress within the header timeout, but far below 1 KiB/s: the
    # 64 KiB declared no longer buy 64 s.
    gateway = await gateway_factory(header_timeout=TIMEOUT)
    reader, writer = await open_slow(gateway, audit_post(64 * 1024) + b"[")
    started = time.monotonic()

    async def trickle() -> None:
        with contextlib.suppress(ConnectionError):  # until the server closes
            while True:
                await asyncio.sleep(0.2)
                writer.write(b" ")
                await writer.drain()

    async with asyncio.TaskGroup() as group:
        sender = group.create_task(trickle())
        answer = await answer_and_close(reader, TIMEOUT + 10)
        held = time.monotonic() - started
        sender.cancel()
    writer.close()
    assert answer == b"" or answer.startswith(b"HTTP/1.1 408"), answer
    assert held < TIMEOUT + 1, held


async def test_connections_over_the_cap_are_closed_at_once_and_counted(
    gateway_factory: GatewayFactory,
) -> None:
    gateway = await gateway_factory(max_connections=16, header_timeout=5)
    held = [await open_slow(gateway, b"GET /hea") for _ in range(16)]
    reader, writer = await open_slow(gateway, b"")
    assert await closed_within(reader, 2)
    writer.close()
    for _, w in held:
        w.close()
    async with asyncio.timeout(5):
        while True:  # once the held ones are gone, new connections are served again
            try:
                async with (
                    aiohttp.ClientSession() as session,
                    session.get(gateway.url.with_path("/metrics")) as response,
                ):
                    text = await response.text()
                    break
            except aiohttp.ClientError:
                await asyncio.sleep(0.05)
    (refused,) = [line for line in text.splitlines()
                  if line.startswith("shape_gateway_connections_refused_total ")]  # fmt: skip
    assert float(refused.split()[1]) >= 1
