"""Sampling for the audit lines of unauthenticated refusals.

Anyone can send requests without a token; a scanner sending thousands must not flood the log
(or the security stream, which records only authenticated callers). Every such refusal is
counted in metrics; its line is written at most `rate` times a second (bursts of `burst`), and
the next line written says how many were left out.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class Sampler:
    rate: float = 10.0
    burst: float = 20.0
    tokens: float = 20.0
    at: float = 0.0
    skipped: int = 0

    def take(self, now: float) -> int | None:
        """None: leave this line out. Otherwise the count left out since the last line."""
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens < 1:
            self.skipped += 1
            return None
        self.tokens -= 1
        skipped, self.skipped = self.skipped, 0
        return skipped
