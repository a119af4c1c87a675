"""Measuring the promise "an acknowledged revocation is enforced on every gateway within a
second of its acknowledgement" through Redis faults, from the right instants:

- acknowledged: when the publisher got its answer (the admin API's 202, or the line
  `shape-gateway revoke` prints before it exits, read a few ms later);
- enforced: when each gateway applied the event (the listener every applied event goes
  through, the one the event feed uses).

Each event revokes a user of its own, named like its event_id, by which both are keyed.
Publishers behave as the docs ask: an answer that is not a 202 (unreachable, not confirmed,
outcome unknown) is followed by the same event, with the same event_id, until one is.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from gateway.revocation.events import RevocationEvent
from gateway.web.keys import REVOCATIONS
from tests.factories import make_token
from tests.gateway import ADMIN_TOKEN, Gateway

BEFORE = int(time.time()) - 60  # every token here was issued before every event
PROMISE = 1.0  # seconds from acknowledgement to enforcement, on every gateway


def old_token(user: str) -> str:
    return make_token(sub=user, tid="acme", role="member", iat=BEFORE)


async def until(condition: Callable[[], bool], what: str, within: float) -> float:
    """Wait (without blocking the event loop the gateways run on) until `condition`, a blocking
    check, holds; returns the seconds it took."""
    started = time.monotonic()
    while not await asyncio.to_thread(condition):
        assert time.monotonic() - started < within, f"{what} within {within} s"
        await asyncio.sleep(0.05)
    return time.monotonic() - started


class Applied:
    """When `gateway` applied each event, by the user it names (its first application)."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.at: dict[str, float] = {}
        gateway.app[REVOCATIONS].listeners.append(self._record)

    def _record(self, event: RevocationEvent) -> None:
        if event.user is not None:
            self.at.setdefault(event.user, time.monotonic())


async def post(gateway: Gateway, event_id: str) -> tuple[int, str]:
    """(status, stream id or error code) of `session.revoked` for user `event_id`."""
    event = {"type": "session.revoked", "user": event_id, "event_id": event_id}
    try:
        async with (
            asyncio.timeout(20),
            gateway.request(
                "POST", "/admin/revocations", token=ADMIN_TOKEN, json=event
            ) as response,
        ):
            body = await response.json()
            return response.status, str(body.get("id") or body.get("error"))
    except TimeoutError:
        return 0, "timeout"


@dataclass
class AdminPoster:
    """Posts `session.revoked` for <name>0, <name>1, ... to the gateways in turn, one at a time,
    each until acknowledged (moving to the next gateway after a refusal)."""

    gateways: list[Gateway]
    name: str = "a"
    pause: float = 0.05
    acknowledged: dict[str, float] = field(default_factory=dict)  # event_id -> when
    answers: Counter[str] = field(default_factory=Counter)  # what the others were
    running: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        self.running.set()
        turn = 0
        for n in range(1_000_000):
            event_id = f"{self.name}{n}"
            while True:
                await self.running.wait()
                status, answer = await post(self.gateways[turn % len(self.gateways)], event_id)
                turn += 1
                if status == 202:
                    self.acknowledged[event_id] = time.monotonic()
                    break
                self.answers[answer] += 1
                await asyncio.sleep(self.pause)
            await asyncio.sleep(self.pause)

    async def acknowledged_more(self, count: int, within: float) -> list[str]:
        start = len(self.acknowledged)
        deadline = time.monotonic() + within
        while len(self.acknowledged) < start + count:
            assert time.monotonic() < deadline, f"{count} more acknowledged within {within} s"
            await asyncio.sleep(0.02)
        return list(self.acknowledged)[start : start + count]


@dataclass
class CliPoster:
    """Runs `shape-gateway revoke session.revoked --user <name>N --event-id <name>N` one after
    the other, each retrying for up to 30 s; an exit other than 0 is run again."""

    env: dict[str, str]
    name: str = "c"
    acknowledged: dict[str, float] = field(default_factory=dict)
    exits: Counter[int] = field(default_factory=Counter)

    async def run(self) -> None:
        for n in range(1_000_000):
            event_id = f"{self.name}{n}"
            published = False
            while not published:
                published = await self.publish(event_id)

    async def publish(self, event_id: str) -> bool:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gateway", "revoke", "session.revoked", "--user", event_id,
            "--event-id", event_id, "--wait", "30", env={**os.environ, **self.env},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            assert process.stdout is not None
            line = await process.stdout.readline()
            acknowledged = time.monotonic()
            await process.communicate()
        except asyncio.CancelledError:
            process.kill()
            await process.wait()
            raise
        self.exits[process.returncode or 0] += 1
        if process.returncode == 0 and line.strip():
            self.acknowledged[event_id] = acknowledged
            return True
        return False


def lateness(
    acknowledged: dict[str, float], applied: list[Applied]
) -> tuple[list[float], list[str]]:
    """Per acknowledged event and gateway, seconds from acknowledgement to enforcement (0 when
    applied first); and what some gateway never applied."""
    lags, missing = [], []
    for event_id, at in acknowledged.items():
        for gateway in applied:
            if event_id not in gateway.at:
                missing.append(f"{event_id} on {gateway.gateway.url}")
            else:
                lags.append(max(gateway.at[event_id] - at, 0.0))
    return lags, missing


def summary(lags: list[float]) -> str:
    ordered = sorted(lags)
    if not ordered:
        return "no events"
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return (
        f"{len(ordered)} (event, gateway) pairs: median {ordered[len(ordered) // 2] * 1000:.0f} "
        f"ms, p99 {p99 * 1000:.0f} ms, max {ordered[-1] * 1000:.0f} ms"
    )


async def refused_everywhere(gateways: list[Gateway], users: list[str], within: float) -> None:
    """Each user's old token is refused as session_revoked by every gateway (real requests)."""
    deadline = time.monotonic() + within
    for gateway in gateways:
        for user in users:
            while True:
                async with gateway.request(
                    "GET", "/v1/memberships", token=old_token(user)
                ) as response:
                    body = await response.json()
                if response.status == 401 and body.get("error") == "session_revoked":
                    break
                assert time.monotonic() < deadline, f"{user} not refused by {gateway.url}"
                await asyncio.sleep(0.05)
