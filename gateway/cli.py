"""`shape-gateway` commands: argument parsing and exit codes only; the work lives elsewhere."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import uuid
from collections.abc import Coroutine, Mapping, Sequence
from typing import Any, TextIO

import aiohttp
import jwt
from redis.exceptions import RedisError

from gateway.auth.identity import Identity
from gateway.auth.keys import KeyConfigError, hmac_key
from gateway.errors import Refusal
from gateway.logs import configure_logging
from gateway.revocation.events import EventError, EventRequest, EventType, parse_event_request
from gateway.revocation.store import RedisStore
from gateway.rules.load import RulesError, load_rules
from gateway.rules.model import IdentityMap, Rules, Upstream
from gateway.settings import Settings, SettingsError, load_settings
from gateway.shape.params import parse_shape_query
from gateway.shape.plan import UpstreamRequest, plan
from gateway.web.server import serve

EXIT_OK, EXIT_PROBLEM, EXIT_USAGE = 0, 1, 2


def _pairs(values: Sequence[str] | None, flag: str) -> list[tuple[str, str]]:
    pairs = []
    for item in values or ():
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"{flag} expects NAME=VALUE, got {item!r}")
        pairs.append((key, value))
    return pairs


def _settings(env: Mapping[str, str], out: TextIO, **overrides: object) -> Settings | None:
    try:
        return load_settings(env, **overrides)
    except SettingsError as error:
        for problem in error.problems:
            print(f"configuration: {problem}", file=out)
        return None


def _rules(path: str, settings: Settings, env: Mapping[str, str], out: TextIO) -> Rules | None:
    default = Upstream("default", settings.electric_url, settings.electric_secret)
    try:
        return load_rules(path, env=env, default_upstream=default)
    except RulesError as error:
        for problem in error.problems:
            print(problem, file=out)
        return None


def cmd_check(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    settings = _settings(env, sys.stderr)
    if settings is None:
        return EXIT_USAGE
    path = args.path or settings.rules_path
    rules = _rules(path, settings, env, sys.stdout)
    if rules is None:
        return EXIT_PROBLEM
    print(
        f"{path}: ok: {len(rules.shapes)} shapes, roles {', '.join(sorted(rules.roles))}, "
        f"digest {rules.digest}"
    )
    return EXIT_OK


def _print_request(request: UpstreamRequest) -> None:
    print(
        f"allowed: shape {request.shape!r} -> {request.table} on upstream {request.upstream.name!r}"
    )
    print(f"GET {request.url(redact=True)}")
    print(f"  table    {request.table}")
    print(f"  where    {request.where if request.where is not None else '(none: every row)'}")
    for n, (value, source) in enumerate(zip(request.params, request.sources, strict=True), 1):
        bound = "client" if source == "client" else f":{source}"
        print(f"  ${n:<7} {json.dumps(value)}  ({bound})")
    columns = ",".join(request.columns) if request.columns is not None else "(all)"
    print(f"  columns  {columns}")


def cmd_explain(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    settings = _settings(env, sys.stderr)
    if settings is None:
        return EXIT_USAGE
    rules = _rules(args.rules or settings.rules_path, settings, env, sys.stderr)
    if rules is None:
        return EXIT_USAGE
    claims = dict(_pairs(args.claim, "--claim"))
    identity = Identity(user=args.user, tenant=args.tenant, role=args.role, claims=claims)
    query: list[tuple[str, str]] = [("table", args.shape), ("offset", "-1")]
    if args.where is not None:
        query.append(("where", args.where))
    query += [(f"params[{n}]", v) for n, v in _pairs(args.param, "--param")]
    if args.columns is not None:
        query.append(("columns", args.columns))
    try:
        decision = plan(parse_shape_query(query), identity, rules)
    except Refusal as refusal:
        decision = refusal
    if isinstance(decision, Refusal):
        print(f"refused: {decision.status} {decision.code.value}")
        print(decision.message)
        return EXIT_PROBLEM
    _print_request(decision)
    return EXIT_OK


def _claim_value(raw: str) -> Any:
    if raw[:1] in ("{", "["):
        try:
            return json.loads(raw)
        except ValueError:
            raise SystemExit(f"--claim value {raw!r} looks like JSON but does not parse") from None
    return raw


def cmd_token(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    settings = _settings(env, sys.stderr)
    if settings is None:
        return EXIT_USAGE
    if not settings.jwt_secret:
        print("token: JWT_SECRET is not set; it signs the dev token (HS256)", file=sys.stderr)
        return EXIT_USAGE
    try:
        hmac_key(settings.jwt_secret)
    except KeyConfigError as error:
        print(f"token: {error}", file=sys.stderr)
        return EXIT_USAGE
    if args.ttl > settings.jwt_max_ttl:
        print(
            f"token: --ttl {args.ttl} exceeds JWT_MAX_TTL ({settings.jwt_max_ttl})", file=sys.stderr
        )
        return EXIT_USAGE
    mapping = IdentityMap()
    path = args.rules or settings.rules_path
    if os.path.exists(path):
        rules = _rules(path, settings, env, sys.stderr)
        if rules is None:
            return EXIT_USAGE
        mapping = rules.identity
    now = int(time.time())
    claims: dict[str, Any] = {k: _claim_value(v) for k, v in _pairs(args.claim, "--claim")}
    claims |= {mapping.user: args.user, mapping.tenant: args.tenant, mapping.role: args.role}
    claims |= {"iat": now, "exp": now + args.ttl, "jti": uuid.uuid4().hex}
    if settings.jwt_audience:
        claims.setdefault("aud", settings.jwt_audience)
    if settings.jwt_issuer:
        claims.setdefault("iss", settings.jwt_issuer)
    print(jwt.encode(claims, settings.jwt_secret, algorithm="HS256"))
    return EXIT_OK


async def _publish_via_redis(request: EventRequest, settings: Settings, wait: float) -> str:
    """Append to the stream, retrying while Redis is unreachable for up to `wait` seconds."""
    assert settings.redis_url is not None
    store = RedisStore(settings.redis_url, settings.redis_prefix)
    deadline = time.monotonic() + wait
    try:
        while True:
            try:
                return (await store.publish(request)).id
            except (RedisError, OSError) as error:
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


def cmd_revoke(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    settings = _settings(env, sys.stderr)
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


def cmd_serve(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    settings = _settings(
        env,
        sys.stderr,
        host=getattr(args, "host", None),
        port=getattr(args, "port", None),
        rules_path=getattr(args, "rules", None),
        electric_url=getattr(args, "upstream", None),
    )
    if settings is None:
        return EXIT_USAGE
    if not settings.has_key_source:
        print(
            "serve: no JWT key source is configured; set JWT_SECRET (HS256), JWT_PUBLIC_KEY "
            "(PEM or path) or JWT_JWKS_URL",
            file=sys.stderr,
        )
        return EXIT_USAGE
    configure_logging(settings.log_format)
    try:
        run_async(serve(settings, env))
    except RulesError as error:
        print(f"serve: the rules in {settings.rules_path} do not load:", file=sys.stderr)
        for problem in error.problems:
            print(problem, file=sys.stderr)
        return EXIT_PROBLEM
    except KeyConfigError as error:
        print(f"serve: {error}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as error:
        print(f"serve: cannot listen on {settings.host}:{settings.port}: {error}", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK


def run_async(coroutine: Coroutine[Any, Any, None]) -> None:
    """asyncio.run, on uvloop when it is installed (the `speed` extra)."""
    try:
        import uvloop  # noqa: PLC0415 - optional dependency
    except ImportError:
        asyncio.run(coroutine)
    else:
        uvloop.run(coroutine)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="shape-gateway",
        description="Authenticating, tenant-scoping proxy for Electric's shape API.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve_cmd = commands.add_parser("serve", help="run the gateway (the default command)")
    serve_cmd.add_argument("--host", help="listen address (GATEWAY_HOST)")
    serve_cmd.add_argument("--port", type=int, help="listen port (GATEWAY_PORT)")
    serve_cmd.add_argument("--rules", help="rules file (GATEWAY_RULES)")
    serve_cmd.add_argument("--upstream", help="Electric's URL (ELECTRIC_URL)")
    serve_cmd.set_defaults(run=cmd_serve)

    check = commands.add_parser("check", help="validate a rules file")
    check.add_argument("path", nargs="?", help="rules file (default: GATEWAY_RULES)")
    check.set_defaults(run=cmd_check)

    explain = commands.add_parser("explain", help="show what a request would become upstream")
    explain.add_argument("shape")
    explain.add_argument("--user", required=True)
    explain.add_argument("--tenant", required=True)
    explain.add_argument("--role", required=True)
    explain.add_argument("--claim", action="append", metavar="K=V")
    explain.add_argument("--where")
    explain.add_argument("--param", action="append", metavar="N=V")
    explain.add_argument("--columns")
    explain.add_argument("--rules", help="rules file (default: GATEWAY_RULES)")
    explain.set_defaults(run=cmd_explain)

    token = commands.add_parser("token", help="print a signed dev JWT (needs JWT_SECRET)")
    token.add_argument("--user", required=True)
    token.add_argument("--tenant", required=True)
    token.add_argument("--role", required=True)
    token.add_argument("--ttl", type=int, default=3600, help="seconds (default 3600)")
    token.add_argument("--claim", action="append", metavar="K=V", help="JSON for {...} values")
    token.add_argument("--rules", help="rules file for claim names (default: GATEWAY_RULES)")
    token.set_defaults(run=cmd_token)
    revoke = commands.add_parser("revoke", help="publish a revocation event")
    revoke.add_argument("type", choices=[t.value for t in EventType])
    revoke.add_argument("--user")
    revoke.add_argument("--tenant")
    revoke.add_argument("--role", help="the new role (role.changed)")
    revoke.add_argument("--session", help="one session's sid/jti (session.revoked)")
    revoke.add_argument("--gateway", metavar="URL", help="publish through a gateway's admin API")
    revoke.add_argument("--wait", type=float, default=30.0,
                        help="seconds to keep retrying while Redis is unreachable")  # fmt: skip
    revoke.set_defaults(run=cmd_revoke)
    return parser


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        args = parser.parse_args(["serve"])
    result: int = args.run(args, os.environ if env is None else env)
    return result
