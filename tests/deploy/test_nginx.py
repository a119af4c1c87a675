"""deploy/nginx: the HTTP/2 front passes `nginx -t`, and a real nginx running it carries a real
gateway's long-polls and SSE streams unbuffered: bytes reach the client while the upstream is
still holding the stream open, and a long-poll answers as soon as a row lands in PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from yarl import URL

from tests.deploy.front import (
    Front,
    FrontFactory,
    front_factory,
    nginx_binary,
    prepare_prefix,
    relocate_paths,
)
from tests.factories import make_token
from tests.functional.conftest import ELECTRIC_SECRET, Electric, ElectricFactory, World
from tests.gateway import ADMIN_TOKEN, Gateway, GatewayFactory

__all__ = ["front_factory"]  # the fixture, for the tests below

ALICE = make_token(sub="alice", tid="acme", role="member")


def nginx_t(prefix: Path) -> subprocess.CompletedProcess[str]:
    command = [nginx_binary(), "-t", "-p", str(prefix), "-c", str(prefix / "nginx.conf")]
    return subprocess.run(
        [*command, "-e", str(prefix / "test.log")],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip


@pytest.fixture
def prefix() -> Iterator[Path]:
    directory = Path(tempfile.mkdtemp(prefix="shape-gateway-nginx-t-"))
    prepare_prefix(directory)
    config = directory / "nginx.conf"
    config.write_text(relocate_paths(config.read_text(), directory))
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def test_shipped_front_config_passes_nginx_t(prefix: Path) -> None:
    result = nginx_t(prefix)
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


def test_nginx_t_refuses_the_front_without_its_upstream(prefix: Path) -> None:
    """The check can fail: the locations need `upstream shape_gateway` at http level."""
    config = prefix / "nginx.conf"
    config.write_text(config.read_text().replace("upstream shape_gateway", "upstream elsewhere"))
    result = nginx_t(prefix)
    assert result.returncode != 0
    assert "shape_gateway" in result.stderr


class Via:
    """Requests to the gateway through the front's plain-HTTP listener."""

    def __init__(self, base: URL, session: aiohttp.ClientSession) -> None:
        self.base, self.session = base, session

    def get(self, path: str, query: dict[str, str] | None = None, token: str | None = ALICE,
            headers: dict[str, str] | None = None) -> Any:  # fmt: skip
        all_headers = dict(headers or {})
        if token is not None:
            all_headers["Authorization"] = f"Bearer {token}"
        return self.session.get(self.base.with_path(path), params=query, headers=all_headers)

    async def sync_to_live(self) -> dict[str, str]:
        """Initial sync and catch-up, as the client does; the query of the next live request."""
        async with self.get("/v1/shape", {"table": "tasks", "offset": "-1"}) as response:
            assert response.status == 200, await response.text()
            handle, offset = (
                response.headers["electric-handle"],
                response.headers["electric-offset"],
            )
        query = {"table": "tasks", "offset": offset, "handle": handle}
        async with self.get("/v1/shape", query) as response:
            assert "electric-up-to-date" in response.headers
            offset = response.headers["electric-offset"]
        return {"table": "tasks", "offset": offset, "handle": handle, "live": "true", "cursor": "0"}


async def started(
    front_factory: FrontFactory, gateway_factory: GatewayFactory, world: World, electric: Electric
) -> tuple[Front, Gateway]:
    gateway = await gateway_factory(
        upstream=str(electric.url), rules=world.rules, electric_secret=ELECTRIC_SECRET
    )
    return await front_factory(gateway.url), gateway


@pytest.mark.postgres
async def test_long_poll_through_the_front_answers_right_after_an_insert(
    front_factory: FrontFactory, gateway_factory: GatewayFactory, world: World,
    electric_factory: ElectricFactory,
) -> None:  # fmt: skip
    electric = await electric_factory(long_poll_timeout=20.0)
    front, _ = await started(front_factory, gateway_factory, world, electric)
    async with aiohttp.ClientSession() as session:
        via = Via(front.http, session)
        live = await via.sync_to_live()

        async def poll() -> tuple[int, Any, float]:
            async with via.get("/v1/shape", live) as response:
                body = await response.json()
                return response.status, body, time.monotonic()

        task = asyncio.ensure_future(poll())  # noqa: TID251 - awaited below, in this test
        await electric.state.wait_for(lambda s: s.held_requests == 1)
        inserted = time.monotonic()
        world.execute("INSERT INTO {schema}.tasks VALUES (12, 'acme', 1, 'front', 'open', 'alice')")
        async with asyncio.timeout(5):
            status, body, answered = await task
    assert status == 200
    assert [m["value"]["id"] for m in body if "key" in m] == ["12"]
    assert answered - inserted < 2.0  # the poll was held 20 s: nothing waited for the timeout


@pytest.mark.postgres
async def test_shape_sse_events_pass_the_front_while_the_upstream_holds_the_stream(
    front_factory: FrontFactory, gateway_factory: GatewayFactory, world: World,
    electric_factory: ElectricFactory,
) -> None:  # fmt: skip
    electric = await electric_factory(sse_timeout=30.0, sse_keepalive=20.0)
    front, _ = await started(front_factory, gateway_factory, world, electric)
    async with aiohttp.ClientSession() as session:
        via = Via(front.http, session)
        query = {**await via.sync_to_live(), "live_sse": "true"}
        headers = {"Accept": "text/event-stream"}
        # Electric's keep-alive comes only after 20 s: within 5 s, only an unbuffered front
        # delivers the headers and then the event.
        async with asyncio.timeout(5), via.get("/v1/shape", query, headers=headers) as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/event-stream")
            await electric.state.wait_for(lambda s: s.held_requests == 1)
            world.execute(
                "INSERT INTO {schema}.tasks VALUES (13, 'acme', 1, 'sse', 'open', 'alice')"
            )
            while not (line := (await response.content.readline()).decode()).startswith(
                "data:"
            ) or ('"13"' not in line):
                pass
            # The event came through while Electric still holds the stream: nothing buffered it.
            assert electric.state.stats.held_requests == 1
    assert json.loads(line.removeprefix("data:"))["value"]["title"] == "sse"


@pytest.mark.postgres
async def test_revocation_feed_events_pass_the_front_while_the_feed_stays_open(
    front_factory: FrontFactory, gateway_factory: GatewayFactory, world: World, electric: Electric,
) -> None:  # fmt: skip
    front, gateway = await started(front_factory, gateway_factory, world, electric)
    async with aiohttp.ClientSession() as session:
        via = Via(front.http, session)
        async with via.get("/v1/events") as feed:
            assert feed.status == 200
            event = {"type": "role.changed", "user": "alice", "tenant": "acme", "role": "admin"}
            async with gateway.request(
                "POST", "/admin/revocations", token=ADMIN_TOKEN, json=event
            ) as posted:
                assert posted.status == 202
            async with asyncio.timeout(3):
                while not (line := (await feed.content.readline()).decode()).startswith("event:"):
                    pass
            assert line.strip() == "event: role.changed"
            assert not feed.content.at_eof()


@pytest.mark.postgres
async def test_admin_api_and_metrics_are_not_served_through_the_front(
    front_factory: FrontFactory, gateway_factory: GatewayFactory, world: World, electric: Electric,
) -> None:  # fmt: skip
    front, _ = await started(front_factory, gateway_factory, world, electric)
    async with aiohttp.ClientSession() as session:
        via = Via(front.http, session)
        for path in ("/admin/rules", "/metrics"):
            async with via.get(path, token=ADMIN_TOKEN) as response:
                assert response.status == 403, path
        async with via.get("/healthz", token=None) as response:
            assert response.status == 200
        async with via.get("/v1/shape", {"table": "tasks", "offset": "-1"}, token=None) as response:
            assert response.status == 401  # the gateway's own answer: no token, nothing served


@pytest.mark.postgres
async def test_plain_http_port_redirects_to_https(
    front_factory: FrontFactory, gateway_factory: GatewayFactory, world: World, electric: Electric,
) -> None:  # fmt: skip
    front, _ = await started(front_factory, gateway_factory, world, electric)
    async with (
        aiohttp.ClientSession() as session,
        session.get(front.redirect.with_path("/v1/shape"), allow_redirects=False) as response,
    ):
        assert response.status == 308
        assert response.headers["Location"].startswith("https://")


@pytest.mark.postgres
async def test_tls_listener_negotiates_http2(
    front_factory: FrontFactory, gateway_factory: GatewayFactory, world: World, electric: Electric,
) -> None:  # fmt: skip
    front, _ = await started(front_factory, gateway_factory, world, electric)
    context = ssl.create_default_context(cafile=str(front.certificate))
    context.set_alpn_protocols(["h2", "http/1.1"])
    assert front.https.port is not None
    assert await asyncio.to_thread(negotiated, context, front.https.port) == "h2"


def negotiated(context: ssl.SSLContext, port: int) -> str | None:
    """The protocol the server picks by ALPN, with the certificate verified for localhost."""
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        return tls.selected_alpn_protocol()


def curl_with_http2() -> str:
    curl = shutil.which("curl")
    if curl is None:
        pytest.skip("no curl on PATH to speak HTTP/2 to the front")
    features = subprocess.run([curl, "-V"], capture_output=True, text=True, check=True).stdout
    if "HTTP2" not in features:
        pytest.skip("this curl was built without HTTP/2")
    return curl


@pytest.mark.postgres
async def test_sse_over_http2_reaches_curl_while_the_upstream_holds_the_stream(
    front_factory: FrontFactory, gateway_factory: GatewayFactory, world: World,
    electric_factory: ElectricFactory,
) -> None:  # fmt: skip
    curl = curl_with_http2()
    electric = await electric_factory(sse_timeout=30.0, sse_keepalive=20.0)
    front, _ = await started(front_factory, gateway_factory, world, electric)
    async with aiohttp.ClientSession() as session:
        query = {**await Via(front.http, session).sync_to_live(), "live_sse": "true"}
    url = front.https.with_path("/v1/shape").with_query(query)
    process = await asyncio.create_subprocess_exec(
        curl, "--http2", "--cacert", str(front.certificate), "--silent", "--no-buffer",
        "--include", "--max-time", "20", "--resolve", f"localhost:{front.https.port}:127.0.0.1",
        "-H", f"Authorization: Bearer {ALICE}", "-H", "Accept: text/event-stream",
        str(url.with_host("localhost")), stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None
    try:
        # nginx sends an HTTP/2 stream's headers with its first bytes: they come with the event.
        async with asyncio.timeout(5):
            await electric.state.wait_for(lambda s: s.held_requests == 1)
            world.execute(
                "INSERT INTO {schema}.tasks VALUES (14, 'acme', 1, 'h2', 'open', 'alice')"
            )
            status = (await process.stdout.readline()).decode()
            while not (line := (await process.stdout.readline()).decode()).startswith("data:") or (
                '"14"' not in line
            ):
                pass
        assert status.startswith("HTTP/2 200"), status
        assert electric.state.stats.held_requests == 1
        assert process.returncode is None  # curl is still reading the open stream
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()
