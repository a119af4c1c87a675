"""The Redis master that holds one key, for work that must go to it and nowhere else: the
revocation stream's follower reads there and its publisher writes there, each on a connection
of its own.

- one server: the URL's;
- Sentinel: the master a majority of the sentinels names (sentinel.py), confirmed again
  before a write is acknowledged, and watched while it is read (every `WATCH_SECONDS`), so a
  reader leaves a deposed master as soon as the failover is decided, not when the deposed one
  finally stops answering;
- Cluster: the master owning the key's slot, read from `CLUSTER SLOTS` (asking the last owner
  first, then the other nodes) and moved by `MOVED` answers. The other masters are never
  contacted, so one of them failing delays nothing here (redis-py's cluster client, asked to
  read the stream, stalled on the dead node's reconnections).

Connections come without redis-py's resends (client.py): a command that timed out may have
run, and only the caller knows whether sending it again is safe.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Final, NoReturn

import redis.asyncio as aioredis
from redis.crc import key_slot
from redis.exceptions import AskError
from redis.exceptions import ConnectionError as RedisConnectionError

from gateway.outages import Outages
from gateway.redis.client import (
    CONNECT_TIMEOUT,
    NO_RETRY,
    REDIS_ERRORS,
    report,
    sentinel_quorum,
    tls_kwargs,
)
from gateway.redis.sentinel import MasterUnconfirmedError, SentinelQuorum
from gateway.redis.url import Topology, parse_redis_url

WATCH_SECONDS: Final = 0.25  # how often a reader asks the sentinels whether its master still is
LOOKUP_TIMEOUT: Final = 1.0  # a Cluster node's answer to CLUSTER SLOTS


@dataclass(frozen=True, slots=True)
class Node:
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


SERVER: Final = Node("", 0)  # the one server of a redis:// or unix:// URL


class NodeChangedError(RedisConnectionError):
    """The node in use is no longer the one holding the key (a failover decided elsewhere)."""


class KeyNode:
    """Where `key` lives, for one job of one replica (connections named `name`)."""

    def __init__(
        self, url: str, key: str, name: str, job: str = "", outages: Outages | None = None
    ) -> None:
        self.address = parse_redis_url(url)
        self.key = key
        self.name = name
        self.job = job  # revocations, cli
        self.outages = outages  # where this job's failures and recoveries are reported
        self.sentinels: SentinelQuorum | None = None
        if self.address.topology is Topology.SENTINEL:
            self.sentinels = sentinel_quorum(self.address, name)
        self._owner: Node | None = None  # Cluster: the slot's master, as last learned
        self._known = [Node(host, port) for host, port in self.address.hosts]

    def report(self, error: BaseException | None) -> None:
        """The outcome of one attempt at this job's work (None: it worked)."""
        report(self.outages, self.job, self.address, error)

    @property
    def topology(self) -> Topology:
        return self.address.topology

    async def locate(self) -> Node:
        """The node to use now; raises a RedisError (ConnectionError) when none can be told."""
        if self.sentinels is not None:
            return Node(*await self.sentinels.master())
        if self.topology is Topology.CLUSTER:
            if self._owner is None:
                self._owner = await self._lookup()
            return self._owner
        return SERVER  # one server: the URL says it all

    async def confirm(self, node: Node, since: float) -> bool:
        """Whether `node` is still the master holding the key, by answers asked no earlier than
        `since` (time.monotonic()). Sentinel: a majority names it (raises MasterUnconfirmedError
        when no majority answers). A Cluster node that took a write owned the slot (else it
        answers MOVED); one server is what it is."""
        if self.sentinels is None:
            return True
        return Node(*await self.sentinels.master(since)) == node

    async def watch(self, node: Node, strict: bool = True) -> NoReturn:
        """Return never while `node` stays the master; raise NodeChangedError as soon as the
        sentinels' majority names another, and (`strict`) MasterUnconfirmedError when no
        majority answers."""
        sentinels = self.sentinels
        if sentinels is None:  # nothing else names the master
            await asyncio.Event().wait()
            raise AssertionError("unreachable: nothing sets the event")
        while True:
            await asyncio.sleep(WATCH_SECONDS)
            try:
                named = Node(*await sentinels.master())
            except MasterUnconfirmedError:
                if strict:
                    raise
                continue
            if named != node:
                raise NodeChangedError(f"Sentinel now names {named} as the master, not {node}")

    def redirected(self, error: AskError) -> None:
        """A Cluster node answered MOVED: the slot's master is the one it names."""
        self._owner = Node(error.host, int(error.port))
        self._remember(self._owner)

    def forget(self) -> None:
        """The node in use failed: look the slot's master up again next time."""
        self._owner = None

    def connect(self, node: Node, socket_timeout: float) -> aioredis.Redis:
        """A client of one connection to `node`, opened by its first command (or
        `initialize()`), without resends."""
        common: dict[str, Any] = {
            "single_connection_client": True,
            "socket_timeout": socket_timeout,
            "socket_connect_timeout": CONNECT_TIMEOUT,
            "decode_responses": True,
            "client_name": self.name,
            "retry": NO_RETRY,
        }
        if self.topology is Topology.SINGLE:
            return aioredis.Redis.from_url(self.address.url, **common)
        return aioredis.Redis(
            host=node.host, port=node.port, db=self.address.db, username=self.address.username,
            password=self.address.password, **tls_kwargs(self.address), **common,
        )  # fmt: skip

    async def _lookup(self) -> Node:
        """The master of the key's slot, from the first node that answers CLUSTER SLOTS."""
        slot = key_slot(self.key.encode())
        failures = []
        for candidate in list(self._known):
            client = self.connect(candidate, LOOKUP_TIMEOUT)
            try:
                ranges = await client.cluster("SLOTS")
            except REDIS_ERRORS as error:
                failures.append(f"{candidate}: {error}")
                continue
            finally:
                await client.aclose()
            owner = None
            for start, end, master, *replicas in ranges:
                for host, port, *_ in (master, *replicas):
                    self._remember(Node(host or candidate.host, int(port)))
                if int(start) <= slot <= int(end):
                    owner = Node(master[0] or candidate.host, int(master[1]))
            if owner is not None:
                self._remember(owner, first=True)
                return owner
            failures.append(f"{candidate}: no master serves slot {slot}")
        raise RedisConnectionError(
            "no node of the Redis Cluster named the master of the revocation stream's slot ("
            + "; ".join(failures)
            + ")"
        )

    def _remember(self, node: Node, first: bool = False) -> None:
        """Nodes to ask for the slot map, the last known owner first."""
        if node in self._known:
            if not first:
                return
            self._known.remove(node)
        self._known.insert(0 if first else len(self._known), node)

    async def aclose(self) -> None:
        if self.sentinels is not None:
            await self.sentinels.aclose()
