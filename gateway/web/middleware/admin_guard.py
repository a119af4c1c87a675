"""Failed admin authentications, limited per client address.

The admin token is a long random secret (32 bytes at least: guessing it is hopeless), yet wrong
guesses must be loud: each address may fail `FAILURES_PER_MINUTE` times a minute (a token
bucket, bursts of as many), then its wrong tokens are answered 429 `rate_limited` with
`Retry-After` and counted as `limited`, until the bucket refills. The right token always
passes, so an attacker behind the same address cannot lock ops out of the admin API.
Per replica, in memory: the admin API is reached directly on the private network (the shipped
nginx refuses `/admin/`), so the address is the caller's own. The table is bounded: the addresses
that failed least recently go first.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Final

from gateway.errors import Code, Refusal

FAILURES_PER_MINUTE: Final = 10
MAX_ADDRESSES: Final = 10_000


class AdminFailures:
    def __init__(
        self, per_minute: int = FAILURES_PER_MINUTE, max_addresses: int = MAX_ADDRESSES
    ) -> None:
        self.per_minute = per_minute
        self.max_addresses = max_addresses
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # tokens, at

    def _level(self, address: str, now: float) -> float:
        tokens, at = self._buckets.get(address, (float(self.per_minute), now))
        return min(float(self.per_minute), tokens + (now - at) * self.per_minute / 60)

    def check(self, address: str, now: float) -> None:
        """Refuse an address that spent its failures (raises Refusal rate_limited)."""
        if address not in self._buckets:
            return
        level = self._level(address, now)
        if level < 1:
            retry = max(math.ceil((1 - level) * 60 / self.per_minute), 1)
            raise Refusal(
                Code.RATE_LIMITED,
                f"too many failed admin authentications from this address; retry after {retry} s",
                retry,
            )

    def fail(self, address: str, now: float) -> None:
        self._buckets[address] = (self._level(address, now) - 1, now)
        self._buckets.move_to_end(address)
        if len(self._buckets) > self.max_addresses:
            self._buckets.popitem(last=False)
