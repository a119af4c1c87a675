"""`shape-gateway token`: a signed HS256 dev token whose claim names follow the rules."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from collections.abc import Mapping
from typing import Any

import jwt

from gateway.auth.keys import KeyConfigError, hmac_key
from gateway.cli.inputs import (
    EXIT_OK,
    EXIT_USAGE,
    Commands,
    pairs,
    rules_or_report,
    settings_or_report,
)
from gateway.rules.model import IdentityMap


def register(commands: Commands) -> None:
    token = commands.add_parser(
        "token",
        help="print a signed dev JWT (needs JWT_SECRET)",
        description="Print an HS256 token signed with JWT_SECRET, its claims named as the "
        "rules' identity map says: for development and tests, never for production users.",
    )
    token.add_argument("--user", required=True, help="the user id claim")
    token.add_argument("--tenant", required=True, help="the tenant id claim")
    token.add_argument("--role", required=True, help="the role claim")
    token.add_argument("--ttl", type=int, default=3600, help="seconds (default 3600)")
    token.add_argument("--claim", action="append", metavar="K=V", help="JSON for {...} values")
    token.add_argument("--rules", help="rules file for claim names (default: GATEWAY_RULES)")
    token.set_defaults(run=run)


def _claim_value(raw: str) -> Any:
    if raw[:1] in ("{", "["):
        try:
            return json.loads(raw)
        except ValueError:
            raise SystemExit(f"--claim value {raw!r} looks like JSON but does not parse") from None
    return raw


def run(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    settings = settings_or_report(env, sys.stderr)
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
        rules = rules_or_report(path, settings, env, sys.stderr)
        if rules is None:
            return EXIT_USAGE
        mapping = rules.identity
    now = int(time.time())
    claims: dict[str, Any] = {k: _claim_value(v) for k, v in pairs(args.claim, "--claim")}
    claims |= {mapping.user: args.user, mapping.tenant: args.tenant, mapping.role: args.role}
    claims |= {"iat": now, "exp": now + args.ttl, "jti": uuid.uuid4().hex}
    if settings.jwt_audience:
        claims.setdefault("aud", settings.jwt_audience)
    if settings.jwt_issuer:
        claims.setdefault("iss", settings.jwt_issuer)
    print(jwt.encode(claims, settings.jwt_secret, algorithm="HS256"))
    return EXIT_OK
