"""The application: state, the request pipeline and the routes, in request order, in one place.

Pipeline for every request (outermost first), one job per middleware:
  1. answer_preflights  CORS preflights (OPTIONS), answered without a token
  2. record_requests    one audit line, metrics, security events; `request_id` in every log
  3. render_refusals    Refusal (and aiohttp's HTTP errors, and our bugs) -> JSON error
  4. authenticate       JWT, or the admin token on /admin/*; PUBLIC_PATHS skip it
  5. admit              revocation check, request budget, live slot; deny by default:
                        only PUBLIC_PATHS and the admin API are exempt
  6. the route          /v1/shape: parse -> plan -> proxy
  on_response_prepare   private no-cache caching, Vary, CORS, request id on every response
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Final

from aiohttp import web
from aiohttp.typedefs import Handler

from gateway.redis.client import replica_name
from gateway.rules.model import Upstream
from gateway.rules.watch import RulesHolder
from gateway.settings import Settings
from gateway.upstream.client import Timeouts
from gateway.web.keys import LIVE_ROUTES, PUBLIC_PATHS, REPLICA, RULES, SETTINGS, TIMEOUTS
from gateway.web.middleware.admission import admit
from gateway.web.middleware.auth import authenticate
from gateway.web.middleware.cors import answer_preflights
from gateway.web.middleware.recording import record_requests
from gateway.web.middleware.refusals import render_refusals
from gateway.web.middleware.response_headers import finish_headers
from gateway.web.routes import admin, audit_events, health, local_key, revocations, shape
from gateway.web.setups import (
    setup_admin,
    setup_audit,
    setup_limits_and_audit_stream,
    setup_logs,
    setup_metrics,
    setup_revocation,
    setup_streams,
    setup_tasks,
    setup_upstream_and_tokens,
    static_keys,
)

MAX_LINE: Final = 32 * 1024  # Electric where clauses travel in the query string
MAX_FIELD: Final = 16 * 1024
# No token, no admission: liveness, readiness (only ready or not) and Prometheus metrics.
PUBLIC: Final = frozenset({"/healthz", "/readyz", "/metrics"})
# Routes whose requests may be held open; each takes a live slot while it lasts.
LIVE: Final = {"/v1/shape": shape.is_live, "/v1/events": lambda request: True}

# 1. Each concern's state, in order (a later setup uses what an earlier one set); the
#    background tasks start, and stop in reverse order, with the app.
SETUPS: Final = (
    setup_logs, setup_metrics, setup_audit, setup_admin, setup_streams,
    setup_tasks, setup_upstream_and_tokens, setup_revocation, setup_limits_and_audit_stream,
)  # fmt: skip
# 2. The pipeline, outermost first; finish_headers runs on every response as it is prepared.
MIDDLEWARES: Final = (answer_preflights, record_requests, render_refusals, authenticate, admit)
# 3. The routes: method, path, handler, and the setting without which the route does not exist
#    (404): the local key without its secret, the admin API without its token.
ALWAYS: Final = None
ROUTES: Final[tuple[tuple[str, str, Handler, Callable[[Settings], object] | None], ...]] = (
    ("GET", "/v1/shape", shape.get_shape, ALWAYS),  # HEAD too
    ("POST", "/v1/shape", shape.post_shape, ALWAYS),
    ("DELETE", "/v1/shape", shape.delete_shape, ALWAYS),
    ("GET", "/v1/events", revocations.get_events, ALWAYS),
    ("GET", "/v1/memberships", revocations.get_memberships, ALWAYS),
    ("POST", "/v1/audit-events", audit_events.post_audit_events, ALWAYS),
    ("GET", "/v1/local-key", local_key.get_local_key, lambda s: s.local_key_secret),
    ("GET", "/healthz", health.healthz, ALWAYS),
    ("GET", "/readyz", health.readyz, ALWAYS),
    ("GET", "/metrics", health.metrics, ALWAYS),
    ("GET", "/admin/status", admin.get_status, lambda s: s.admin_token),
    ("GET", "/admin/rules", admin.get_rules, lambda s: s.admin_token),
    ("POST", "/admin/reload", admin.reload_rules, lambda s: s.admin_token),
    ("POST", "/admin/revocations", revocations.post_revocation, lambda s: s.admin_token),
)


def check_loadable(settings: Settings, env: Mapping[str, str]) -> RulesHolder:
    """The rules, and the keys checked: RulesError or KeyConfigError for the caller to report
    (at start-up, not at the first request)."""
    static_keys(settings)
    default = Upstream("default", settings.electric_url, settings.electric_secret)
    return RulesHolder.load(settings.rules_path, env, default)


def make_app(
    settings: Settings, env: Mapping[str, str], timeouts: Timeouts | None = None
) -> web.Application:
    """Build the app; raises RulesError or KeyConfigError for the caller to report."""
    holder = check_loadable(settings, env)
    app = web.Application(
        middlewares=MIDDLEWARES,
        handler_args={"max_line_size": MAX_LINE, "max_field_size": MAX_FIELD},
        client_max_size=64 * 1024,
    )
    app[SETTINGS] = settings
    app[REPLICA] = replica_name()
    app[PUBLIC_PATHS] = PUBLIC
    app[LIVE_ROUTES] = LIVE
    app[RULES] = holder
    app[TIMEOUTS] = timeouts or Timeouts()
    for setup in SETUPS:
        setup(app)
    app.on_response_prepare.append(finish_headers)
    add = {"GET": app.router.add_get, "POST": app.router.add_post,
           "DELETE": app.router.add_delete}  # fmt: skip
    for method, path, handler, when in ROUTES:
        if when is ALWAYS or when(settings):
            add[method](path, handler)
    return app
