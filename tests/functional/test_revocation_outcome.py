"""A publish whose answer is lost: the command reached Redis and ran, but the connection died
before its answer came back (Redis killed or a network cut at that moment). Caused for real by
a TCP relay in front of a `redis-server` of the test's own that, once armed, passes the
publisher's command on to Redis and then drops the publisher's connection without the answer.

The publisher is told the truth, distinctly (the admin API: 503 `revocation_outcome_unknown`;
the CLI: exit 3), and publishing the event again with its event_id is safe: the stream keeps
one entry, the answer names it, and every gateway applies it once.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from typing import Any, cast

import pytest

from gateway.redis.keys import revocation_stream
from gateway.web.keys import REVOCATIONS
from tests.functional.enforcement import refused_everywhere
from tests.functional.test_redis_failover import applied_total
from tests.functional.test_revocation_functional import ready
from tests.gateway import ADMIN_TOKEN, Gateway, GatewayFactory
from tests.redis_servers import RedisProcess, RedisServers

pytestmark = [pytest.mark.redis]
PREFIX = "gw-outcome"
Entries = list[tuple[str, dict[str, str]]]


class CuttingRelay:
    """Relays TCP connections to `target`. Armed with a marker, it passes the next client
    write holding the marker on to the server, drops that client's connection at once, and
    throws the server's answer away."""

    def __init__(self, target: RedisProcess) -> None:
        self.target = target
        self.marker: bytes | None = None
        self.cuts = 0
        self.server: asyncio.Server | None = None
        self.relays: set[asyncio.Task[Any]] = set()

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"redis://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/0"

    async def start(self) -> CuttingRelay:
        self.server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        return self

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.relays.add(task)
        task.add_done_callback(self.relays.discard)
        upstream_reader, upstream_writer = await asyncio.open_connection(
            "127.0.0.1", self.target.port
        )
        cut = asyncio.Event()

        async def to_server() -> None:
            while data := await reader.read(65536):
                if self.marker is not None and self.marker in data:
                    self.marker, self.cuts = None, self.cuts + 1
                    cut.set()  # before the server can answer
                    writer.close()
                upstream_writer.write(data)
                await upstream_writer.drain()
                if cut.is_set():
                    return

        async def to_client() -> None:
            while data := await upstream_reader.read(65536):
                if cut.is_set():
                    return  # the answer, lost
                writer.write(data)
                await writer.drain()

        try:
            await asyncio.gather(to_server(), to_client())
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()
            upstream_writer.close()

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
        for task in list(self.relays):
            task.cancel()
        await asyncio.gather(*self.relays, return_exceptions=True)


def entries(server: RedisProcess) -> Entries:
    client = server.client()
    try:
        return cast(Entries, client.xrange(revocation_stream(PREFIX)))
    finally:
        client.close()


async def entries_named(server: RedisProcess, event_id: str, within: float = 3.0) -> Entries:
    """The stream's entries for `event_id`, once there is one."""
    deadline = time.monotonic() + within
    while not (found := [e for e in entries(server) if e[1].get("event_id") == event_id]):
        assert time.monotonic() < deadline, f"no entry for {event_id}"
        await asyncio.sleep(0.05)
    return found


async def post(gateway: Gateway, user: str, event_id: str) -> tuple[int, dict[str, Any]]:
    event = {"type": "session.revoked", "user": user, "event_id": event_id}
    async with gateway.request("POST", "/admin/revocations", token=ADMIN_TOKEN, json=event) as r:
        return r.status, await r.json()


async def revoke_cli(url: str, *args: str) -> tuple[int, str, str]:
    env = {**os.environ, "REDIS_URL": url, "GATEWAY_REDIS_PREFIX": PREFIX}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", "revoke", "session.revoked", *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 30)
    return process.returncode or 0, out.decode(), err.decode()


async def test_a_publish_whose_answer_is_lost_is_reported_as_unknown_and_safe_to_repeat(
    gateway_factory: GatewayFactory, redis_servers: RedisServers
) -> None:
    server = redis_servers.single()
    relay = await CuttingRelay(server).start()
    try:
        a = await gateway_factory(redis_url=relay.url, redis_prefix=PREFIX)  # publishes via relay
        b = await gateway_factory(redis_url=server.url, redis_prefix=PREFIX)
        for gateway in (a, b):
            await ready(gateway)
        assert (await post(a, "warm", "warm-1"))[0] == 202  # the connection is open
        relay.marker = b"lost-1"
        status, body = await post(a, "alice", "lost-1")
        assert relay.cuts == 1
        assert status == 503
        assert body["error"] == "revocation_outcome_unknown"
        assert "may have been applied" in body["message"]
        assert "publishing it again with the same event_id (lost-1) is safe" in body["message"]
        [(stream_id, _)] = await entries_named(server, "lost-1")  # it was applied
        await refused_everywhere([a, b], ["alice"], within=2)

        status, body = await post(a, "alice", "lost-1")  # again, as the answer says
        assert (status, body["id"], body["event_id"]) == (202, stream_id, "lost-1")
        assert len(await entries_named(server, "lost-1")) == 1
        assert [await applied_total(g) for g in (a, b)] == [2.0, 2.0]  # warm-1 and lost-1
    finally:
        await relay.close()


async def test_the_cli_exits_3_when_the_outcome_is_unknown_and_a_repeat_adds_nothing(
    gateway_factory: GatewayFactory, redis_servers: RedisServers
) -> None:
    server = redis_servers.single()
    relay = await CuttingRelay(server).start()
    try:
        gateway = await gateway_factory(redis_url=server.url, redis_prefix=PREFIX)
        await ready(gateway)
        relay.marker = b"lost-2"
        code, out, err = await revoke_cli(
            relay.url, "--user", "bob", "--event-id", "lost-2", "--wait", "0"
        )
        assert (code, out) == (3, "")
        assert err.count("\n") == 1
        assert "may have been published" in err
        assert "publishing it again with --event-id lost-2 is safe" in err
        [(stream_id, _)] = await entries_named(server, "lost-2")
        await refused_everywhere([gateway], ["bob"], within=2)

        code, out, _ = await revoke_cli(server.url, "--user", "bob", "--event-id", "lost-2")
        assert (code, out.strip()) == (0, stream_id)
        # Within --wait, the CLI itself repeats a publish whose answer was lost: one entry.
        relay.marker = b"lost-3"
        code, out, _ = await revoke_cli(relay.url, "--user", "carol", "--event-id", "lost-3")
        assert relay.cuts == 2
        assert code == 0
        assert [e[0] for e in await entries_named(server, "lost-3")] == [out.strip()]
        assert len(await entries_named(server, "lost-2")) == 1
        assert await applied_total(gateway) == 2.0
    finally:
        await relay.close()


async def test_entries_sharing_an_event_id_are_applied_once_by_every_gateway(
    gateway_factory: GatewayFactory, redis_servers: RedisServers
) -> None:
    # Two entries of one event_id: the first publish reached a master that a failover then
    # deposed while a gateway read it (its copy was put back), the second reached the new one.
    server = redis_servers.single()
    a = await gateway_factory(redis_url=server.url, redis_prefix=PREFIX)
    await ready(a)
    client = server.client()
    try:
        suspend = {"type": "tenant.suspended", "tenant": "acme", "event_id": "suspend-1"}
        client.xadd(revocation_stream(PREFIX), cast(Any, suspend))
        reinstate = {"type": "tenant.reinstated", "tenant": "acme", "event_id": "reinstate-1"}
        client.xadd(revocation_stream(PREFIX), cast(Any, reinstate))
        client.xadd(revocation_stream(PREFIX), cast(Any, suspend))  # the same event, again
    finally:
        client.close()
    b = await gateway_factory(redis_url=server.url, redis_prefix=PREFIX)
    await ready(b)
    deadline = time.monotonic() + 2
    while await applied_total(a) < 2:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)
    assert [await applied_total(g) for g in (a, b)] == [2.0, 2.0]
    for gateway in (a, b):  # the tenant stays reinstated
        assert "acme" not in gateway.app[REVOCATIONS].state.suspended


async def test_a_publish_after_redis_closed_the_idle_connection_is_accepted(
    gateway_factory: GatewayFactory, redis_servers: RedisServers
) -> None:
    # A server's `timeout`, or a proxy, closes idle connections: the publisher's kept one is
    # found closed before anything is written, so it opens another instead of refusing.
    server = redis_servers.single()
    gateway = await gateway_factory(redis_url=server.url, redis_prefix=PREFIX)
    await ready(gateway)
    assert (await post(gateway, "first", "idle-1"))[0] == 202
    client = server.client()
    try:
        assert client.client_kill_filter(_type="normal", skipme=True) >= 2
    finally:
        client.close()
    status, body = await post(gateway, "second", "idle-2")
    assert status == 202, body
