"""Configuration of the imitation: one frozen value, read once."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Final

from electric_imitation.versions import ServerVersion, server_version

DEFAULT_DSN: Final = "postgresql://postgres@127.0.0.1:5432/test"
DEFAULT_VERSION: Final = "1.7"
MIB: Final = 1024 * 1024


def default_dsn() -> str:
    """The DSN tests and the CLI use unless told otherwise (`DATABASE_URL` overrides)."""
    return os.environ.get("DATABASE_URL", DEFAULT_DSN)


@dataclass(frozen=True, slots=True)
class ElectricConfig:
    """Knobs of the imitation; timings are seconds (Electric's defaults are 20 s / 21 s / 60 s).

    `version` picks which Electric to behave like (`versions.SERVER_VERSIONS`). A log is cut
    into chunks (one response each) of about `chunk_bytes` of JSON, Electric's
    `ELECTRIC_SHAPE_CHUNK_BYTES_THRESHOLD` (10 MiB); `chunk_rows` additionally caps a chunk's
    rows, for tests that want many chunks from few rows. Inside a response the body is flushed
    every `flush_items` messages or `flush_bytes` bytes, like Electric's encoder.
    """

    dsn: str
    version: str = DEFAULT_VERSION
    secret: str | None = None
    long_poll_timeout: float = 20.0
    sse_keepalive: float = 21.0
    sse_timeout: float = 60.0
    chunk_bytes: int = 10 * MIB
    chunk_rows: int | None = None
    flush_items: int = 500
    flush_bytes: int = 256 * 1024
    snapshot_failure_delay: float = 5.0
    gzip: bool = True
    allow_shape_deletion: bool = False  # Electric's ELECTRIC_ENABLE_INTEGRATION_TESTING

    def __post_init__(self) -> None:
        server_version(self.version)  # ValueError names the known versions
        if self.chunk_bytes < 1 or (self.chunk_rows is not None and self.chunk_rows < 1):
            raise ValueError("chunk_bytes and chunk_rows must be at least 1")
        if self.flush_items < 1 or self.flush_bytes < 1:
            raise ValueError("flush_items and flush_bytes must be at least 1")
        if min(self.long_poll_timeout, self.sse_keepalive, self.sse_timeout) <= 0:
            raise ValueError("timeouts must be positive")
        if self.snapshot_failure_delay < 0:
            raise ValueError("snapshot_failure_delay must not be negative")

    @property
    def server(self) -> ServerVersion:
        """How the Electric being imitated behaves."""
        return server_version(self.version)
