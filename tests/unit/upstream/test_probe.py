"""The upstream probes against real HTTP servers: a 2xx from `/v1/health` is Electric there
(with its status), anything else an outage with a hint; readiness follows the default upstream
alone; an upstream dropped from the rules ends its outage; no password is ever shown."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from gateway.outages import Outages
from gateway.rules.model import Upstream
from gateway.rules.watch import RulesHolder
from gateway.upstream.probe import (
    HEALTH_PATH,
    UpstreamProbes,
    hint_for,
    probe,
    shown_url,
)
from tests.factories import DEFAULT_UPSTREAM, make_rules

SERVERS: list[TestServer] = []


@pytest.fixture(autouse=True)
async def _close_servers() -> AsyncIterator[None]:
    yield
    while SERVERS:
        await SERVERS.pop().close()


async def electric(status: int, body: bytes, content_type: str = "application/json") -> TestServer:
    async def health(request: web.Request) -> web.Response:
        return web.Response(status=status, body=body, content_type=content_type)

    app = web.Application()
    app.router.add_get(HEALTH_PATH, health)
    server = TestServer(app)
    SERVERS.append(server)
    await server.start_server()
    return server


def base(server: TestServer) -> str:
    return str(server.make_url("")).rstrip("/")


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as opened:
        yield opened


@pytest.mark.parametrize(
    ("status", "body", "detail"),
    [(200, b'{"status":"active"}', "active"), (202, b'{"status":"starting"}', "starting"),
     (200, b"OK", "up"), (200, b'["active"]', "up")],
)  # fmt: skip
async def test_a_2xx_health_answer_is_electric_there_with_its_status(
    session: aiohttp.ClientSession, status: int, body: bytes, detail: str
) -> None:
    server = await electric(status, body)
    result = await probe(session, Upstream("default", base(server)))
    assert (result.ok, result.detail) == (True, detail)


async def test_an_answer_that_is_not_2xx_is_an_outage_hinting_at_the_base_url(
    session: aiohttp.ClientSession,
) -> None:
    server = await electric(404, b"Not found", "text/plain")
    upstream = Upstream("default", base(server))
    result = await probe(session, upstream)
    assert (result.ok, result.detail) == (
        False,
        f"answered 404 to GET {HEALTH_PATH}, not like Electric",
    )
    assert (
        hint_for(upstream, result)
        == "that ELECTRIC_URL is Electric's base URL (the part before /v1/shape)"
    )


async def test_no_connection_is_an_outage_hinting_that_electric_is_not_reachable(
    session: aiohttp.ClientSession,
) -> None:
    upstream = Upstream("eu", "http://127.0.0.1:9")
    result = await probe(session, upstream)
    assert not result.ok
    assert result.detail
    assert hint_for(upstream, result) == (
        "that Electric runs and is reachable from the gateway at the URL the rules' upstreams gives"
    )


def test_a_shown_url_has_no_password_and_keeps_ipv6_brackets() -> None:
    assert shown_url("http://user:pw@electric:3000/base?secret=x") == "http://electric:3000/base"
    assert shown_url("http://[::1]:3000") == "http://[::1]:3000"


async def test_readiness_follows_the_default_upstream_alone_and_outages_come_and_go(
    session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    up = await electric(200, b'{"status":"active"}')
    down = await electric(503, b"")
    rules = make_rules()
    upstreams = {"eu": Upstream("eu", base(down)), "default": Upstream("default", base(up))}
    rules_path = tmp_path / "rules.yaml"
    rules_path.write_text("")
    holder = RulesHolder(
        str(rules_path), {}, DEFAULT_UPSTREAM, dataclasses.replace(rules, upstreams=upstreams)
    )
    outages = Outages()
    probes = UpstreamProbes(holder, session, outages, every=10)
    assert not probes.ready()  # not probed yet
    await probes.probe_all()
    assert probes.ready()  # eu down makes no replica unready
    assert set(outages.of_kind("upstream")) == {"eu"}
    described = probes.describe()
    assert described["default"]["reachable"] is True
    assert described["default"]["electric_status"] == "active"
    assert described["eu"]["reachable"] is False
    assert "outage" in described["eu"]

    holder.rules = dataclasses.replace(
        rules, upstreams={"default": Upstream("default", base(down))}
    )
    await probes.probe_all()
    assert not probes.ready()
    assert set(outages.of_kind("upstream")) == {"default"}  # eu left the rules: its outage ended


async def test_with_probing_off_the_gateway_is_ready_and_nothing_is_probed(
    session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    holder = RulesHolder(str(tmp_path / "r.yaml"), {}, DEFAULT_UPSTREAM, make_rules())
    probes = UpstreamProbes(holder, session, Outages(), every=0)
    assert probes.ready()
    await asyncio.wait_for(probes.run(), 1)  # returns at once
    assert probes.results == {}
    assert probes.describe()["default"]["reachable"] is None
