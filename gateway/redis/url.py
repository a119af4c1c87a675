"""REDIS_URL, read into what a Redis client needs: one server, a Sentinel-watched master, or a
Redis Cluster (pure: no I/O but checking that named certificate files exist).

The forms, each with `rediss` for TLS (certificates checked against the system's CAs, or
`ssl_ca_certs`):

    redis://[user:password@]host[:6379][/db]                 one server (also unix:///path.sock)
    redis+sentinel://[user:password@]host[:26379],host.../master[/db]   the master Sentinel names
    redis+cluster://[user:password@]host[:6379],host...      any nodes of a Redis Cluster

Query options: `ssl_ca_certs`, `ssl_certfile`, `ssl_keyfile` (TLS forms; file paths) and
`sentinel_username`, `sentinel_password` (Sentinel forms, when the sentinels require their own
credentials; otherwise none are sent to them). The user and password in the URL are for the
data nodes. Every problem names what was wrong and the form expected.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final
from urllib.parse import parse_qsl, unquote

REDIS_PORT: Final = 6379
SENTINEL_PORT: Final = 26379
TLS_OPTIONS: Final = ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile")
SENTINEL_OPTIONS: Final = ("sentinel_username", "sentinel_password")
FORMS: Final = (
    "redis://[user:password@]host[:port][/db]",
    "rediss://... (TLS)",
    "unix:///path/to/redis.sock[?db=N]",
    "redis+sentinel://[user:password@]host:26379,host:26379/master-name[/db]",
    "redis+cluster://[user:password@]host:6379,host:6379",
)


class Topology(StrEnum):
    SINGLE = "single"
    SENTINEL = "sentinel"
    CLUSTER = "cluster"


class RedisUrlError(ValueError):
    """REDIS_URL does not name a Redis we can reach; the message says what to write."""


@dataclass(frozen=True, slots=True)
class RedisAddress:
    topology: Topology
    url: str = field(repr=False)  # as given: a single server's URL goes to redis-py as is
    hosts: tuple[tuple[str, int], ...] = ()  # the server, the sentinels or cluster nodes
    tls: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    db: int = 0
    master: str | None = None  # the name Sentinel monitors
    tls_options: Mapping[str, str] = field(default_factory=dict)
    sentinel_username: str | None = None
    sentinel_password: str | None = field(default=None, repr=False)

    @property
    def target(self) -> str:
        """Where this Redis is, for people: `host:port`s or the socket, never credentials."""
        if self.topology is Topology.SINGLE and not self.hosts:
            return "unix://" + self.url.partition("://")[2].partition("?")[0]
        hosts = ",".join(f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in self.hosts)
        tls = " (TLS)" if self.tls else ""
        if self.topology is Topology.SENTINEL:
            return f"sentinels {hosts}, master {self.master}{tls}"
        if self.topology is Topology.CLUSTER:
            return f"cluster nodes {hosts}{tls}"
        return hosts + tls

    @property
    def secrets(self) -> tuple[str, ...]:
        """Values to mask in logs."""
        return tuple(s for s in (self.password, self.sentinel_password) if s)


_SCHEMES: Final = {
    "redis": (Topology.SINGLE, False),
    "rediss": (Topology.SINGLE, True),
    "unix": (Topology.SINGLE, False),
    "redis+sentinel": (Topology.SENTINEL, False),
    "rediss+sentinel": (Topology.SENTINEL, True),
    "redis+cluster": (Topology.CLUSTER, False),
    "rediss+cluster": (Topology.CLUSTER, True),
}


def _host_port(text: str, default_port: int) -> tuple[str, int]:
    if text.startswith("["):  # [IPv6]:port
        host, _, rest = text[1:].partition("]")
        port_text = rest.removeprefix(":")
    else:
        host, _, port_text = text.rpartition(":") if ":" in text else (text, "", "")
    if not host:
        raise RedisUrlError(f"{text!r} is not host[:port]")
    if not port_text:
        return host, default_port
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise RedisUrlError(f"{text!r}: the port must be a number from 1 to 65535")
    return host, int(port_text)


def _db(text: str) -> int:
    if not text.isdigit():
        raise RedisUrlError(f"the database must be a number, not {text!r}")
    return int(text)


def _options(query: str, topology: Topology, tls: bool) -> dict[str, str]:
    allowed = (TLS_OPTIONS if tls else ()) + (
        SENTINEL_OPTIONS if topology is Topology.SENTINEL else ()
    )
    options = dict(parse_qsl(query, keep_blank_values=True))
    if topology is Topology.SINGLE and "db" in options:
        allowed += ("db",)
    for name, value in options.items():
        if name not in allowed:
            accepted = ", ".join(allowed) or "none for this form"
            raise RedisUrlError(f"unknown option {name!r} (accepted: {accepted})")
        if name.startswith("ssl_") and not os.path.isfile(value):
            raise RedisUrlError(f"{name}={value!r}: no such file")
    return options


def parse_redis_url(url: str) -> RedisAddress:
    """The address `url` names; raises RedisUrlError saying what is wrong."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in _SCHEMES:
        raise RedisUrlError(
            f"must start with redis://, rediss://, unix://, redis+sentinel:// or "
            f"redis+cluster:// (or rediss+ for TLS); forms: {'; '.join(FORMS)}"
        )
    topology, tls = _SCHEMES[scheme]
    rest, _, query = rest.partition("?")
    if "#" in query or "#" in rest:
        raise RedisUrlError("a URL fragment (#...) is not allowed")
    options = _options(query, topology, tls)
    if scheme == "unix":
        if not rest.startswith("/"):
            raise RedisUrlError("unix:// needs an absolute socket path: unix:///run/redis.sock")
        return RedisAddress(topology, url, db=_db(options.get("db", "0")))
    netloc, _, path = rest.partition("/")
    userinfo, at, hostlist = netloc.rpartition("@")
    if not at:
        userinfo, hostlist = "", netloc
    user_text, colon, password_text = userinfo.partition(":")
    username = (unquote(user_text) or None) if colon else None
    # redis://secret@host is a password alone, as redis-py reads it.
    password = unquote(password_text if colon else user_text) or None
    parts = [p for p in path.split("/") if p]
    tls_options = {k: v for k, v in options.items() if k in TLS_OPTIONS}
    if topology is Topology.SINGLE:
        if "," in hostlist:
            raise RedisUrlError(
                "several hosts need redis+sentinel:// (a master watched by Sentinel) or "
                "redis+cluster:// (a Redis Cluster)"
            )
        host = _host_port(hostlist, REDIS_PORT)
        if len(parts) > 1:
            raise RedisUrlError("the path is the database number only: redis://host:6379/0")
        db = _db(parts[0]) if parts else _db(options.get("db", "0"))
        return RedisAddress(
            topology, url, (host,), tls=tls, username=username, password=password, db=db,
            tls_options=tls_options,
        )  # fmt: skip
    default_port = SENTINEL_PORT if topology is Topology.SENTINEL else REDIS_PORT
    hosts = tuple(_host_port(h.strip(), default_port) for h in hostlist.split(",") if h.strip())
    if not hosts:
        raise RedisUrlError(f"{scheme}:// needs at least one host:port")
    if topology is Topology.CLUSTER:
        if parts not in ([], ["0"]):
            raise RedisUrlError("Redis Cluster has only database 0: drop the path")
        return RedisAddress(topology, url, hosts, tls, username, password, tls_options=tls_options)
    if not parts or len(parts) > 2:
        raise RedisUrlError(
            "name the master Sentinel monitors after the hosts: "
            "redis+sentinel://host1:26379,host2:26379/mymaster[/db]"
        )
    return RedisAddress(
        topology,
        url,
        hosts,
        tls,
        username,
        password,
        db=_db(parts[1]) if len(parts) == 2 else 0,
        master=unquote(parts[0]),
        tls_options=tls_options,
        sentinel_username=options.get("sentinel_username"),
        sentinel_password=options.get("sentinel_password"),
    )
