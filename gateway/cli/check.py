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
from gateway.cli.preflight import report, run_preflight
from gateway.errors import Refusal
from gateway.shape.params import parse_shape_query
from gateway.shape.plan import UpstreamRequest, plan
from gateway.upstream.headers import LOCAL_TTL


def register(commands: Commands) -> None:
    check = commands.add_parser(
        "check",
        help="validate a rules file (and, with --database, against the schema)",
        description="Load a rules file as `serve` would and print every problem as "
        "PATH:LINE: key: message (exit 1), or a summary (exit 0). Settings problems exit 2.",
    )
    check.add_argument("path", nargs="?", help="rules file (default: GATEWAY_RULES)")
    check.add_argument(
        "--database",
        metavar="URL",
        help="also check every shape's table, columns and where against this PostgreSQL "
        "(read only; default: GATEWAY_CHECK_DATABASE; needs the `proof` extra)",
    )
    check.set_defaults(run=run_check)

    explain = commands.add_parser(
        "explain",
        help="show what a request would become upstream",
        description="Plan one shape request with the planner that serves traffic and print "
        "the exact upstream request (the secret shown as REDACTED), or the refusal (exit 1).",
    )
    explain.add_argument("shape", help="the shape name a client sends as `table`")
    explain.add_argument("--user", required=True, help="the caller's user id")
    explain.add_argument("--tenant", required=True, help="the caller's active tenant")
    explain.add_argument("--role", required=True, help="the caller's role")
    explain.add_argument(
        "--claim", action="append", metavar="K=V", help="another token claim (repeatable)"
    )
    explain.add_argument("--where", help="the client's own where (within client_where)")
    explain.add_argument(
        "--param", action="append", metavar="N=V", help="a value for $N in --where (repeatable)"
    )
    explain.add_argument("--columns", help="the client's columns list, comma-separated")
    explain.add_argument("--rules", help="rules file (default: GATEWAY_RULES)")
    explain.set_defaults(run=run_explain)


def run_check(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    found = run_preflight(env, keys=False, rules_path=args.path, database=args.database)
    report(found, "check", errors=sys.stderr, rules_out=sys.stdout)
    rules = found.rules
    if found.exit_code != EXIT_OK or rules is None:
        return found.exit_code
    checked = (
        f", {found.schema_checked} checked against the database"
        if found.schema_checked is not None
        else ""
    )
    print(
        f"{rules.path}: ok: {len(rules.shapes)} shapes{checked}, roles "
        f"{', '.join(sorted(rules.roles))}, digest {rules.digest}"
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
