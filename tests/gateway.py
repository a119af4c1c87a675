"""A real gateway on a real port (the same `start()` that `serve` uses), for functional tests."""

from __future__ import annotations

import dataclasses
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from yarl import URL

from gateway.server.serve import start
from gateway.settings import Settings, load_settings
from gateway.upstream.client import Timeouts
from tests.factories import RULES_YAML, SECRET, make_token

ADMIN_TOKEN = "admin-token-for-tests-0123456789"
NO_UPSTREAM = "http://127.0.0.1:9"  # nothing listens: tests that need no Electric


@dataclass
class Gateway:
    url: URL
    runner: web.AppRunner
    rules_path: Path
    session: aiohttp.ClientSession

    @property
    def app(self) -> web.Application:
        return self.runner.app

    def request(
        self,
        method: str,
        path: str = "/v1/shape",
        *,
        token: str | None = "default",  # noqa: S107 - a marker, not a credential
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> Any:
        """session.request with `Authorization: Bearer <token>` (a valid default token)."""
        all_headers = dict(headers or {})
        if token is not None:
            all_headers["Authorization"] = f"Bearer {make_token() if token == 'default' else token}"
        return self.session.request(method, self.url.with_path(path), headers=all_headers, **kwargs)

    def shape(self, query: dict[str, str] | list[tuple[str, str]], **kwargs: Any) -> Any:
        return self.request("GET", "/v1/shape", params=query, **kwargs)


GatewayFactory = Callable[..., Awaitable[Gateway]]


@pytest.fixture
async def gateway_factory(tmp_path: Path) -> AsyncIterator[GatewayFactory]:
    started: list[Gateway] = []

    async def make(
        upstream: str = NO_UPSTREAM,
        rules: str = RULES_YAML,
        env: dict[str, str] | None = None,
        grace: float = 5.0,
        timeouts: Timeouts | None = None,
        **overrides: Any,
    ) -> Gateway:
        rules_path = tmp_path / f"rules-{len(started)}.yaml"
        rules_path.write_text(textwrap.dedent(rules))
        settings: Settings = dataclasses.replace(
            load_settings({}),
            host="127.0.0.1",
            port=0,
            rules_path=str(rules_path),
            electric_url=upstream,
            jwt_secret=SECRET,
            admin_token=ADMIN_TOKEN,
            # Without an Electric, probing would only hold readiness down: a test of readiness
            # (Redis, the audit log) needs none. Every test that names an upstream probes it.
            upstream_probe_seconds=0 if upstream == NO_UPSTREAM else 10,
        )
        settings = dataclasses.replace(settings, **overrides)
        runner, _ = await start(settings, env or {}, grace=grace, timeouts=timeouts)
        host, port = runner.addresses[0][:2]
        gateway = Gateway(URL(f"http://{host}:{port}"), runner, rules_path, aiohttp.ClientSession())
        started.append(gateway)
        return gateway

    yield make
    for gateway in started:
        await gateway.session.close()
        await gateway.runner.cleanup()
