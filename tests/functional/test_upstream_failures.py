"""Every upstream failure maps to the gateway's documented answer (docs/http-api.md); Electric's
own errors pass through, audited as what they are."""

from __future__ import annotations

import asyncio
import json
from collections.abc import MutableMapping
from typing import Any

import aiohttp
import pytest
from structlog.testing import capture_logs

from electric_imitation import Fault
from gateway.upstream.client import Timeouts
from tests.factories import make_token
from tests.functional.conftest import ELECTRIC_SECRET, Electric, ElectricFactory, World
from tests.gateway import Gateway, GatewayFactory

pytestmark = [pytest.mark.postgres, pytest.mark.across_electric_versions]

ADMIN = make_token(sub="root", tid="acme", role="admin")
SNAPSHOT = {"table": "tasks", "offset": "-1"}


@pytest.mark.imitation_only("fault injection")
async def test_electric_overload_503_passes_through_with_retry_after(
    gateway_factory: GatewayFactory, world: World, electric: Electric
) -> None:
    gateway = await gateway_factory(upstream=str(electric.url), rules=world.rules,
                                    electric_secret=ELECTRIC_SECRET)  # fmt: skip
    electric.state.inject(Fault("overloaded", retry_after=7))
    async with gateway.shape(SNAPSHOT, token=ADMIN) as response:
        assert response.status == 503
        assert response.headers["Retry-After"] == "7"
        assert (await response.json())["code"] == "concurrent_request_limit_exceeded"
        assert response.headers["Cache-Control"].startswith(("private", "no-store"))


@pytest.mark.imitation_only("fault injection")
async def test_electric_500_becomes_a_502_without_electrics_text(
    gateway_factory: GatewayFactory, world: World, electric: Electric
) -> None:
    gateway = await gateway_factory(upstream=str(electric.url), rules=world.rules,
                                    electric_secret=ELECTRIC_SECRET)  # fmt: skip
    electric.state.inject(Fault("internal_error"))
    with capture_logs() as logs:
        async with gateway.shape(SNAPSHOT, token=ADMIN) as response:
            assert response.status == 502
            raw = await response.read()
            body = json.loads(raw)
    assert body["error"] == "upstream_unavailable"
    assert "Internal server error" not in body["message"]
    (replaced,) = [line for line in logs if line["event"] == "upstream_error_replaced"]
    assert replaced["upstream_status"] == 500
    assert "Internal server error" in replaced["body"]
    (audited,) = [line for line in logs if line["event"] == "shape_request"]
    assert (audited["reason"], audited["bytes"]) == ("upstream_unavailable", len(raw))


async def test_electric_400_for_a_where_postgres_rejects_passes_through(
    gateway_factory: GatewayFactory, world: World, electric: Electric
) -> None:
    gateway = await gateway_factory(upstream=str(electric.url), rules=world.rules,
                                    electric_secret=ELECTRIC_SECRET)  # fmt: skip
    query = {**SNAPSHOT, "where": "project_id = 'not a number'"}
    with capture_logs() as logs:
        async with gateway.shape(query, token=ADMIN) as response:
            assert response.status == 400
            body = await response.json()
            assert body["message"] == "Invalid request"
            assert "where" in body["errors"]
    (warning,) = (e for e in logs if e["event"] == "upstream_rejected")
    assert warning["errors"] == {"where": "(rejected; the message is not logged)"}
    assert "not a number" not in repr(logs)  # a client's value never reaches the log


async def test_electric_refusing_our_secret_is_502_upstream_misconfigured_never_401(
    gateway_factory: GatewayFactory, world: World, electric: Electric
) -> None:
    gateway = await gateway_factory(upstream=str(electric.url), rules=world.rules,
                                    electric_secret="not-the-secret")  # fmt: skip
    async with gateway.shape(SNAPSHOT, token=ADMIN) as response:
        assert response.status == 502
        body = await response.json()
        assert body["error"] == "upstream_misconfigured"
        assert "not-the-secret" not in str(body)


@pytest.mark.imitation_only("fault injection")
async def test_slow_upstream_is_504_upstream_timeout(
    gateway_factory: GatewayFactory, world: World, electric: Electric
) -> None:
    gateway = await gateway_factory(
        upstream=str(electric.url), rules=world.rules, electric_secret=ELECTRIC_SECRET,
        timeouts=Timeouts(connect=1.0, read=0.3, sse_read=0.3),
    )  # fmt: skip
    electric.state.inject(Fault("delay", seconds=2.0))
    async with gateway.shape(SNAPSHOT, token=ADMIN) as response:
        assert response.status == 504
        assert (await response.json())["error"] == "upstream_timeout"


async def big_shape(
    gateway_factory: GatewayFactory, world: World, electric_factory: ElectricFactory, rows: int
) -> tuple[Gateway, Electric]:
    """A gateway before an Electric whose `big` shape is `rows` rows of 2 KB, one response."""
    electric = await electric_factory(chunk_rows=100_000)
    world.execute("INSERT INTO {schema}.big SELECT g, repeat(md5(g::text), 64) "
                  "FROM generate_series(1, %s) g", (rows,))  # fmt: skip
    gateway = await gateway_factory(upstream=str(electric.url), rules=world.rules,
                                    electric_secret=ELECTRIC_SECRET)  # fmt: skip
    return gateway, electric


@pytest.mark.imitation_only("fault injection")
async def test_body_cut_by_upstream_is_cut_for_the_client_not_completed(
    gateway_factory: GatewayFactory, world: World, electric_factory: ElectricFactory
) -> None:
    gateway, electric = await big_shape(gateway_factory, world, electric_factory, rows=500)
    electric.state.inject(Fault("abort", after_bytes=700_000))  # of about 1 MB
    async with gateway.shape({"table": "big", "offset": "-1"}, token=ADMIN) as response:
        assert response.status == 200
        with pytest.raises(aiohttp.ClientPayloadError):
            await response.read()


@pytest.mark.imitation_only("fault injection")
async def test_body_cut_before_anything_was_sent_is_our_502_not_a_closed_connection(
    gateway_factory: GatewayFactory, world: World, electric_factory: ElectricFactory
) -> None:
    # A connection closed without an answer invites a blind retry; nothing was sent yet, so
    # the gateway can still say what happened.
    gateway, electric = await big_shape(gateway_factory, world, electric_factory, rows=500)
    electric.state.inject(Fault("abort", after_bytes=0))  # headers, then not a byte
    async with gateway.shape({"table": "big", "offset": "-1"}, token=ADMIN) as response:
        assert response.status == 502
        assert (await response.json())["error"] == "upstream_unavailable"
    assert len(electric.state.requests) == 1  # answered, not retried behind our back


async def test_a_plain_text_upstream_error_becomes_our_json_502(
    gateway_factory: GatewayFactory, world: World, electric: Electric
) -> None:
    # A wrong ELECTRIC_URL path: Electric answers its router's plain `Not found`.
    gateway = await gateway_factory(upstream=str(electric.url.with_path("/wrong")),
                                    rules=world.rules, electric_secret=ELECTRIC_SECRET)  # fmt: skip
    with capture_logs() as logs:
        async with gateway.shape(SNAPSHOT, token=ADMIN) as response:
            assert response.status == 502
            assert response.headers["Content-Type"].startswith("application/json")
            assert (await response.json())["error"] == "upstream_misconfigured"
    (replaced,) = [line for line in logs if line["event"] == "upstream_error_replaced"]
    assert (replaced["upstream_status"], replaced["body"]) == (404, "Not found")


async def test_a_compressed_error_keeps_electrics_vary_beside_ours_and_no_version_banner(
    gateway_factory: GatewayFactory, world: World, electric: Electric
) -> None:
    gateway = await gateway_factory(upstream=str(electric.url), rules=world.rules,
                                    electric_secret=ELECTRIC_SECRET)  # fmt: skip
    headers = {"Authorization": f"Bearer {ADMIN}", "Accept-Encoding": "gzip"}
    async with (
        aiohttp.ClientSession(auto_decompress=False) as session,
        session.get(
            gateway.url.with_path("/v1/shape").with_query(table="tasks", offset="0_0"),
            headers=headers,
        ) as response,
    ):
        assert response.status == 400
        assert response.headers["Content-Encoding"] == "gzip"
        vary = {v.strip().lower() for v in response.headers["Vary"].split(",")}
        assert {"accept-encoding", "authorization", "x-tenant-id"} <= vary
        assert "electric-server" not in response.headers
        assert response.headers["Server"] == "shape-gateway"
    assert electric.state.requests[-1].header("Accept-Encoding") == "gzip"


async def test_a_client_hanging_up_mid_body_is_logged_499_client_closed_not_a_500(
    gateway_factory: GatewayFactory, world: World, electric_factory: ElectricFactory
) -> None:
    gateway, _ = await big_shape(gateway_factory, world, electric_factory, rows=2600)
    with capture_logs() as logs:
        for _ in range(5):  # hang up at different points of a 5 MB body
            async with gateway.shape({"table": "big", "offset": "-1"}, token=ADMIN) as response:
                await response.content.read(65536)
                response.close()
        async with asyncio.timeout(5):
            while len([e for e in logs if e["event"] == "shape_request"]) < 5:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
    lines = [e for e in logs if e["event"] == "shape_request"]
    assert {(e["decision"], e["reason"], e["status"]) for e in lines} == {
        ("allowed", "client_closed", 499)
    }
    assert not [e for e in logs if e["event"] == "unhandled_error"]


def audit_lines(logs: list[MutableMapping[str, Any]]) -> list[tuple[str, str, int]]:
    return [
        (e["decision"], e["reason"], e["status"]) for e in logs if e["event"] == "shape_request"
    ]


async def upstream_statuses(gateway: Gateway) -> list[str]:
    async with gateway.request("GET", "/metrics", token=None) as response:
        text = await response.text()
    return [line for line in text.splitlines()
            if line.startswith("shape_gateway_upstream_responses_total{")]  # fmt: skip


async def test_a_column_the_table_lacks_is_audited_as_electric_rejecting_it(
    gateway_factory: GatewayFactory, world: World, electric: Electric
) -> None:
    typo = world.rules.replace("project_id, title, status", "project_id, titel, status")
    gateway = await gateway_factory(upstream=str(electric.url), rules=typo,
                                    electric_secret=ELECTRIC_SECRET)  # fmt: skip
    member = make_token(sub="alice", tid="acme", role="member")
    with capture_logs() as logs:
        async with gateway.shape(SNAPSHOT, token=member) as response:
            assert response.status == 400  # Electric's own answer, passed through
            assert "titel" in await response.text()
    assert audit_lines(logs) == [("allowed", "upstream_rejected", 400)]
    (warning,) = (e for e in logs if e["event"] == "upstream_rejected")
    assert warning["shape"] == "tasks"
    assert "titel" in str(warning["errors"]["columns"])
    assert "check --database" in warning["check"]
    assert 'shape_gateway_upstream_responses_total{status="400"} 1.0' in await upstream_statuses(
        gateway
    )


@pytest.mark.imitation_only("fault injection")
async def test_electric_shedding_load_is_audited_as_upstream_overloaded(
    gateway_factory: GatewayFactory, world: World, electric: Electric
) -> None:
    gateway = await gateway_factory(upstream=str(electric.url), rules=world.rules,
                                    electric_secret=ELECTRIC_SECRET)  # fmt: skip
    electric.state.inject(Fault("overloaded", retry_after=7))
    with capture_logs() as logs:
        async with gateway.shape(SNAPSHOT, token=ADMIN) as response:
            assert response.status == 503
        async with gateway.shape(SNAPSHOT, token=ADMIN) as response:
            assert response.status == 200
    assert audit_lines(logs) == [("allowed", "upstream_overloaded", 503), ("allowed", "ok", 200)]
    assert sorted(await upstream_statuses(gateway)) == [
        'shape_gateway_upstream_responses_total{status="200"} 1.0',
        'shape_gateway_upstream_responses_total{status="503"} 1.0',
    ]
