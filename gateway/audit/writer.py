"""Writes audit lines, knows whether the log sink still takes them, and samples the lines of
unauthenticated refusals (anyone can send those; a scanner must not flood the log)."""

from __future__ import annotations

import time

from gateway.audit.records import AuditRecord
from gateway.audit.sampling import Sampler


class AuditLog:
    def __init__(self) -> None:
        self.healthy = True  # False once a line could not be written, until one can again
        self.sampler = Sampler()

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
            self.healthy = False
            return
        self.healthy = True
