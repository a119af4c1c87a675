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
    """409 must-refetch: the handle is not (or no longer) this definition's shape."""

    def __init__(self, handle: str | None) -> None:
        super().__init__(f"must refetch (current handle {handle})")
        self.handle = handle


class ServiceError(ElectricError):
    """Any other status with a JSON body, e.g. 503 overload or 500 snapshot failure."""

    def __init__(
        self,
        status: int,
        body: dict[str, Any],
        *,
        retry_after: int | None = None,
        known_error: bool = False,
        no_store: bool = True,
    ) -> None:
        super().__init__(f"{status}: {body}")
        self.status = status
        self.body = body
        self.retry_after = retry_after
        self.known_error = known_error
        self.no_store = no_store
