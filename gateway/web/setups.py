"""Each concern's state on the app, set up in one function per concern: what it holds, the
Redis client (or in-process stand-in) it uses, and the background tasks it runs for the app's
life. web/app.py lists them in order; the later ones use what the earlier ones set.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from aiohttp import web

from gateway.audit.client_events import AuditSink, LogSink, RedisSink
from gateway.audit.security import SecurityEvents
from gateway.audit.writer import AuditLog
from gateway.auth.keys import JwksKeys, KeyRing, StaticKeys, hmac_key, public_key
from gateway.auth.tokens import TokenPolicy, TokenVerifier
from gateway.decisions import Decisions
from gateway.errors import Code, Refusal
from gateway.limits import Limiter, MemoryLimiter, RedisLimiter
from gateway.logs import REDACTOR
from gateway.metrics import Metrics
from gateway.outages import Outages
from gateway.redis.client import REDIS_JOBS, RedisClient, client_name, connect_redis
from gateway.redis.keys import revocation_stream
from gateway.redis.node import KeyNode
from gateway.redis.url import parse_redis_url
from gateway.revocation.enforcer import Revocations
from gateway.revocation.feed import FeedHub
from gateway.revocation.store import MemoryStore, RedisStore, RevocationStore
from gateway.rules.watch import ReloadResult
from gateway.settings import Settings
from gateway.streams import OpenStreams
from gateway.tasks import TaskGroup, cancel
from gateway.upstream.client import UpstreamPool, make_session
from gateway.upstream.exchange import Exchanges
from gateway.upstream.probe import UpstreamProbes
from gateway.web.keys import (
    ADMIN_FAILURES,
    AUDIT_LOG,
    AUDIT_SINK,
    DECISIONS,
    EXCHANGES,
    FEED,
    LIMITER,
    METRICS,
    OUTAGES,
    PROBES,
    REPLICA,
    REVOCATIONS,
    RULES,
    SECURITY,
    SESSION,
    SETTINGS,
    STREAMS,
    TASKS,
    TIMEOUTS,
    UPSTREAMS,
)
from gateway.web.middleware.admin_guard import AdminFailures


def static_keys(settings: Settings) -> StaticKeys:
    """Keys known at start-up; raises KeyConfigError naming the variable at fault."""
    keys = []
    if settings.jwt_secret:
        keys.append(hmac_key(settings.jwt_secret, settings.jwt_algorithms))
    if settings.jwt_public_key:
        keys.append(public_key(settings.jwt_public_key, settings.jwt_algorithms))
    return StaticKeys(tuple(keys))


def token_policy(settings: Settings) -> TokenPolicy:
    return TokenPolicy(
        audience=settings.jwt_audience,
        issuer=settings.jwt_issuer,
        leeway=settings.jwt_leeway,
        max_ttl=settings.jwt_max_ttl,
    )


async def _client_context(app: web.Application) -> AsyncIterator[None]:
    """The upstream connections, JWKS keys and the token verifier live as long as the app."""
    settings = app[SETTINGS]
    session = make_session()
    app[SESSION] = session
    app[UPSTREAMS] = UpstreamPool()
    app[EXCHANGES] = Exchanges(
        app[UPSTREAMS], app[TIMEOUTS], app[METRICS], collapse=settings.collapse
    )
    jwks, refresher = None, None
    if settings.jwt_jwks_url:
        jwks = JwksKeys(settings.jwt_jwks_url, session, settings.jwt_algorithms)
        await jwks.refresh(force=True)
        refresher = app[TASKS].spawn(jwks.maintain(), "jwks-refresh")
    verifier = TokenVerifier(KeyRing(static_keys(settings), jwks), token_policy(settings))
    app[DECISIONS] = Decisions(verifier)
    probes = UpstreamProbes(app[RULES], session, app[OUTAGES], settings.upstream_probe_seconds)
    app[PROBES] = probes  # started by server/serve.py once the gateway listens
    yield
    await probes.stop()
    if refresher is not None:
        await cancel(refresher)  # before the session it fetches with closes
    await session.close()
    await app[EXCHANGES].close()
    app[UPSTREAMS].close()


async def _tasks_context(app: web.Application) -> AsyncIterator[None]:
    tasks = TaskGroup()
    app[TASKS] = tasks
    tasks.spawn(app[RULES].watch(), "rules-watch")
    yield
    await tasks.close()


async def _revocation_context(app: web.Application) -> AsyncIterator[None]:
    """The revocation view: followed from Redis (or memory) for the app's whole life."""
    settings = app[SETTINGS]
    retention = settings.jwt_max_ttl + settings.jwt_leeway
    store: RevocationStore = MemoryStore()
    if settings.redis_url:
        nodes = KeyNode(
            settings.redis_url, revocation_stream(settings.redis_prefix),
            client_name(app[REPLICA], "revocations"), job="revocations", outages=app[OUTAGES],
        )  # fmt: skip
        store = RedisStore(nodes, settings.redis_prefix, settings.revocation_wait_ms, retention)
    revocations = Revocations(
        store,
        retention=retention,
        streams=app[STREAMS],
        metrics=app[METRICS],
        fail_closed=settings.fail_mode == "closed",
    )
    revocations.listeners.append(app[FEED].publish)
    app[REVOCATIONS] = revocations
    follower = app[TASKS].spawn(revocations.run(), "revocations")
    yield
    await cancel(follower)  # before its Redis client closes under it
    await store.close()


async def _warm(clients: list[RedisClient]) -> None:
    await asyncio.gather(*(client.warm() for client in clients))


async def _limits_and_audit_context(app: web.Application) -> AsyncIterator[None]:
    """Rate limits, live caps and the audit stream: shared through Redis, else in-process."""
    settings = app[SETTINGS]
    limiter: Limiter
    sink: AuditSink
    if settings.redis_url:
        url, replica, size = settings.redis_url, app[REPLICA], settings.redis_pool_size
        outages = app[OUTAGES]
        limits = connect_redis(url, "limits", replica=replica, connections=size, outages=outages)
        audit = connect_redis(url, "audit", replica=replica, connections=size, outages=outages)
        limiter = RedisLimiter(limits, settings.redis_prefix, settings.live_lease_seconds)
        sink = RedisSink(audit, settings.redis_prefix, settings.audit_bytes_per_minute)
        warming = [limits, audit]  # their connections opened before the first burst
    else:
        limiter, sink = MemoryLimiter(), LogSink(settings.audit_bytes_per_minute)
        warming = []
    app[LIMITER], app[AUDIT_SINK] = limiter, sink
    security = SecurityEvents(sink, app[METRICS].security_events_dropped.inc)
    app[SECURITY] = security
    warm = app[TASKS].spawn(_warm(warming), "redis-warm-up")
    renewer = app[TASKS].spawn(limiter.run(), "live-lease-renewal")
    writer = app[TASKS].spawn(security.run(), "security-events")
    yield
    await cancel(warm)  # the tasks first, then the clients they use
    await cancel(renewer)
    await cancel(writer)
    await limiter.close()
    await sink.close()


def _observe_rules(app: web.Application) -> None:
    """Metrics for the active rules, and their upstream secrets masked in logs, at start-up
    and after every reload (a reload may add an upstream and its secret)."""
    metrics, holder = app[METRICS], app[RULES]
    metrics.set_rules(holder.rules.digest)
    for upstream in holder.rules.upstreams.values():
        REDACTOR.add_secret(upstream.secret)

    def observe(result: ReloadResult) -> None:
        if not result.ok:
            metrics.rules_reload_failures.inc()
        elif result.changed:
            metrics.rules_reloads.inc()
            metrics.set_rules(result.digest)
            for upstream in holder.rules.upstreams.values():
                REDACTOR.add_secret(upstream.secret)

    holder.observers.append(observe)


def _outages(metrics: Metrics, settings: Settings) -> Outages:
    """Failing dependencies, each also a `shape_gateway_dependency_up` series."""
    outages = Outages()
    outages.listeners.append(
        lambda kind, name, up: metrics.dependency_up.labels(kind, name).set(1 if up else 0)
    )
    for job in REDIS_JOBS if settings.redis_url else ():
        metrics.dependency_up.labels("redis", job).set(1)
    return outages


async def _end_live_streams(app: web.Application) -> None:
    """On shutdown: end held long-polls and SSE streams so clients reconnect elsewhere; let
    snapshots in flight finish within the runner's grace period."""
    app[STREAMS].stop_where(
        lambda s: s.live,
        Refusal(Code.UPSTREAM_UNAVAILABLE, "this gateway instance is shutting down; retry"),
    )


def setup_logs(app: web.Application) -> None:
    """Every secret the settings hold, REDIS_URL's included, masked in every log line."""
    settings = app[SETTINGS]
    for secret in (
        settings.electric_secret, settings.jwt_secret, settings.admin_token,
        settings.local_key_secret,
    ):  # fmt: skip
        REDACTOR.add_secret(secret)
    if settings.redis_url:
        for secret in parse_redis_url(settings.redis_url).secrets:
            REDACTOR.add_secret(secret)


def setup_metrics(app: web.Application) -> None:
    """The metrics, the active rules' series, and the failing dependencies' (`outages`)."""
    app[METRICS] = Metrics(tenant_labels=app[SETTINGS].metrics_tenant_labels)
    _observe_rules(app)
    app[OUTAGES] = _outages(app[METRICS], app[SETTINGS])


def setup_audit(app: web.Application) -> None:
    app[AUDIT_LOG] = AuditLog()


def setup_admin(app: web.Application) -> None:
    app[ADMIN_FAILURES] = AdminFailures()


def setup_streams(app: web.Application) -> None:
    """Held requests and event feeds, ended at shutdown so their clients reconnect elsewhere."""
    app[STREAMS] = OpenStreams(leeway=app[SETTINGS].jwt_leeway)
    app[FEED] = FeedHub()
    app.on_shutdown.append(_end_live_streams)


def setup_tasks(app: web.Application) -> None:
    app.cleanup_ctx.append(_tasks_context)


def setup_upstream_and_tokens(app: web.Application) -> None:
    app.cleanup_ctx.append(_client_context)


def setup_revocation(app: web.Application) -> None:
    app.cleanup_ctx.append(_revocation_context)


def setup_limits_and_audit_stream(app: web.Application) -> None:
    app.cleanup_ctx.append(_limits_and_audit_context)
