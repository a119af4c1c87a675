"""A least-recently-used cache bounded in bytes as well as in entries.

The hot path keeps what a client repeats on every poll in one such cache (gateway/decisions.py).
Bounded by entries alone, a client that sends large distinct queries (30 KB each) grew a replica
by hundreds of MB at the caps; so a cache also has a byte budget, and an entry larger than
`max_bytes // 16` is not kept at all (computed again when asked, never flushing everyone
else's). Sizes are estimates from the text an entry holds, given by its owner, plus a fixed
overhead: cheap, and proportional to what grows. Pure: no clock, no I/O.

Every cache registers itself by name, so `/metrics` can report its size
(`shape_gateway_cache_bytes{cache}`) without knowing where it lives.
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from collections.abc import Hashable, Mapping
from typing import Any, Final, Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

ENTRY_OVERHEAD: Final = 200  # bytes: the entry's own objects (dict slot, tuple, small ints)

_CACHES: weakref.WeakSet[BoundedCache[Any, Any]] = weakref.WeakSet()


class BoundedCache(Generic[K, V]):
    def __init__(self, name: str, max_entries: int, max_bytes: int) -> None:
        self.name = name
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.bytes = 0
        self._entries: OrderedDict[K, tuple[V, int]] = OrderedDict()
        _CACHES.add(self)

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: K) -> V | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        self._entries.move_to_end(key)
        return entry[0]

    def put(self, key: K, value: V, size: int) -> None:
        """Keep `value` under `key`; `size` estimates the bytes both hold."""
        size += ENTRY_OVERHEAD
        if size > self.max_bytes // 16:
            return  # too large to keep: computed again when asked
        old = self._entries.pop(key, None)
        if old is not None:
            self.bytes -= old[1]
        self._entries[key] = (value, size)
        self.bytes += size
        while self.bytes > self.max_bytes or len(self._entries) > self.max_entries:
            _, (_, dropped) = self._entries.popitem(last=False)
            self.bytes -= dropped

    def delete(self, key: K) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self.bytes -= entry[1]

    def clear(self) -> None:
        self._entries.clear()
        self.bytes = 0


def text_size(value: object) -> int:
    """Bytes of the text in `value`, through tuples, lists, sets and mappings: the part of an
    entry that grows with what clients send."""
    if isinstance(value, str | bytes):
        return len(value)
    if isinstance(value, tuple | list | frozenset):
        return sum(text_size(item) for item in value)
    if isinstance(value, Mapping):
        return sum(text_size(key) + text_size(item) for key, item in value.items())
    return 0


def cache_sizes() -> dict[str, int]:
    """Bytes held by the live caches, by name (caches of one name summed)."""
    sizes: dict[str, int] = {}
    for cache in list(_CACHES):
        sizes[cache.name] = sizes.get(cache.name, 0) + cache.bytes
    return sizes
