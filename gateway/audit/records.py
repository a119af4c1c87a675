"""The one audit line per request: who, what, the decision and its reason, and what it cost.

Identity (user, tenant, role) is logged; a token, a secret, a where clause or a bound value
never is (the redaction processor in logs.py backs this up).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import structlog

from gateway.auth.identity import Identity
from gateway.shape.plan import UpstreamRequest

log = structlog.get_logger("gateway.audit")


@dataclass(slots=True)
class AuditRecord:
    request_id: str
    method: str
    path: str
    started: float = field(default_factory=time.monotonic)
    identity: Identity | None = None
    upstream: UpstreamRequest | None = None
    shape: str | None = None
    decision: str = "refused"
    reason: str = "unhandled"
    status: int = 0
    bytes: int = 0
    rules: str = ""

    def allow(self, request: UpstreamRequest) -> None:
        self.upstream, self.shape, self.decision, self.reason = (
            request,
            request.shape,
            "allowed",
            "ok",
        )

    def emit(self) -> None:
        identity, upstream = self.identity, self.upstream
        log.info(
            "shape_request",
            request_id=self.request_id,
            method=self.method,
            path=self.path,
            user=identity.user if identity else None,
            tenant=identity.tenant if identity else None,
            role=identity.role if identity else None,
            shape=self.shape,
            table=upstream.table if upstream else None,
            upstream=upstream.upstream.name if upstream else None,
            live=upstream.live if upstream else False,
            decision=self.decision,
            reason=self.reason,
            status=self.status,
            bytes=self.bytes,
            duration_ms=round((time.monotonic() - self.started) * 1000, 1),
            rules=self.rules,
        )
