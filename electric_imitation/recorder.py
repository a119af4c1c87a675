"""Every `/v1/shape` request as it arrived, so tests can assert what a proxy sent upstream."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from electric_imitation.query import decode_pairs, last_value


@dataclass(slots=True)
class RecordedRequest:
    """Method, path, the raw query string and its decoded pairs in order (duplicates kept)."""

    method: str
    path: str
    query_string: str
    query: list[tuple[str, str]]
    headers: list[tuple[str, str]]
    received_at: float = field(default_factory=time.time)
    status: int | None = None

    def param(self, name: str) -> str | None:
        """The value Electric acts on: the last occurrence (Plug semantics)."""
        return last_value(self.query, name)

    def params(self, name: str) -> list[str]:
        """Every value sent for `name`, in order."""
        return [value for key, value in self.query if key == name]

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        return next((v for k, v in self.headers if k.lower() == lowered), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "path": self.path,
            "query_string": self.query_string,
            "query": [list(pair) for pair in self.query],
            "headers": [list(pair) for pair in self.headers],
            "received_at": self.received_at,
            "status": self.status,
        }


class RequestRecorder:
    """Append-only request log with a clear button."""

    def __init__(self) -> None:
        self._requests: list[RecordedRequest] = []

    def record(self, request: web.BaseRequest) -> RecordedRequest:
        raw = request.rel_url.raw_query_string
        entry = RecordedRequest(
            method=request.method,
            path=request.path,
            query_string=raw,
            query=decode_pairs(raw),
            headers=list(request.headers.items()),
        )
        self._requests.append(entry)
        return entry

    @property
    def requests(self) -> list[RecordedRequest]:
        return list(self._requests)

    def clear(self) -> None:
        self._requests.clear()
