"""The request pipeline: its stages in order, one job each, and an audit line that tells the
truth for every route (the decision, the reason, the status), even when things break."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import sys
import time
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import structlog
from aiohttp import web
from structlog.testing import capture_logs

from gateway.settings import load_settings
from gateway.web import app as app_module
from gateway.web.middleware.admission import admit
from gateway.web.middleware.auth import authenticate
from gateway.web.middleware.cors import answer_preflights
from gateway.web.middleware.recording import record_requests
from gateway.web.middleware.refusals import render_refusals
from tests.factories import SECRET, SHIPPED_RULES, make_token
from tests.gateway import ADMIN_TOKEN, GatewayFactory


def test_the_pipeline_runs_its_stages_in_request_order() -> None:
    assert (
        answer_preflights, record_requests, render_refusals, authenticate, admit,
    ) == app_module.MIDDLEWARES  # fmt: skip


def test_only_the_health_routes_skip_authentication_and_admission() -> None:
    assert {"/healthz", "/readyz", "/metrics"} == app_module.PUBLIC
    assert set(app_module.LIVE) == {"/v1/shape", "/v1/events"}


def lines_of(logs: list[MutableMapping[str, Any]]) -> list[tuple[str, str, str, int]]:
    return [(e["path"], e["decision"], e["reason"], e["status"])
            for e in logs if e["event"] == "shape_request"]  # fmt: skip


async def test_every_route_logs_its_true_decision_and_reason(
    gateway_factory: GatewayFactory,
) -> None:
    gateway = await gateway_factory()
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    event = {"type": "membership.revoked", "user": "zed", "tenant": "acme"}
    calls: list[tuple[str, str, dict[str, Any]]] = [
        ("GET", "/v1/memberships", {}),
        ("POST", "/v1/audit-events", {"json": [{"id": "a", "action": "x"}]}),
        ("GET", "/healthz", {"token": None}),
        ("GET", "/readyz", {"token": None}),
        ("GET", "/metrics", {"token": None}),
        ("GET", "/admin/rules", {"token": None, "headers": admin}),
        ("POST", "/admin/reload", {"token": None, "headers": admin}),
        ("POST", "/admin/revocations", {"token": None, "headers": admin, "json": event}),
        ("GET", "/v1/memberships", {"token": None}),
        ("GET", "/nowhere", {}),
    ]
    with capture_logs() as logs:
        for method, path, kwargs in calls:
            async with gateway.request(method, path, **kwargs) as response:
                await response.read()
    assert lines_of(logs) == [  # the health routes are counted, not audited
        ("/v1/memberships", "allowed", "ok", 200),
        ("/v1/audit-events", "allowed", "ok", 200),
        ("/admin/rules", "allowed", "ok", 200),
        ("/admin/reload", "allowed", "ok", 200),
        ("/admin/revocations", "allowed", "ok", 202),
        ("/v1/memberships", "refused", "missing_token", 401),
        ("/nowhere", "refused", "not_found", 404),
    ]


async def test_a_feed_the_client_closes_is_logged_as_allowed_and_client_closed(
    gateway_factory: GatewayFactory,
) -> None:
    gateway = await gateway_factory()
    with capture_logs() as logs:
        async with gateway.request("GET", "/v1/events") as feed:
            assert await feed.content.readline() == b": connected\n"
        async with asyncio.timeout(5):
            while not lines_of(logs):  # noqa: ASYNC110 - the server logs when it notices
                await asyncio.sleep(0.02)
    assert lines_of(logs) == [("/v1/events", "allowed", "client_closed", 499)]
    (line,) = (e for e in logs if e["event"] == "shape_request")
    assert line["live"] is True
    assert line["bytes"] == len(b": connected\n\n: replayed 0\n\n")  # the body it wrote


async def metric_lines(gateway: Any, name: str) -> list[str]:
    async with gateway.request("GET", "/metrics", token=None) as response:
        text = await response.text()
    return [line for line in text.splitlines() if line.startswith(name + "{")]


async def test_health_routes_are_counted_and_not_audited_line_by_line(
    gateway_factory: GatewayFactory,
) -> None:
    gateway = await gateway_factory()
    with capture_logs() as logs:
        for path in ("/healthz", "/readyz", "/healthz"):
            async with gateway.request("GET", path, token=None) as response:
                await response.read()
    assert lines_of(logs) == []
    counted = await metric_lines(gateway, "shape_gateway_health_requests_total")
    assert 'shape_gateway_health_requests_total{path="/healthz",status="200"} 2.0' in counted
    assert any(
        line.startswith('shape_gateway_health_requests_total{path="/readyz"') for line in counted
    )
    assert await metric_lines(gateway, "shape_gateway_requests_total") == []


async def test_a_refusal_logs_the_bytes_of_the_body_it_sent(
    gateway_factory: GatewayFactory,
) -> None:
    gateway = await gateway_factory()
    with capture_logs() as logs:
        async with gateway.request("GET", "/v1/memberships", token=None) as response:
            body = await response.read()
    (line,) = (e for e in logs if e["event"] == "shape_request")
    assert (line["reason"], line["bytes"]) == ("missing_token", len(body))
    assert len(body) > 0


async def test_routes_that_name_no_shape_are_counted_under_shape_dash(
    gateway_factory: GatewayFactory,
) -> None:
    gateway = await gateway_factory()
    async with gateway.request("GET", "/v1/memberships") as response:
        assert response.status == 200
    async with gateway.shape({"table": "nope", "offset": "-1"}) as response:
        assert response.status == 404
    counted = await metric_lines(gateway, "shape_gateway_requests_total")
    assert any('reason="ok",shape="-",status="200"' in c for c in counted)
    assert any('reason="unknown_shape",shape="unknown",status="404"' in c for c in counted)


async def test_every_log_line_of_a_request_carries_its_request_id(
    gateway_factory: GatewayFactory,
) -> None:
    gateway = await gateway_factory()  # its upstream is unreachable: a warning is logged
    with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs:
        async with gateway.shape({"table": "tasks", "offset": "-1"}) as response:
            assert response.status == 502
            request_id = response.headers["X-Request-Id"]
    warning = next(e for e in logs if e["event"] == "upstream_unreachable")
    assert warning["request_id"] == request_id


async def test_a_bug_is_a_json_500_logged_without_the_exception_it_was_raised_beside(
    tmp_path: Path,
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(SHIPPED_RULES.read_text())
    settings = dataclasses.replace(
        load_settings({}), jwt_secret=SECRET, rules_path=str(rules), host="127.0.0.1", port=0
    )
    application = app_module.make_app(settings, {})

    async def broken(request: web.Request) -> web.Response:
        try:
            int("an unrelated failure, already handled")
        except ValueError:
            raise RuntimeError("the bug")  # noqa: B904 - the implicit context is under test
        return web.Response()

    application.router.add_get("/v1/broken", broken)
    runner = web.AppRunner(application)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        with capture_logs(processors=[structlog.processors.format_exc_info]) as logs:
            async with (
                aiohttp.ClientSession() as session,
                session.get(
                    f"http://{host}:{port}/v1/broken",
                    headers={"Authorization": f"Bearer {make_token()}"},
                ) as response,
            ):
                assert response.status == 500
                assert (await response.json())["error"] == "internal_error"
    finally:
        await runner.cleanup()
    (logged,) = [e for e in logs if e["event"] == "unhandled_error"]
    assert "RuntimeError: the bug" in logged["exception"]
    assert "ValueError" not in logged["exception"]
    assert lines_of(logs) == [("/v1/broken", "refused", "internal_error", 500)]


def test_the_server_header_names_no_versions() -> None:
    from aiohttp import web_response  # noqa: PLC0415

    import gateway.server.serve  # noqa: F401, PLC0415 - importing the server sets the name

    assert getattr(web_response, "SERVER_SOFTWARE") == "shape-gateway"  # noqa: B009 - untyped


async def test_a_broken_log_sink_fails_closed_and_the_replica_turns_unready(
    tmp_path: Path,
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(SHIPPED_RULES.read_text())
    env = {**os.environ, "JWT_SECRET": SECRET, "LOG_FORMAT": "json",
           "ELECTRIC_URL": "http://127.0.0.1:9",  # no Electric: not probed, so not logged
           "GATEWAY_UPSTREAM_PROBE_SECONDS": "0"}  # fmt: skip
    read_end, write_end = os.pipe()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", "serve", "--host", "127.0.0.1", "--port", "0",
        "--rules", str(rules), env=env, stderr=write_end,
    )  # fmt: skip
    os.close(write_end)
    reader = os.fdopen(read_end, "rb")
    try:
        async with asyncio.timeout(10):
            while True:
                event = json.loads(await asyncio.to_thread(reader.readline))
                if event["event"] == "gateway_listening":
                    url = str(event["url"]).replace("0.0.0.0", "127.0.0.1")
                    break
        reader.close()  # the log's reader goes away: every write now fails with EPIPE
        headers = {"Authorization": f"Bearer {make_token()}"}
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{url}/v1/memberships", headers=headers) as response:
                assert response.status == 200  # served; its line is what finds the sink broken
            async with session.get(f"{url}/v1/memberships", headers=headers) as response:
                assert response.status == 503
                assert response.headers["Content-Type"].startswith("application/json")
                assert (await response.json())["error"] == "audit_log_unavailable"
            async with session.get(f"{url}/readyz") as response:
                assert response.status == 503
            async with session.get(f"{url}/healthz") as response:
                assert response.status == 200
    finally:
        process.kill()
        await process.wait()


@pytest.mark.parametrize("path", ["/v1/shape", "/v1/events", "/v1/memberships"])
async def test_authenticated_routes_are_admitted_so_a_suspended_tenant_reaches_none(
    gateway_factory: GatewayFactory, path: str
) -> None:
    gateway = await gateway_factory()
    old = make_token(iat=int(time.time()) - 5)
    async with gateway.request(
        "POST", "/admin/revocations", token=None,
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        json={"type": "tenant.suspended", "tenant": "acme"},
    ) as response:  # fmt: skip
        assert response.status == 202
    async with gateway.request("GET", path, token=old, params={"table": "tasks"}) as response:
        assert response.status == 403
        assert (await response.json())["error"] == "tenant_suspended"
        assert response.headers["Clear-Site-Data"] == '"cache"'
