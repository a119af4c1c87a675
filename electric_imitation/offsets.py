"""Log offsets `<tx>_<op>` (Electric's `LogOffset`): parse, print, order.

`-1` is before everything, `0_<n>` are snapshot chunks, `0_inf` ends the snapshot, and real
changes use `<lsn>_<op>` with op stepping by 2 inside a transaction (room for key changes).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal

_INT: Final = re.compile(r"^[+-]?\d+$")
INVALID_FORMAT: Final = "has invalid format"

Now = Literal["now"]
NOW: Final[Now] = "now"


class OffsetError(ValueError):
    """The `offset` parameter is not an offset; the message is Electric's."""


@dataclass(frozen=True, slots=True)
class LogOffset:
    """A position in a shape log; `op is None` means `inf` (after every op of `tx`)."""

    tx: int
    op: int | None

    @property
    def _key(self) -> tuple[int, int, int]:
        return (self.tx, 1, 0) if self.op is None else (self.tx, 0, self.op)

    def __lt__(self, other: LogOffset) -> bool:
        return self._key < other._key

    def __le__(self, other: LogOffset) -> bool:
        return self._key <= other._key

    def __gt__(self, other: LogOffset) -> bool:
        return self._key > other._key

    def __ge__(self, other: LogOffset) -> bool:
        return self._key >= other._key

    def __str__(self) -> str:
        if self.tx == -1:
            return "-1"
        return f"{self.tx}_{'inf' if self.op is None else self.op}"

    @property
    def is_before_all(self) -> bool:
        return self.tx == -1

    def increment(self) -> LogOffset:
        """The next op slot of the same transaction (the insert half of a key change)."""
        assert self.op is not None
        return LogOffset(self.tx, self.op + 1)


BEFORE_ALL: Final = LogOffset(-1, 0)
FIRST_CHUNK: Final = LogOffset(0, 0)
SNAPSHOT_END: Final = LogOffset(0, None)


def parse_offset(text: str) -> LogOffset | Now:
    """`-1`, `now` or `<tx>_<op|inf>`, accepting exactly what `LogOffset.from_string` accepts."""
    if text == "-1":
        return BEFORE_ALL
    if text == "now":
        return NOW
    parts = text.split("_")
    if len(parts) != 2 or not _INT.match(parts[0]):
        raise OffsetError(INVALID_FORMAT)
    tx = int(parts[0])
    if parts[1] == "inf":
        op: int | None = None
    elif _INT.match(parts[1]):
        op = int(parts[1])
    else:
        raise OffsetError(INVALID_FORMAT)
    if tx == -1 and op == 0:
        return BEFORE_ALL
    if tx < 0 or (op is not None and op < 0):
        raise OffsetError(INVALID_FORMAT)
    return LogOffset(tx, op)
