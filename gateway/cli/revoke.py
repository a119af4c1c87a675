"""`shape-gateway revoke`: publish a revocation event through Redis or a gateway's admin API.

Success (the event id on stdout, exit 0) means what the admin API's 202 means: the event is in
Redis and, when the master has replicas, on one of them too. An event the master took but no
replica confirmed within GATEWAY_REVOCATION_WAIT_MS is reported and exits 1: publish it again.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Mapping

import aiohttp

from gateway.cli.inputs import EXIT_OK, EXIT_USAGE, Commands, settings_or_report
from gateway.redis_client import REDIS_ERRORS, connect_redis, replica_name
from gateway.revocation.events import EventError, EventRequest, EventType, parse_event_request
from gateway.revocation.store import NotReplicatedError, RedisStore, socket_timeout
from gateway.settings import Settings


def register(commands: Commands) -> None:
    revoke = commands.add_parser(
        "revoke",
        help="publish a revocation event",
        description="Publish a revocation event through Redis (REDIS_URL) or a gateway's admin "
        "API (--gateway); every replica enforces it within a second. Prints the event id.",
    )
    revoke.add_argument("type", choices=[t.value for t in EventType], help="the event type")
    revoke.add_argument("--user", help="the user the event concerns")
    revoke.add_argument("--tenant", help="the tenant the event concerns")
    revoke.add_argument("--role", help="the new role (role.changed)")
    revoke.add_argument("--session", help="one session's sid/jti (session.revoked)")
    revoke.add_argument("--gateway", metavar="URL", help="publish through a gateway's admin API")
    revoke.add_argument("--wait", type=float, default=30.0,
                        help="seconds to keep retrying while Redis is unreachable")  # fmt: skip
    revoke.set_defaults(run=run)


async def _publish_via_redis(request: EventRequest, settings: Settings, wait: float) -> str:
    """Append to the stream, retrying while Redis is unreachable for up to `wait` seconds."""
    assert settings.redis_url is not None
    client = connect_redis(
        settings.redis_url, "cli", replica=replica_name(), connections=1,
        socket_timeout=socket_timeout(settings.revocation_wait_ms), decode_responses=True,
    )  # fmt: skip
    store = RedisStore(client, settings.redis_prefix, settings.revocation_wait_ms)
    deadline = time.monotonic() + wait
    try:
        while True:
            try:
                return (await store.publish(request)).id
            except NotReplicatedError as error:
                raise SystemExit(f"revoke: {error}") from None
            except REDIS_ERRORS as error:
                if time.monotonic() >= deadline:
                    raise SystemExit(
                        f"revoke: Redis is unreachable ({error}); nothing was published"
                    ) from None
                await asyncio.sleep(0.5)
    finally:
        await store.close()


async def _publish_via_gateway(request: EventRequest, url: str, token: str) -> str:
    endpoint = url.rstrip("/") + "/admin/revocations"
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(endpoint, json=request.fields(), headers=headers) as response,
    ):
        body = await response.json(content_type=None)
        if response.status != 202:
            raise SystemExit(f"revoke: the gateway refused: {response.status} {body}")
        return str(body["id"])


def run(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    settings = settings_or_report(env, sys.stderr)
    if settings is None:
        return EXIT_USAGE
    fields = {"type": args.type, "user": args.user, "tenant": args.tenant, "role": args.role,
              "session": args.session}  # fmt: skip
    try:
        request = parse_event_request({k: v for k, v in fields.items() if v is not None})
    except EventError as error:
        print(f"revoke: {error}", file=sys.stderr)
        return EXIT_USAGE
    if args.gateway:
        if not settings.admin_token:
            print("revoke: --gateway needs GATEWAY_ADMIN_TOKEN", file=sys.stderr)
            return EXIT_USAGE
        event_id = asyncio.run(_publish_via_gateway(request, args.gateway, settings.admin_token))
    elif settings.redis_url:
        event_id = asyncio.run(_publish_via_redis(request, settings, args.wait))
    else:
        print("revoke: set REDIS_URL, or pass --gateway URL (with GATEWAY_ADMIN_TOKEN)",
              file=sys.stderr)  # fmt: skip
        return EXIT_USAGE
    print(event_id)
    return EXIT_OK
