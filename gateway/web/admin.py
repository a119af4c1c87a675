"""Ops API behind GATEWAY_ADMIN_TOKEN (checked in web/auth.py): inspect and reload the rules."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway.rules.model import Rules
from gateway.web.keys import RULES


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
