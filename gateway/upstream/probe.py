"""Is each Electric upstream there? Asked at start-up and every GATEWAY_UPSTREAM_PROBE_SECONDS,
so a wrong ELECTRIC_URL or a stopped Electric is logged and shown before a client finds it.

The probe is `GET <url>/v1/health`: Electric answers it without a secret and without work (its
router sends it to `Electric.Plug.HealthCheckPlug`, which reports the service status: `active`,
or `starting`/`waiting` with 202 in recent releases). Any 2xx is Electric there; anything else
(no connection, a timeout, a `404 Not found` from something that is not Electric) is an outage,
logged when it starts, every 30 s while it lasts and when it ends (`gateway/outages.py`).

Readiness follows the `default` upstream (ELECTRIC_URL, unless the rules redefine it): in a
sidecar it is the pod's own Electric, and a pod without it should leave the Service. Other
upstreams the rules name are shared by every replica: one of them down makes no replica unready
(that would turn a partial outage into a total one); its requests are answered 502
`upstream_unavailable` and the outage is logged and shown.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

import aiohttp
from aiohttp import hdrs

from gateway.outages import Outages, iso
from gateway.rules.model import Upstream
from gateway.rules.watch import RulesHolder
from gateway.tasks import TaskGroup, cancel

HEALTH_PATH: Final = "/v1/health"
PROBE_TIMEOUT: Final = 2.0
READINESS_UPSTREAM: Final = "default"


def shown_url(url: str) -> str:
    """`url` without any user:password part."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


@dataclass(frozen=True, slots=True)
class ProbeResult:
    ok: bool
    detail: str  # Electric's status (`active`, ...), or what went wrong
    at: float  # epoch seconds


async def probe(session: aiohttp.ClientSession, upstream: Upstream) -> ProbeResult:
    """One `GET /v1/health` to `upstream`, answered within PROBE_TIMEOUT or not."""
    url = upstream.url + HEALTH_PATH
    try:
        async with session.get(
            url,
            timeout=aiohttp.ClientTimeout(total=PROBE_TIMEOUT),
            allow_redirects=False,
            headers={hdrs.CONNECTION: "close"},  # a new connection each time: none held idle
        ) as response:
            body = await response.read()
    except TimeoutError:
        return _failed(f"no answer to GET {HEALTH_PATH} within {PROBE_TIMEOUT:g} s")
    except aiohttp.ClientError as error:
        return _failed(str(error) or type(error).__name__)
    if 200 <= response.status < 300:
        return ProbeResult(ok=True, detail=_status_of(body), at=time.time())
    return _failed(f"answered {response.status} to GET {HEALTH_PATH}, not like Electric")


def _failed(detail: str) -> ProbeResult:
    return ProbeResult(ok=False, detail=detail, at=time.time())


def _status_of(body: bytes) -> str:
    try:
        document = json.loads(body)
    except ValueError:
        return "up"
    status = document.get("status") if isinstance(document, dict) else None
    return status if isinstance(status, str) else "up"


def hint_for(upstream: Upstream, result: ProbeResult) -> str:
    where = "ELECTRIC_URL" if upstream.name == READINESS_UPSTREAM else "the rules' upstreams"
    if result.detail.startswith("answered"):
        return f"that {where} is Electric's base URL (the part before /v1/shape)"
    return f"that Electric runs and is reachable from the gateway at the URL {where} gives"


class UpstreamProbes:
    """The last probe of each upstream of the active rules, and the readiness they give."""

    def __init__(
        self, holder: RulesHolder, session: aiohttp.ClientSession, outages: Outages, every: float
    ) -> None:
        self.holder = holder
        self.session = session
        self.outages = outages
        self.every = every  # 0: never probed, and readiness ignores the upstreams
        self.results: dict[str, ProbeResult] = {}
        self.task: asyncio.Task[None] | None = None

    def start(self, tasks: TaskGroup) -> None:
        """Probe from now on (once the gateway listens: a gateway that cannot is not up)."""
        if self.every and self.task is None:
            self.task = tasks.spawn(self.run(), "upstream-probes")

    async def stop(self) -> None:
        """Before the HTTP session the probes use closes."""
        if self.task is not None:
            await cancel(self.task)

    def ready(self) -> bool:
        """The default upstream answered its last probe (always, when probing is off)."""
        if not self.every:
            return True
        result = self.results.get(READINESS_UPSTREAM)
        return result is not None and result.ok

    async def probe_all(self) -> None:
        upstreams = list(self.holder.rules.upstreams.values())
        results = await asyncio.gather(*(probe(self.session, u) for u in upstreams))
        self.results = {}
        for upstream, result in zip(upstreams, results, strict=True):
            self.results[upstream.name] = result
            if result.ok:
                self.outages.succeeded("upstream", upstream.name)
            else:
                self.outages.failed(
                    "upstream",
                    upstream.name,
                    result.detail,
                    target=shown_url(upstream.url),
                    hint=hint_for(upstream, result),
                )
        for name in set(self.outages.of_kind("upstream")) - set(self.results):
            self.outages.succeeded("upstream", name)  # removed from the rules: no longer ours

    async def run(self) -> None:
        """Probe at once, then every `every` seconds, until cancelled."""
        if not self.every:
            return
        while True:
            await self.probe_all()
            await asyncio.sleep(self.every)

    def describe(self) -> dict[str, Any]:
        """Each upstream's URL and its last probe, for /admin/status."""
        now = time.monotonic()
        described: dict[str, Any] = {}
        for name, upstream in self.holder.rules.upstreams.items():
            result = self.results.get(name)
            entry: dict[str, Any] = {"url": shown_url(upstream.url)}
            if result is None:
                entry["reachable"] = None  # not probed (yet, or probing is off)
            else:
                entry |= {"reachable": result.ok, "checked_at": iso(result.at)}
                if result.ok:
                    entry["electric_status"] = result.detail
            outage = self.outages.get("upstream", name)
            if outage is not None:
                entry["outage"] = outage.as_json(now)
            described[name] = entry
        return described
