"""Typed application and request state (aiohttp AppKey/RequestKey), declared once."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Final

import aiohttp
from aiohttp import web

from gateway.audit.client_events import AuditSink
from gateway.audit.records import AuditRecord
from gateway.audit.security import SecurityEvents
from gateway.audit.writer import AuditLog
from gateway.auth.identity import Identity
from gateway.decisions import Caller, Decisions
from gateway.limits import Limiter
from gateway.metrics import Metrics
from gateway.outages import Outages
from gateway.revocation.enforcer import Revocations
from gateway.revocation.feed import FeedHub
from gateway.rules.watch import RulesHolder
from gateway.settings import Settings
from gateway.streams import OpenStream, OpenStreams
from gateway.tasks import TaskGroup
from gateway.upstream.client import Timeouts, UpstreamPool
from gateway.upstream.exchange import Exchanges
from gateway.upstream.probe import UpstreamProbes
from gateway.web.middleware.admin_guard import AdminFailures

SETTINGS: Final = web.AppKey("settings", Settings)
REPLICA: Final = web.AppKey("replica", str)  # this app among the replicas: names its Redis clients
RULES: Final = web.AppKey("rules", RulesHolder)
DECISIONS: Final = web.AppKey("decisions", Decisions)  # the hot path's one cache, and its verifier
SESSION: Final = web.AppKey("session", aiohttp.ClientSession)  # JWKS fetches
UPSTREAMS: Final = web.AppKey("upstreams", UpstreamPool)  # Electric
EXCHANGES: Final = web.AppKey("exchanges", Exchanges)  # upstream requests in flight, shared
STREAMS: Final = web.AppKey("streams", OpenStreams)
TASKS: Final = web.AppKey("tasks", TaskGroup)
TIMEOUTS: Final = web.AppKey("timeouts", Timeouts)
METRICS: Final = web.AppKey("metrics", Metrics)
REVOCATIONS: Final = web.AppKey("revocations", Revocations)
FEED: Final = web.AppKey("feed", FeedHub)
LIMITER: Final = web.AppKey("limiter", Limiter)
AUDIT_SINK: Final = web.AppKey("audit_sink", AuditSink)
SECURITY: Final = web.AppKey("security", SecurityEvents)
AUDIT_LOG: Final = web.AppKey("audit_log", AuditLog)
OUTAGES: Final = web.AppKey("outages", Outages)  # failing Redis jobs and upstreams
PROBES: Final = web.AppKey("probes", UpstreamProbes)
ADMIN_FAILURES: Final = web.AppKey("admin_failures", AdminFailures)  # per client address
# Routing policy, filled in by web/app.py where the pipeline is written down.
PUBLIC_PATHS: Final = web.AppKey("public_paths", frozenset[str])  # no authentication
LIVE_ROUTES: Final = web.AppKey("live_routes", Mapping[str, Callable[[web.Request], bool]])
ADMIN_PREFIX: Final = "/admin/"  # GATEWAY_ADMIN_TOKEN instead of a JWT; absent when unset

IDENTITY: Final = web.RequestKey("identity", Identity)
CALLER: Final = web.RequestKey("caller", Caller)  # what IDENTITY's decisions are kept under
AUDIT: Final = web.RequestKey("audit", AuditRecord)
STREAM: Final = web.RequestKey("stream", OpenStream)  # set by admission: stops and expiry
