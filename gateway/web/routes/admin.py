"""Ops API behind GATEWAY_ADMIN_TOKEN (checked in web/middleware/auth.py): the replica's status, and
inspecting and reloading the rules."""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from gateway.redis.client import REDIS_JOBS
from gateway.redis.url import parse_redis_url
from gateway.rules.model import Rules
from gateway.web.keys import AUDIT_LOG, OUTAGES, PROBES, REVOCATIONS, RULES, SETTINGS
from gateway.web.routes.health import is_ready


def describe_rules(rules: Rules) -> dict[str, Any]:
    """The active rules as ops read them; where clauses as compiled, never secrets."""
    return {
        "digest": rules.digest,
        "path": rules.path,
        "roles": sorted(rules.roles),
        "upstreams": {name: u.url for name, u in rules.upstreams.items()},
        "shapes": {
            name: {
                "table": shape.table,
                "public": shape.public,
                "scope": shape.scope,
                "client_where": sorted(shape.client_where) if shape.client_where else None,
                "grants": {
                    role: {
                        "where": grant.where.sql if grant.where else None,
                        "binds": list(grant.where.bindings) if grant.where else [],
                        "columns": list(grant.columns) if grant.columns is not None else None,
                    }
                    for role, grant in shape.grants.items()
                },
            }
            for name, shape in rules.shapes.items()
        },
    }


async def get_status(request: web.Request) -> web.Response:
    """Why this replica is (not) ready, and what is failing: each Redis job and upstream with
    since when, how many failures, the last error and what to check; the rules' last reload."""
    app = request.app
    settings, outages, holder = app[SETTINGS], app[OUTAGES], app[RULES]
    now = time.monotonic()
    redis: dict[str, Any] | None = None
    if settings.redis_url:
        failing = outages.of_kind("redis")
        redis = {
            "target": parse_redis_url(settings.redis_url).target,
            "jobs": {
                job: {"ok": False, **failing[job].as_json(now)} if job in failing else {"ok": True}
                for job in REDIS_JOBS
            },
        }
    return web.json_response(
        {
            "ready": is_ready(app),
            "revocations": {
                "fresh": app[REVOCATIONS].fresh(),
                "fail_mode": settings.fail_mode,
                "store": "redis" if settings.redis_url else "memory",
            },
            "audit_log": {"writable": app[AUDIT_LOG].healthy},
            "redis": redis,
            "upstreams": app[PROBES].describe(),
            "upstream_probe_seconds": settings.upstream_probe_seconds,
            "rules": {
                "digest": holder.rules.digest,
                "path": holder.path,
                "last_reload_error": list(holder.last_error),
            },
        }
    )


async def get_rules(request: web.Request) -> web.Response:
    holder = request.app[RULES]
    return web.json_response(
        {
            "active": describe_rules(holder.rules),
            "loaded_at": holder.loaded_at,
            "reloads": holder.reloads,
            "failures": holder.failures,
            "last_reload_error": list(holder.last_error),
        }
    )


async def reload_rules(request: web.Request) -> web.Response:
    result = request.app[RULES].reload("admin")
    return web.json_response(
        {
            "ok": result.ok,
            "changed": result.changed,
            "digest": result.digest,
            "problems": list(result.problems),
        },
        status=200 if result.ok else 422,
    )
