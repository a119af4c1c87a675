"""Where log lines go: stderr, with the lines of one event-loop iteration in one write.

Under load a replica writes an audit line per request; one `write` syscall each cost as much
as a tenth of a request. Lines logged while the loop runs are joined and written when the
iteration ends (`call_soon`), in writes of at most PIPE_BUF bytes of whole lines (atomic on a
pipe, so workers sharing stderr never interleave), so a burst of requests costs a write or
two; outside a running loop
(start-up, the CLI) each line is written at once. A write that fails (stderr closed, a pipe
whose reader died) marks the sink unhealthy until one succeeds: the audit middleware then
refuses to serve, and /readyz says not ready. At most one iteration's lines are lost if the
process is killed outright; `flush()` runs at shutdown.
"""

from __future__ import annotations

import asyncio
import select
import sys
from typing import BinaryIO


class LineSink:
    """A structlog logger (for bytes or text renderers) writing newline-ended lines."""

    def __init__(self, stream: BinaryIO | None = None) -> None:
        self.stream = stream
        self.healthy = True
        self._pending: list[bytes] = []
        self._scheduled = False

    def msg(self, message: bytes | str) -> None:
        line = message if isinstance(message, bytes) else message.encode("utf-8", "replace")
        self._pending.append(line + b"\n")
        if self._scheduled:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()
            return
        self._scheduled = True
        loop.call_soon(self.flush)

    debug = info = warning = warn = error = critical = exception = fatal = log = msg

    def flush(self) -> None:
        self._scheduled = False
        if not self._pending:
            return
        stream = self.stream if self.stream is not None else sys.stderr.buffer
        try:
            for batch in _batches(self._pending):
                stream.write(batch)
                stream.flush()
        except (OSError, ValueError):  # ValueError: a closed file
            self.healthy = False
        else:
            self.healthy = True
        finally:
            self._pending.clear()


SINK = LineSink()


def sink_factory(*_args: object) -> LineSink:
    """structlog's logger_factory: every logger writes through the one sink."""
    return SINK


def _batches(lines: list[bytes]) -> list[bytes]:
    """Whole lines joined into writes of at most PIPE_BUF bytes: a pipe takes a write that
    small in one piece, so the lines of `serve --workers` processes sharing stderr never
    interleave mid-line."""
    batches: list[bytes] = []
    current: list[bytes] = []
    size = 0
    for line in lines:
        if current and size + len(line) > select.PIPE_BUF:
            batches.append(b"".join(current))
            current, size = [], 0
        current.append(line)
        size += len(line)
    if current:
        batches.append(b"".join(current))
    return batches
