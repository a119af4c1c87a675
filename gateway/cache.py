"""A least-recently-used cache bounded in bytes as well as in entries.

The hot path caches what a client repeats on every poll (its verified token, identity, plan,
checked where, encoded query pairs). Bounded by entries alone, a client that sends large
distinct queries (30 KB each) grew a replica by hundreds of MB at the caps; so each cache also
has a byte budget, and an entry larger than `max_bytes // 16` is not kept at all (computed
again when asked, never flushing the cache of everyone else). Sizes are estimates from the text
an entry holds, given by its owner, plus a fixed overhead: cheap, and proportional to what
grows. Pure: no clock, no I/O.

Every cache registers itself by name, so `/metrics` can report their sizes
(`shape_gateway_cache_bytes{cache}`) without knowing where each lives.
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable
from functools import update_wrapper
from typing import Any, Final, Generic, ParamSpec, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
P = ParamSpec("P")
R = TypeVar("R")

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


def text_size(values: Iterable[object]) -> int:
    """Bytes of the text among `values` (strings, and strings in tuples, one level deep)."""
    total = 0
    for value in values:
        if isinstance(value, str | bytes):
            total += len(value)
        elif isinstance(value, tuple):
            total += sum(len(v) for v in value if isinstance(v, str | bytes))
    return total


class CachedFunction(Generic[P, R]):
    """A pure function of hashable arguments with its results kept in a `BoundedCache` (like
    `functools.lru_cache`, `cache_clear()` included): an entry's size is the text of its
    arguments plus `size(result)`. Exceptions are not kept."""

    def __init__(
        self, function: Callable[P, R], cache: BoundedCache[Hashable, R], size: Callable[[R], int]
    ) -> None:
        self.function = function
        self.cache = cache
        self.size = size
        update_wrapper(self, function)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        key = (args, tuple(sorted(kwargs.items()))) if kwargs else args
        found = self.cache.get(key)
        if found is not None:
            return found
        result = self.function(*args, **kwargs)
        held = text_size(args) + text_size(kwargs.values()) + self.size(result)
        self.cache.put(key, result, held)
        return result

    def cache_clear(self) -> None:
        self.cache.clear()


def cached(
    name: str, max_entries: int, max_bytes: int, size: Callable[[Any], int] = lambda _: 0
) -> Callable[[Callable[P, R]], CachedFunction[P, R]]:
    """Decorate a pure function as a `CachedFunction` bounded in entries and bytes."""

    def decorate(function: Callable[P, R]) -> CachedFunction[P, R]:
        return CachedFunction(function, BoundedCache(name, max_entries, max_bytes), size)

    return decorate


def cache_sizes() -> dict[str, int]:
    """Bytes held by the live caches, by name (caches of one name summed)."""
    sizes: dict[str, int] = {}
    for cache in list(_CACHES):
        sizes[cache.name] = sizes.get(cache.name, 0) + cache.bytes
    return sizes
