"""Redis clients, one per job (revocations, limits, audit), for whichever Redis REDIS_URL names:
one server, a master found through Sentinel, or a Redis Cluster.

Connections are few and fixed: a client holds at most `connections` of them (per node, on a
Cluster), and the gateway's own code never runs more commands at once than that (the limits and
audit clients send everything through `redis_batch.Batches`; the revocation client runs its
follower and one writer). A single server's and a Sentinel master's pools also wait, rather
than refuse, if that ever failed. Each connection is named `shape-gateway:<host>-<pid>:<job>`
(`CLIENT LIST` shows who holds what). `aclose()` releases every connection, the sentinels' too.
"""

from __future__ import annotations

import itertools
import os
import socket
from dataclasses import dataclass
from typing import Any, Final, TypeAlias

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import BlockingConnectionPool
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.exceptions import RedisClusterException, RedisError

from gateway.outages import Outages
from gateway.redis_url import RedisAddress, Topology, parse_redis_url

DEFAULT_CONNECTIONS: Final = 4
POOL_WAIT: Final = 2.0  # seconds a command may wait for a free connection, then it fails
CONNECT_TIMEOUT: Final = 2.0
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
    sentinel: Sentinel | None = None
    job: str = ""  # revocations, limits, audit, cli
    outages: Outages | None = None  # where this job's failures and recoveries are reported

    def report(self, error: BaseException | None) -> None:
        """The outcome of one attempt at this job's work (None: it worked)."""
        if self.outages is None:
            return
        if error is None:
            self.outages.succeeded("redis", self.job)
            return
        reason = str(error) or type(error).__name__
        self.outages.failed("redis", self.job, reason, target=self.address.target, hint=HINT)

    async def node_of(self, key: str) -> ClusterNode | None:
        """On a Cluster, the primary holding `key` (for commands that must go where it is)."""
        if isinstance(self.redis, RedisCluster):
            await self.redis.initialize()  # learns the slots on first use; then returns at once
            return self.redis.get_node_from_key(key)
        return None

    async def aclose(self) -> None:
        await self.redis.aclose()
        if self.sentinel is not None:
            await self.sentinel.aclose()


def _tls_kwargs(address: RedisAddress) -> dict[str, Any]:
    if not address.tls:
        return {}
    return {"ssl": True, **address.tls_options}


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
    name = f"shape-gateway:{replica}:{job}"
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
            **_tls_kwargs(address),
            **common,
        )
        return RedisClient(cluster, name, address, connections, None, job, outages)
    if address.topology is Topology.SENTINEL:
        assert address.master is not None
        sentinel_kwargs: dict[str, Any] = {
            "socket_timeout": socket_timeout,
            "socket_connect_timeout": CONNECT_TIMEOUT,
            "client_name": f"{name}:sentinel",
            "username": address.sentinel_username,
            "password": address.sentinel_password,
            **_tls_kwargs(address),
        }
        # redis-py before 8 leaves Sentinel's constructor untyped (8.x types it)
        sentinel = Sentinel(address.hosts, sentinel_kwargs=sentinel_kwargs)  # type: ignore[no-untyped-call,unused-ignore]
        master = sentinel.master_for(
            address.master,
            connection_pool_class=BlockingSentinelPool,
            max_connections=connections,
            timeout=POOL_WAIT,
            db=address.db,
            username=address.username,
            password=address.password,
            **_tls_kwargs(address),
            **common,
        )
        return RedisClient(master, name, address, connections, sentinel, job, outages)
    pool = BlockingConnectionPool.from_url(
        url, max_connections=connections, timeout=POOL_WAIT, **common
    )
    # from_pool: the client owns the pool, so aclose() disconnects its connections too.
    return RedisClient(
        aioredis.Redis.from_pool(pool), name, address, connections, None, job, outages
    )
