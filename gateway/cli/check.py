"""`shape-gateway check` (does the rules file load?) and `explain` (what would one request
become upstream?), both through the loader and planner that serve traffic."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping

from gateway.auth.identity import Identity
from gateway.cli.inputs import (
    EXIT_OK,
    EXIT_PROBLEM,
    EXIT_USAGE,
    Commands,
    pairs,
    rules_or_report,
    settings_or_report,
)
from gateway.errors import Refusal
from gateway.shape.params import parse_shape_query
from gateway.shape.plan import UpstreamRequest, plan
from gateway.upstream.headers import LOCAL_TTL


def register(commands: Commands) -> None:
    check = commands.add_parser("check", help="validate a rules file")
    check.add_argument("path", nargs="?", help="rules file (default: GATEWAY_RULES)")
    check.set_defaults(run=run_check)

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
    explain.set_defaults(run=run_explain)


def run_check(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    settings = settings_or_report(env, sys.stderr)
    if settings is None:
        return EXIT_USAGE
    path = args.path or settings.rules_path
    rules = rules_or_report(path, settings, env, sys.stdout)
    if rules is None:
        return EXIT_PROBLEM
    print(
        f"{path}: ok: {len(rules.shapes)} shapes, roles {', '.join(sorted(rules.roles))}, "
        f"digest {rules.digest}"
    )
    return EXIT_OK


def print_request(request: UpstreamRequest) -> None:
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
    if request.local_ttl is not None:
        print(f"  local_ttl {request.local_ttl} s  (sent as {LOCAL_TTL})")


def run_explain(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    settings = settings_or_report(env, sys.stderr)
    if settings is None:
        return EXIT_USAGE
    rules = rules_or_report(args.rules or settings.rules_path, settings, env, sys.stderr)
    if rules is None:
        return EXIT_USAGE
    claims = dict(pairs(args.claim, "--claim"))
    identity = Identity(user=args.user, tenant=args.tenant, role=args.role, claims=claims)
    query: list[tuple[str, str]] = [("table", args.shape), ("offset", "-1")]
    if args.where is not None:
        query.append(("where", args.where))
    query += [(f"params[{n}]", v) for n, v in pairs(args.param, "--param")]
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
    print_request(decision)
    if rules.shapes[decision.shape].scope == "user":
        print("  scope    user: these rows follow the user across tenants (`scope: user`)")
    return EXIT_OK
