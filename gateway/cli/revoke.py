"""`shape-gateway revoke`: publish a revocation event through Redis or a gateway's admin API.

Success (the event id on stdout, exit 0) means what the admin API's 202 means: the event is in
Redis and, when the master has replicas, on one of them too. While Redis (or the gateway) cannot
be reached, or the outcome of an attempt is unknown, the command tries again with the same
event_id (`--event-id`, else a new UUID), so the event is published once however often it is
sent, with a backoff, for up to `--wait` seconds. Then one line on stderr says what happened:

- exit 1: nothing was published (unreachable, or refused), or the master took it but no replica
  confirmed it within GATEWAY_REVOCATION_WAIT_MS (publish it again);
- exit 3: it may have been published (an answer was lost): publishing it again with the same
  `--event-id`, which the line names, is safe;
- exit 2: a usage problem (the event or the settings).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import aiohttp

from gateway.cli.inputs import EXIT_OK, EXIT_PROBLEM, EXIT_USAGE, Commands, settings_or_report
from gateway.redis.client import REDIS_ERRORS, client_name, replica_name
from gateway.redis.keys import revocation_stream
from gateway.redis.node import KeyNode
from gateway.revocation.events import EventError, EventRequest, EventType, parse_event_request
from gateway.revocation.publisher import NotReplicatedError, OutcomeUnknownError, Publisher
from gateway.settings import Settings

EXIT_UNKNOWN: Final = 3  # it may have been published: publishing it again is safe
RETRY_FIRST: Final = 0.1  # seconds between attempts, doubled after each...
RETRY_MAX: Final = 0.5  # ...up to this
GATEWAY_TIMEOUT: Final = aiohttp.ClientTimeout(total=15, sock_connect=3)


def register(commands: Commands) -> None:
    revoke = commands.add_parser(
        "revoke",
        help="publish a revocation event",
        description="Publish a revocation event through Redis (REDIS_URL) or a gateway's admin "
        "API (--gateway); every replica enforces it within a second. Prints the event id (exit "
        "0). Exit 1: nothing was published, or no Redis replica confirmed it; exit 3: it may "
        "have been published, and publishing it again with the same --event-id is safe.",
    )
    revoke.add_argument("type", choices=[t.value for t in EventType], help="the event type")
    revoke.add_argument("--user", help="the user the event concerns")
    revoke.add_argument("--tenant", help="the tenant the event concerns")
    revoke.add_argument("--role", help="the new role (role.changed)")
    revoke.add_argument("--session", help="one session's sid/jti (session.revoked)")
    revoke.add_argument("--event-id", help="the event's id of your choice (default: a new UUID); "
                        "publishing the same id again adds nothing")  # fmt: skip
    revoke.add_argument("--gateway", metavar="URL", help="publish through a gateway's admin API")
    revoke.add_argument("--wait", type=float, default=30.0,
                        help="seconds to keep retrying while Redis or the gateway is unreachable "
                        "(exit 1), or the outcome is unknown (exit 3)")  # fmt: skip
    revoke.set_defaults(run=run)


@dataclass(frozen=True, slots=True)
class Outcome:
    """How the command ends: the exit code, and the event id (stdout) or one line (stderr)."""

    code: int
    text: str


class Attempts:
    """Retrying with a backoff until `wait` seconds have passed; remembers whether any attempt
    may have been applied."""

    def __init__(self, wait: float) -> None:
        self.deadline = time.monotonic() + wait
        self.delay = RETRY_FIRST
        self.maybe_applied: str | None = None  # why, if an attempt may have been applied

    async def again(self) -> bool:
        if time.monotonic() >= self.deadline:
            return False
        await asyncio.sleep(min(self.delay, max(self.deadline - time.monotonic(), 0)))
        self.delay = min(self.delay * 2, RETRY_MAX)
        return True

    def give_up(self, request: EventRequest, unreachable: str) -> Outcome:
        if self.maybe_applied is not None:
            return Outcome(
                EXIT_UNKNOWN,
                f"revoke: the event may have been published ({self.maybe_applied}); "
                f"publishing it again with --event-id {request.event_id} is safe",
            )
        return Outcome(EXIT_PROBLEM, f"revoke: {unreachable}; nothing was published")


async def _publish_via_redis(request: EventRequest, settings: Settings, wait: float) -> Outcome:
    assert settings.redis_url is not None
    nodes = KeyNode(
        settings.redis_url, revocation_stream(settings.redis_prefix),
        client_name(replica_name(), "cli"),
    )  # fmt: skip
    retention = settings.jwt_max_ttl + settings.jwt_leeway
    publisher = Publisher(nodes, settings.redis_prefix, settings.revocation_wait_ms, retention)
    attempts = Attempts(wait)
    last = "Redis is unreachable"
    try:
        while True:
            try:
                return Outcome(EXIT_OK, (await publisher.publish(request)).id)
            except NotReplicatedError as error:
                return Outcome(EXIT_PROBLEM, f"revoke: {error}")
            except OutcomeUnknownError as error:
                attempts.maybe_applied = error.reason
            except REDIS_ERRORS as error:
                last = f"Redis is unreachable ({error})"
            if not await attempts.again():
                return attempts.give_up(request, last)
    finally:
        await publisher.close()
        await nodes.aclose()


async def _post(
    session: aiohttp.ClientSession, endpoint: str, token: str, body: dict[str, str]
) -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {token}"}
    async with session.post(endpoint, json=body, headers=headers) as response:
        try:
            answer = await response.json(content_type=None)
        except ValueError:
            answer = None
        return response.status, answer if isinstance(answer, dict) else {}


async def _publish_via_gateway(request: EventRequest, url: str, token: str, wait: float) -> Outcome:
    endpoint = url.rstrip("/") + "/admin/revocations"
    attempts = Attempts(wait)
    last = f"the gateway at {url} could not be reached"
    async with aiohttp.ClientSession(timeout=GATEWAY_TIMEOUT) as session:
        while True:
            try:
                status, answer = await _post(session, endpoint, token, request.fields())
            except aiohttp.ClientConnectorError as error:  # not connected: nothing was sent
                last = f"the gateway at {url} could not be reached ({error.os_error})"
            except aiohttp.ConnectionTimeoutError:
                last = f"the gateway at {url} did not accept a connection"
            except (aiohttp.ClientError, TimeoutError) as error:  # sent, answer lost
                attempts.maybe_applied = f"no answer from the gateway: {error or 'timeout'}"
            else:
                message = f"{status} {answer.get('error')}: {answer.get('message')}"
                if status == 202:
                    return Outcome(EXIT_OK, str(answer["id"]))
                if status < 500:
                    return Outcome(EXIT_PROBLEM, f"revoke: the gateway refused: {message}")
                if answer.get("error") == "revocation_outcome_unknown":
                    attempts.maybe_applied = f"the gateway answered {message}"
                last = f"the gateway answered {message}"
            if not await attempts.again():
                return attempts.give_up(request, last)


def run(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    settings = settings_or_report(env, sys.stderr)
    if settings is None:
        return EXIT_USAGE
    fields = {"type": args.type, "user": args.user, "tenant": args.tenant, "role": args.role,
              "session": args.session, "event_id": args.event_id}  # fmt: skip
    try:
        request = parse_event_request({k: v for k, v in fields.items() if v is not None}).named()
    except EventError as error:
        print(f"revoke: {error}", file=sys.stderr)
        return EXIT_USAGE
    if args.gateway:
        if not settings.admin_token:
            print("revoke: --gateway needs GATEWAY_ADMIN_TOKEN", file=sys.stderr)
            return EXIT_USAGE
        outcome = asyncio.run(
            _publish_via_gateway(request, args.gateway, settings.admin_token, args.wait)
        )
    elif settings.redis_url:
        outcome = asyncio.run(_publish_via_redis(request, settings, args.wait))
    else:
        print("revoke: set REDIS_URL, or pass --gateway URL (with GATEWAY_ADMIN_TOKEN)",
              file=sys.stderr)  # fmt: skip
        return EXIT_USAGE
    print(outcome.text, file=sys.stdout if outcome.code == EXIT_OK else sys.stderr)
    return outcome.code
