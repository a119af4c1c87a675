"""Cutting a shape's log into chunks, each served as one response (Electric's `LogChunker`).

A chunk closes with the message that brings it to `max_bytes` of JSON (Electric's 10 MiB
`chunk_bytes_threshold`), or to `max_rows` messages when set. Boundaries sit at fixed places in
the log, so a chunk's URL always answers the same messages (that is what makes it cacheable).
"""

from __future__ import annotations


class Chunker:
    """Counts messages and bytes since the last boundary; says where boundaries fall."""

    def __init__(self, max_bytes: int, max_rows: int | None) -> None:
        self._max_bytes = max_bytes
        self._max_rows = max_rows
        self._bytes = 0
        self._rows = 0

    def closes_chunk(self, message: str) -> bool:
        """Count `message` into the open chunk; True when it is the chunk's last."""
        self._bytes += len(message.encode())
        self._rows += 1
        if self._bytes >= self._max_bytes or (
            self._max_rows is not None and self._rows >= self._max_rows
        ):
            self._bytes = self._rows = 0
            return True
        return False

    def split(self, messages: list[str]) -> list[list[str]]:
        """`messages` cut into chunks (the last may be open); at least one, maybe empty."""
        chunks: list[list[str]] = [[]]
        for message in messages:
            chunks[-1].append(message)
            if self.closes_chunk(message):
                chunks.append([])
        if len(chunks) > 1 and not chunks[-1]:
            chunks.pop()
        return chunks
