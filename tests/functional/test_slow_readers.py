"""A client that stops reading its response cannot hold the gateway: once its response has made
no write progress for GATEWAY_WRITE_TIMEOUT the connection is aborted, its upstream request
released, the abort counted and audited; the descriptors it held come back."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time

import pytest
from structlog.testing import capture_logs

from tests.factories import make_token
from tests.functional.conftest import ElectricFactory, World
from tests.functional.test_shape_functional import gateway_for
from tests.gateway import Gateway, GatewayFactory

pytestmark = [pytest.mark.postgres]
WRITE_TIMEOUT = 1  # GATEWAY_WRITE_TIMEOUT for these tests, in seconds
CLIENTS = 5
ADMIN = make_token(sub="root", tid="acme", role="admin")


def open_descriptors() -> int:
    """This process's open descriptors: the gateway's, the upstream's and the clients'."""
    return len(os.listdir("/proc/self/fd"))


def stalled_client(gateway: Gateway, headers: str = "") -> socket.socket:
    """A raw connection asking for a big snapshot, with a small receive window, that never
    reads: the gateway's writes soon wait on a full send buffer."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)  # before connect: the window
    sock.connect((str(gateway.url.host), int(gateway.url.port or 0)))
    sock.sendall(
        f"GET /v1/shape?table=big&offset=-1 HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: Bearer {ADMIN}\r\n{headers}\r\n".encode()
    )
    sock.setblocking(False)  # noqa: FBT003 - the socket API
    return sock


async def closed_by_server(sock: socket.socket, within: float) -> bool:
    """Read what is left until the end: True when the server closed (EOF or reset)."""
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(within):
            while await loop.sock_recv(sock, 1 << 20):
                pass
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True
    return True


async def metric(gateway: Gateway, name: str) -> float:
    async with gateway.request("GET", "/metrics", token=None) as response:
        text = await response.text()
    (line,) = [line for line in text.splitlines() if line.startswith(f"{name} ")]
    return float(line.split()[1])


@pytest.mark.parametrize("collapse", [False, True], ids=["own-requests", "collapsed"])
async def test_clients_that_stop_reading_a_snapshot_are_cut_and_release_their_upstream(
    gateway_factory: GatewayFactory,
    world: World,
    electric_factory: ElectricFactory,
    collapse: bool,
) -> None:
    """Without collapsing each has its own upstream request; collapsed, the five share one,
    read at the pace of the fastest (none reads: nobody is dropped, the write timeout cuts
    each), closed when the last of them is cut."""
    electric = await electric_factory()
    world.execute(  # ~12 MB: the first chunk (10 MiB) outgrows every buffer on the way
        "INSERT INTO {schema}.big SELECT g, repeat(md5(g::text), 64) "
        "FROM generate_series(1, 6000) g"
    )
    gateway = await gateway_for(
        gateway_factory, world, electric, write_timeout=WRITE_TIMEOUT, collapse=collapse
    )
    upstreams = 1 if collapse else CLIENTS
    baseline = open_descriptors()
    with capture_logs() as logs:
        clients = [stalled_client(gateway) for _ in range(CLIENTS)]
        try:
            await electric.state.wait_for(lambda s: s.active_requests == upstreams)
            held = open_descriptors()
            started = time.monotonic()
            # Each held: its socket here, the gateway's; each upstream: the gateway's, Electric's.
            assert held - baseline >= 2 * CLIENTS + 2 * upstreams, (baseline, held)
            await electric.state.wait_for(lambda s: s.active_requests == 0, within=10)
            released = time.monotonic() - started
            closed = await asyncio.gather(*(closed_by_server(c, 5) for c in clients))
            after = open_descriptors()
        finally:
            for client in clients:
                with contextlib.suppress(OSError):
                    client.close()
    assert all(closed), closed
    assert after - baseline <= CLIENTS, (baseline, held, after)  # only our client sockets
    assert released < WRITE_TIMEOUT + 5
    assert await metric(gateway, "shape_gateway_write_timeouts_total") == CLIENTS
    assert await metric(gateway, "shape_gateway_upstream_requests_total") == upstreams
    assert await metric(gateway, "shape_gateway_slow_reader_drops_total") == 0
    assert len(electric.state.requests) == upstreams
    lines = [(e["reason"], e["status"]) for e in logs
             if e["event"] == "shape_request" and e["path"] == "/v1/shape"]  # fmt: skip
    assert lines == [("write_timeout", 499)] * CLIENTS
