"""The one audit line per request: who, what, the decision and its reason, and what it cost.

Identity (user, tenant, role) is logged, and whether the request `joined` an upstream exchange
another client had started (GATEWAY_COLLAPSE); a token, a secret, a where clause or a bound value
never is (the redaction processor in logs.py backs this up).

Decisions: `allowed` (admitted and served, whatever happened after: a stream cut by a
revocation or its token's expiry keeps `allowed` with reason `stopped:<code>`, a client that
hung up `client_closed`, one that stopped reading `write_timeout`, one that fell a whole buffer
behind the others sharing its upstream exchange `slow_reader`, an error of Electric's passed
through `upstream_rejected`, `upstream_overloaded`, ...),
`refused` (answered with one of our error codes), `abandoned` (the client went away before a
decision was made).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Final, NamedTuple

import structlog

from gateway.auth.identity import Identity
from gateway.shape.plan import UpstreamRequest

log = structlog.get_logger("gateway.audit")
CLIENT_CLOSED: Final = 499  # nginx's convention: the client closed the connection
MUST_REFETCH: Final = 409
OVERLOADED: Final = 503


def upstream_reason(status: int) -> str:
    """What an Electric answer passed through to the client was: `ok` below 400; its 409
    must-refetch (protocol, not failure); its 503 (starting, or shedding load); any other 4xx,
    a request Electric rejected (the rules and the database disagree: a column or table the
    schema lacks); any other 5xx, an error of Electric's."""
    if status < 400:
        return "ok"
    if status == MUST_REFETCH:
        return "upstream_must_refetch"
    if status == OVERLOADED:
        return "upstream_overloaded"
    return "upstream_rejected" if status < 500 else "upstream_error"


class Outcome(NamedTuple):
    decision: str  # allowed, refused, abandoned
    reason: str


@dataclass(slots=True)
class AuditRecord:
    """What happened to one request, as facts the pipeline records where it learns them; the
    decision and its reason are derived from them in one place, `outcome()`."""

    request_id: str
    method: str
    path: str
    started: float = field(default_factory=time.monotonic)
    identity: Identity | None = None
    upstream: UpstreamRequest | None = None
    shape: str | None = None
    status: int = 0
    bytes: int = 0  # body bytes sent to the client
    upstream_status: int = 0  # Electric's status, when its answer was passed through
    rules: str = ""
    live: bool = False  # held open (a long-poll, an SSE stream, the event feed)
    joined: bool = False  # answered by an upstream exchange another client had started
    admitted: bool = False  # passed authentication and admission (or needed neither)
    refused_with: str | None = None  # the code of our refusal
    stopped_by: str | None = None  # the code that ended it on purpose once admitted
    upstream_broke_off: bool = False  # Electric broke off its body after it had begun
    ended_by_client: str | None = None  # client_closed, write_timeout, slow_reader

    def admit(self) -> None:
        """The request passed authentication and admission; a refusal may still follow."""
        self.admitted = True

    def allow(self, request: UpstreamRequest) -> None:
        self.upstream, self.shape = request, request.shape
        self.admitted = True
        self.live = self.live or request.live

    def upstream_answered(self, status: int) -> None:
        """Electric's answer is passed through: still `allowed`, but an error of Electric's is
        audited as what it is, never as `ok`."""
        self.upstream_status = status

    def upstream_aborted(self) -> None:
        self.upstream_broke_off = True

    def refuse(self, code: str) -> None:
        self.refused_with = code

    def stopped(self, code: str) -> None:
        """Ended on purpose after it was admitted (revocation, token expiry, shutdown)."""
        self.stopped_by = code

    def client_closed(self) -> None:
        if self.ended_by_client != "slow_reader":  # the gateway cut it, and says why
            self.ended_by_client = "client_closed"
        self.status = CLIENT_CLOSED

    def write_timed_out(self) -> None:
        """Aborted by GATEWAY_WRITE_TIMEOUT: the client stopped reading its response. Logged
        with 499 like a client that left (the client, not the gateway, ended the exchange)."""
        self.ended_by_client, self.status = "write_timeout", CLIENT_CLOSED

    def slow_reader(self) -> None:
        """Cut because it fell a whole buffer behind the other clients of its upstream
        exchange (upstream/exchange.py); 499 like a client that stopped reading."""
        self.ended_by_client, self.status = "slow_reader", CLIENT_CLOSED

    def finish(self, status: int) -> None:
        """The response was sent with `status`."""
        if self.status != CLIENT_CLOSED:
            self.status = status

    def outcome(self) -> Outcome:
        """The decision and its reason. A stop outranks the refusal that answers it (a stream
        cut before its headers is still a cut-off: `stopped:<code>`); a client that went away
        outranks everything but keeps the decision made before (`abandoned` if none was)."""
        refused = self.refused_with is not None and self.stopped_by is None
        decision = "refused" if refused else "allowed" if self.admitted else ""
        if self.ended_by_client is not None:
            return Outcome(decision or "abandoned", self.ended_by_client)
        decision = decision or "allowed"  # answered, and nobody refused it
        if self.stopped_by is not None:
            return Outcome(decision, f"stopped:{self.stopped_by}")
        if self.refused_with is not None:
            return Outcome(decision, self.refused_with)
        if self.upstream_broke_off:
            return Outcome(decision, "upstream_aborted")
        if self.upstream_status:
            return Outcome(decision, upstream_reason(self.upstream_status))
        return Outcome(decision, "ok")

    @property
    def decision(self) -> str:
        return self.outcome().decision

    @property
    def reason(self) -> str:
        return self.outcome().reason

    @property
    def authenticated(self) -> bool:
        return self.identity is not None

    def emit(self, sampled_out: int = 0) -> None:
        """Write the line; raises OSError/ValueError when the log sink is broken.
        `sampled_out`: lines of unauthenticated refusals left out before this one."""
        identity, upstream = self.identity, self.upstream
        decision, reason = self.outcome()
        extra = {"sampled_out": sampled_out} if sampled_out else {}
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
            live=self.live,
            joined=self.joined,
            decision=decision,
            reason=reason,
            status=self.status,
            bytes=self.bytes,
            duration_ms=round((time.monotonic() - self.started) * 1000, 1),
            rules=self.rules,
            **extra,
        )
