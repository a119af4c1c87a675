"""The few ways a shape request fails, as data; `responses.render_error` turns them into HTTP."""

from __future__ import annotations

from typing import Any


class ElectricError(Exception):
    """Base of every refusal the fake renders itself."""


class InvalidRequestError(ElectricError):
    """400 `{"message":"Invalid request","errors":{...}}` (Electric's Ecto error body)."""

    def __init__(self, errors: dict[str, Any]) -> None:
        super().__init__(f"invalid request: {errors}")
        self.errors = errors


class MustRefetchError(ElectricError):
    """409 must-refetch: the handle is not (or no longer) this definition's shape.

    `handle` is the one the response names; `location` is 1.0.10's pointer at the shape's
    start (`put_location_header/2`), used only when the imitated version sends one.
    """

    def __init__(self, handle: str | None, location: str | None = None) -> None:
        super().__init__(f"must refetch (handle {handle})")
        self.handle = handle
        self.location = location


class ServiceError(ElectricError):
    """Any other status with a JSON body, e.g. 503 overload or 500 snapshot failure."""

    def __init__(
        self,
        status: int,
        body: dict[str, Any],
        *,
        retry_after: int | None = None,
        known_error: bool = False,
    ) -> None:
        super().__init__(f"{status}: {body}")
        self.status = status
        self.body = body
        self.retry_after = retry_after
        self.known_error = known_error


class ParserCrashError(ElectricError):
    """Electric's where parser raised (a 1.0.10 bug): its crash handler answers 500."""

    def __init__(self, exception: str) -> None:
        super().__init__(exception)
        self.exception = exception


class SnapshotFailedError(ElectricError):
    """PostgreSQL refused a snapshot query Electric's parser had accepted (e.g. a failing
    cast): 1.0.10 cuts a started 200, 1.7 answers 500 (see `versions.ServerVersion`)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
