"""Writes audit lines, knows whether the log sink still takes them, and samples the lines of
unauthenticated refusals (anyone can send those; a scanner must not flood the log)."""

from __future__ import annotations

import time

from gateway.audit.records import AuditRecord
from gateway.audit.sampling import Sampler
from gateway.log_sink import SINK, LineSink


class AuditLog:
    def __init__(self, sink: LineSink = SINK) -> None:
        self.sink = sink
        self.emitted = True  # False when emitting raised (a logger that writes at once)
        self.sampler = Sampler()

    @property
    def healthy(self) -> bool:
        """Whether the last line could be written (the sink writes at the end of each loop
        iteration, so a failure is known before the next request is served)."""
        return self.emitted and self.sink.healthy

    def write(self, record: AuditRecord) -> None:
        sampled_out = 0
        if record.decision == "refused" and not record.authenticated:
            taken = self.sampler.take(time.monotonic())
            if taken is None:
                return
            sampled_out = taken
        try:
            record.emit(sampled_out)
        except (OSError, ValueError):  # a closed stderr, a pipe whose reader went away
            self.emitted = False
            return
        self.emitted = True
