"""Redis clients, one per job (limits, audit), for whichever Redis REDIS_URL names: one server,
the master a majority of the sentinels names (sentinel.py), or a Redis Cluster. (The
revocation stream has connections of its own to the one node that holds it: node.py.)

Connections are few and fixed: a client holds at most `connections` of them (per node, on a
Cluster), and the gateway's own code never runs more commands at once than that (the limits and
audit clients send everything through `batch.Batches`). A single server's and a Sentinel
master's pools also wait, rather than refuse, if that ever failed; a Cluster's slot-map reads
use the nodes' own pools, so they count within the bound too. Each job keeps at most one
connection to each sentinel. Each connection is named `shape-gateway:<host>-<pid>:<job>`
(`CLIENT LIST` shows who holds what). `aclose()` releases every connection, the sentinels' too.

These clients let redis-py resend a command whose connection failed (up to 10 times, with a
backoff): through a failover, a rate-limit check waits for the new master rather than failing
open. The revocation stream's connections and the sentinels' never resend (`NO_RETRY`): a
publish whose answer was lost may have been applied, and only the publisher can say so.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import socket
from dataclasses import dataclass
from typing import Any, Final, TypeAlias

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import BlockingConnectionPool
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import SentinelConnectionPool
from redis.backoff import NoBackoff
from redis.exceptions import RedisClusterException, RedisError

from gateway.outages import Outages
from gateway.redis.sentinel import SENTINEL_TIMEOUT, SentinelQuorum
from gateway.redis.url import RedisAddress, Topology, parse_redis_url

DEFAULT_CONNECTIONS: Final = 4
POOL_WAIT: Final = 2.0  # seconds a command may wait for a free connection, then it fails
CONNECT_TIMEOUT: Final = 2.0
NO_RETRY: Final = Retry(NoBackoff(), 0)  # one attempt, then the error: see the docstring
Commands: TypeAlias = aioredis.Redis | RedisCluster
# What an unreachable or failing Redis raises: redis-py's errors (a Cluster none of whose nodes
# answers raises RedisClusterException, which is not a RedisError) and socket errors.
REDIS_ERRORS: Final = (RedisError, RedisClusterException, OSError)
_apps = itertools.count()
REDIS_JOBS: Final = ("revocations", "limits", "audit")  # a serving replica's clients
HINT: Final = (
    "that Redis answers there, and that REDIS_URL's user, password and TLS options are the "
    "server's (docs/redis.md)"
)


class BlockingSentinelPool(SentinelConnectionPool, BlockingConnectionPool):
    """Sentinel's pool (connect to whichever server is master now) with the blocking pool's
    wait for a free connection instead of "Too many connections"."""


def report(
    outages: Outages | None, job: str, address: RedisAddress, error: BaseException | None
) -> None:
    """The outcome of one attempt at `job`'s work (None: it worked), to `outages`."""
    if outages is None:
        return
    if error is None:
        outages.succeeded("redis", job)
        return
    reason = str(error) or type(error).__name__
    outages.failed("redis", job, reason, target=address.target, hint=HINT)


def client_name(replica: str, job: str) -> str:
    """What a job's connections are called (CLIENT SETNAME)."""
    return f"shape-gateway:{replica}:{job}"


def replica_name() -> str:
    """This process among the replicas: `<host>-<pid>`, plus a counter when one process runs
    several apps (tests)."""
    n = next(_apps)
    base = f"{socket.gethostname()}-{os.getpid()}"
    return base if n == 0 else f"{base}-{n}"


@dataclass(eq=False)
class RedisClient:
    redis: Commands
    name: str  # the connections' CLIENT SETNAME
    address: RedisAddress
    connections: int  # at most this many at once (per node on a Cluster)
    sentinels: SentinelQuorum | None = None
    job: str = ""  # revocations, limits, audit, cli
    outages: Outages | None = None  # where this job's failures and recoveries are reported

    def report(self, error: BaseException | None) -> None:
        """The outcome of one attempt at this job's work (None: it worked)."""
        report(self.outages, self.job, self.address, error)

    async def warm(self) -> None:
        """Open this job's connections now, at start-up: opened lazily, they are opened during
        the first burst of requests, when a busy event loop can take longer than the connect
        timeout to finish the handshake, and the job then fails open (rate limits) for want of
        a connection. A Cluster's are opened per node as its slots are used."""
        if isinstance(self.redis, RedisCluster):
            return
        pings = [self.redis.ping() for _ in range(self.connections)]  # each holds its own
        await asyncio.gather(*pings, return_exceptions=True)  # failures are reported on use

    async def aclose(self) -> None:
        await self.redis.aclose()
        if self.sentinels is not None:
            await self.sentinels.aclose()


def tls_kwargs(address: RedisAddress) -> dict[str, Any]:
    if not address.tls:
        return {}
    return {"ssl": True, **address.tls_options}


def sentinel_quorum(address: RedisAddress, name: str) -> SentinelQuorum:
    """The sentinels of `address`, one connection each, named `<name>:sentinel`."""
    assert address.master is not None

    def connect(host: str, port: int) -> aioredis.Redis:
        return aioredis.Redis(
            host=host, port=port, single_connection_client=True,
            socket_timeout=SENTINEL_TIMEOUT, socket_connect_timeout=CONNECT_TIMEOUT,
            client_name=f"{name}:sentinel", username=address.sentinel_username,
            password=address.sentinel_password, decode_responses=True, retry=NO_RETRY,
            **tls_kwargs(address),
        )  # fmt: skip

    return SentinelQuorum(address.hosts, address.master, connect)


def connect_redis(
    url: str,
    job: str,
    *,
    replica: str,
    connections: int = DEFAULT_CONNECTIONS,
    socket_timeout: float = 2.0,
    decode_responses: bool = False,
    outages: Outages | None = None,
) -> RedisClient:
    """A client for `job` on the Redis `url` names; no connection is opened until used. Its
    failures and recoveries go to `outages` (the log, /admin/status)."""
    address = parse_redis_url(url)
    name = client_name(replica, job)
    common: dict[str, Any] = {
        "socket_timeout": socket_timeout,
        "socket_connect_timeout": CONNECT_TIMEOUT,
        "decode_responses": decode_responses,
        "client_name": name,
    }
    if address.topology is Topology.CLUSTER:
        cluster = RedisCluster(
            startup_nodes=[ClusterNode(host, port) for host, port in address.hosts],
            username=address.username,
            password=address.password,
            max_connections=connections,
            **tls_kwargs(address),
            **common,
        )
        # redis-py keeps the nodes it was given apart from the nodes it discovers, each with a
        # pool of its own: the slot-map reads went through the first, so a node held one
        # connection more than `connections`. One set of nodes keeps the bound per node.
        cluster.nodes_manager.nodes_cache = cluster.nodes_manager.startup_nodes
        return RedisClient(cluster, name, address, connections, None, job, outages)
    if address.topology is Topology.SENTINEL:
        assert address.master is not None
        sentinels = sentinel_quorum(address, name)
        # redis-py leaves the pool's constructor untyped
        sentinel_pool = BlockingSentinelPool(  # type: ignore[no-untyped-call,unused-ignore]
            address.master,
            sentinels,
            max_connections=connections,
            timeout=POOL_WAIT,
            db=address.db,
            username=address.username,
            password=address.password,
            **tls_kwargs(address),
            **common,
        )
        master = aioredis.Redis.from_pool(sentinel_pool)
        return RedisClient(master, name, address, connections, sentinels, job, outages)
    pool = BlockingConnectionPool.from_url(
        url, max_connections=connections, timeout=POOL_WAIT, **common
    )
    # from_pool: the client owns the pool, so aclose() disconnects its connections too.
    return RedisClient(
        aioredis.Redis.from_pool(pool), name, address, connections, None, job, outages
    )
