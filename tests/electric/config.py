"""Configuration of the fake Electric server: one frozen value, read once."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Final

VERSION: Final = "1.7.12-fake"
DEFAULT_DSN: Final = "postgresql://postgres@127.0.0.1:5432/test"


def default_dsn() -> str:
    """The DSN tests and the CLI use unless told otherwise (`DATABASE_URL` overrides)."""
    return os.environ.get("DATABASE_URL", DEFAULT_DSN)


@dataclass(frozen=True, slots=True)
class ElectricConfig:
    """Knobs of the fake; timings are seconds (Electric's defaults are 20 s / 21 s / 60 s)."""

    dsn: str
    secret: str | None = None
    long_poll_timeout: float = 20.0
    sse_keepalive: float = 21.0
    sse_timeout: float = 60.0
    chunk_rows: int = 500
    gzip: bool = True

    def __post_init__(self) -> None:
        if self.chunk_rows < 1:
            raise ValueError("chunk_rows must be at least 1")
        if min(self.long_poll_timeout, self.sse_keepalive, self.sse_timeout) <= 0:
            raise ValueError("timeouts must be positive")
