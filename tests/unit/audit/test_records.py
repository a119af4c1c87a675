"""The audit decision and its reason are derived from what happened to the request, whatever
order the pipeline's stages recorded it in."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from gateway.audit.records import AuditRecord, Outcome
from gateway.shape.params import parse_shape_query
from gateway.shape.plan import UpstreamRequest, plan_upstream_request
from tests.factories import make_identity, make_rules

Step = Callable[[AuditRecord], None]


def _planned() -> UpstreamRequest:
    query = parse_shape_query([("table", "tasks"), ("offset", "-1")])
    return plan_upstream_request(query, make_identity(), make_rules())


ADMIT: Step = AuditRecord.admit


def ALLOW(record: AuditRecord) -> None:  # noqa: N802 - a step, named like its neighbours
    record.allow(_planned())


def ANSWERED(status: int) -> Step:  # noqa: N802
    return lambda record: record.upstream_answered(status)


def REFUSE(code: str) -> Step:  # noqa: N802
    return lambda record: record.refuse(code)


def STOP(code: str) -> Step:  # noqa: N802
    return lambda record: record.stopped(code)


ABORTED: Step = AuditRecord.upstream_aborted
CLOSED: Step = AuditRecord.client_closed
WRITE_TIMEOUT: Step = AuditRecord.write_timed_out


@pytest.mark.parametrize(
    ("steps", "status", "expected"),
    [
        ([ADMIT, ALLOW, ANSWERED(200)], 200, ("allowed", "ok")),
        ([ADMIT, ALLOW, ANSWERED(409)], 409, ("allowed", "upstream_must_refetch")),
        ([ADMIT, ALLOW, ANSWERED(400)], 400, ("allowed", "upstream_rejected")),
        ([ADMIT, ALLOW, ANSWERED(503)], 503, ("allowed", "upstream_overloaded")),
        ([ADMIT, ALLOW, ANSWERED(500)], 500, ("allowed", "upstream_error")),
        ([ADMIT, ALLOW, ANSWERED(200), ABORTED], 200, ("allowed", "upstream_aborted")),
        # broke off before the headers went: answered with our 502 instead
        (
            [ADMIT, ALLOW, ANSWERED(200), ABORTED, REFUSE("upstream_unavailable")],
            502,
            ("refused", "upstream_unavailable"),
        ),
        ([REFUSE("invalid_token")], 401, ("refused", "invalid_token")),
        ([ADMIT, REFUSE("shape_not_allowed")], 403, ("refused", "shape_not_allowed")),
        ([ADMIT, ALLOW, REFUSE("upstream_timeout")], 504, ("refused", "upstream_timeout")),
        (
            [ADMIT, REFUSE("rate_limited"), REFUSE("internal_error")],
            500,
            ("refused", "internal_error"),
        ),
        # a stream cut by a revocation, after its headers or before them (answered with the
        # refusal of the stop's code): still a cut-off of an allowed request
        (
            [ADMIT, ALLOW, ANSWERED(200), STOP("session_revoked")],
            200,
            ("allowed", "stopped:session_revoked"),
        ),
        (
            [ADMIT, ALLOW, STOP("token_expired"), REFUSE("token_expired")],
            401,
            ("allowed", "stopped:token_expired"),
        ),
        (
            [ADMIT, STOP("tenant_suspended"), REFUSE("tenant_suspended")],
            403,
            ("allowed", "stopped:tenant_suspended"),
        ),
        ([ADMIT, ALLOW, ANSWERED(200), CLOSED], 200, ("allowed", "client_closed")),
        ([ADMIT, ALLOW, ANSWERED(200), CLOSED, WRITE_TIMEOUT], 200, ("allowed", "write_timeout")),
        ([CLOSED], 0, ("abandoned", "client_closed")),
        ([ADMIT], 200, ("allowed", "ok")),  # the health routes, the admin API
        ([], 200, ("allowed", "ok")),
    ],
)
def test_the_decision_is_derived_from_what_happened(
    steps: list[Step], status: int, expected: tuple[str, str]
) -> None:
    record = AuditRecord("id", "GET", "/v1/shape")
    for step in steps:
        step(record)
    if CLOSED not in steps:
        record.finish(status)
    assert record.outcome() == Outcome(*expected)
    assert (record.decision, record.reason) == expected


def test_a_client_that_went_away_is_logged_with_499_whatever_was_sent() -> None:
    record = AuditRecord("id", "GET", "/v1/shape")
    ADMIT(record)
    record.client_closed()
    record.finish(200)
    assert record.status == 499
