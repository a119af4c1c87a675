"""The gateway's error codes (docs/http-api.md#errors), the one table mapping them to HTTP
statuses, and `Refusal`.

Core code raises `Refusal(code, message)`; exactly one place (the web middleware, or the CLI)
renders it. No other module writes an error code or a status number as a literal.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final


class Code(StrEnum):
    """Error codes as clients see them in `{"error": CODE}`, listed in docs/http-api.md."""

    UNKNOWN_PARAMETER = "unknown_parameter"
    DUPLICATE_PARAMETER = "duplicate_parameter"
    FORBIDDEN_PARAMETER = "forbidden_parameter"
    INVALID_WHERE = "invalid_where"
    INVALID_PARAMETER = "invalid_parameter"
    MISSING_TOKEN = "missing_token"
    INVALID_TOKEN = "invalid_token"
    TOKEN_EXPIRED = "token_expired"
    TOKEN_STALE = "token_stale"
    SESSION_REVOKED = "session_revoked"
    UNKNOWN_ROLE = "unknown_role"
    SHAPE_NOT_ALLOWED = "shape_not_allowed"
    COLUMN_NOT_ALLOWED = "column_not_allowed"
    WHERE_NOT_ALLOWED = "where_not_allowed"
    MISSING_CLAIM = "missing_claim"
    INVALID_TENANT = "invalid_tenant"
    TENANT_NOT_MEMBER = "tenant_not_member"
    ACCESS_REVOKED = "access_revoked"
    TENANT_SUSPENDED = "tenant_suspended"
    ATTRIBUTION_MISMATCH = "attribution_mismatch"
    UNKNOWN_SHAPE = "unknown_shape"
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    RATE_LIMITED = "rate_limited"
    TOO_MANY_LIVE_CONNECTIONS = "too_many_live_connections"
    UPSTREAM_UNAVAILABLE = "upstream_unavailable"
    UPSTREAM_MISCONFIGURED = "upstream_misconfigured"
    REVOCATION_STATE_STALE = "revocation_state_stale"
    REVOCATION_OUTCOME_UNKNOWN = "revocation_outcome_unknown"  # a publish that may have applied
    UPSTREAM_TIMEOUT = "upstream_timeout"
    REQUEST_TIMEOUT = "request_timeout"  # a body sent too slowly
    AUDIT_UNAVAILABLE = "audit_log_unavailable"  # the audit line cannot be written
    INTERNAL_ERROR = "internal_error"  # a bug of ours, never a client's mistake


STATUS: Final[dict[Code, int]] = {
    Code.UNKNOWN_PARAMETER: 400,
    Code.DUPLICATE_PARAMETER: 400,
    Code.FORBIDDEN_PARAMETER: 400,
    Code.INVALID_WHERE: 400,
    Code.INVALID_PARAMETER: 400,
    Code.ATTRIBUTION_MISMATCH: 400,
    Code.MISSING_TOKEN: 401,
    Code.INVALID_TOKEN: 401,
    Code.TOKEN_EXPIRED: 401,
    Code.TOKEN_STALE: 401,
    Code.SESSION_REVOKED: 401,
    Code.UNKNOWN_ROLE: 403,
    Code.SHAPE_NOT_ALLOWED: 403,
    Code.COLUMN_NOT_ALLOWED: 403,
    Code.WHERE_NOT_ALLOWED: 403,
    Code.MISSING_CLAIM: 403,
    Code.INVALID_TENANT: 403,
    Code.TENANT_NOT_MEMBER: 403,
    Code.ACCESS_REVOKED: 403,
    Code.TENANT_SUSPENDED: 403,
    Code.UNKNOWN_SHAPE: 404,
    Code.NOT_FOUND: 404,
    Code.METHOD_NOT_ALLOWED: 405,
    Code.REQUEST_TIMEOUT: 408,
    Code.RATE_LIMITED: 429,
    Code.TOO_MANY_LIVE_CONNECTIONS: 429,
    Code.UPSTREAM_UNAVAILABLE: 502,
    Code.UPSTREAM_MISCONFIGURED: 502,
    Code.REVOCATION_STATE_STALE: 503,
    Code.REVOCATION_OUTCOME_UNKNOWN: 503,
    Code.UPSTREAM_TIMEOUT: 504,
    Code.AUDIT_UNAVAILABLE: 503,
    Code.INTERNAL_ERROR: 500,
}
# Refusals for access that was taken away: the browser must also drop what it cached.
REVOKED: Final = frozenset({Code.ACCESS_REVOKED, Code.TENANT_SUSPENDED, Code.SESSION_REVOKED})
# 401s: the client should (re)authenticate.
CHALLENGED: Final = frozenset({Code.MISSING_TOKEN, Code.INVALID_TOKEN, Code.TOKEN_EXPIRED})


class StoreUnavailableError(Exception):
    """A store could not reach what holds its data (Redis): the write did not happen, or may not
    have. Stores raise it in place of their client's errors, so callers need not know them."""


class Refusal(Exception):  # noqa: N818 - a refusal is a decision, not an error of ours
    """A request the gateway will not serve: an error code and one sentence saying what to do."""

    __slots__ = ("code", "message", "retry_after")

    def __init__(self, code: Code, message: str, retry_after: int | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.retry_after = retry_after  # seconds, sent as Retry-After (429s, 503s)

    @property
    def status(self) -> int:
        return STATUS[self.code]

    def as_json(self) -> dict[str, str]:
        return {"error": self.code.value, "message": self.message}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Refusal) and (self.code, self.message) == (
            other.code,
            other.message,
        )

    def __hash__(self) -> int:
        return hash((self.code, self.message))

    def __repr__(self) -> str:
        return f"Refusal({self.code.value!r}, {self.message!r})"
