"""REDIS_URL's forms, read into what each client needs, and every mistake named."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gateway.redis.url import RedisUrlError, Topology, parse_redis_url


def test_one_server_keeps_its_url_credentials_and_database() -> None:
    address = parse_redis_url("rediss://gateway:p%40ss@redis.internal:6380/2")
    assert (address.topology, address.tls, address.db) == (Topology.SINGLE, True, 2)
    assert (address.username, address.password) == ("gateway", "p@ss")
    assert address.secrets == ("p@ss",)
    assert parse_redis_url("redis://:secret@localhost").password == "secret"
    assert parse_redis_url("redis://secret@localhost").password == "secret"  # as redis-py reads it
    assert parse_redis_url("unix:///run/redis.sock?db=3").db == 3


def test_sentinel_form_names_the_sentinels_and_the_master() -> None:
    address = parse_redis_url(
        "redis+sentinel://app:pw@s1:26379,s2,[::1]:26380/mymaster/1?sentinel_password=sp"
    )
    assert address.topology is Topology.SENTINEL
    assert address.hosts == (("s1", 26379), ("s2", 26379), ("::1", 26380))
    assert (address.master, address.db, address.username, address.password) == (
        "mymaster", 1, "app", "pw"
    )  # fmt: skip
    assert address.sentinel_password == "sp"
    assert set(address.secrets) == {"pw", "sp"}


def test_cluster_form_lists_seed_nodes(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("a CA")
    address = parse_redis_url(f"rediss+cluster://n1:7000,n2:7001,n3?ssl_ca_certs={ca}")
    assert address.topology is Topology.CLUSTER
    assert address.hosts == (("n1", 7000), ("n2", 7001), ("n3", 6379))
    assert address.tls_options == {"ssl_ca_certs": str(ca)}


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("localhost:6379", "must start with redis://"),
        ("http://redis:6379", "must start with redis://"),
        ("redis://a:6379,b:6379", "several hosts need"),
        ("redis+sentinel://s1:26379,s2:26379", "name the master Sentinel monitors"),
        ("redis+sentinel://s1/m/x", "the database must be a number"),
        ("redis+cluster://n1:7000/3", "only database 0"),
        ("redis+cluster://", "at least one host"),
        ("redis://host:99999", "port must be a number"),
        ("redis://host/0?ssl_ca_certs=/ca.pem", "unknown option 'ssl_ca_certs'"),
        ("rediss://host/0?ssl_ca_certs=/no/such/ca.pem", "no such file"),
        ("redis+cluster://n1?sentinel_password=x", "unknown option 'sentinel_password'"),
        ("unix://run/redis.sock", "absolute socket path"),
    ],
)  # fmt: skip
def test_each_mistake_is_named_with_the_form_expected(url: str, says: str) -> None:
    with pytest.raises(RedisUrlError, match=re.escape(says)):
        parse_redis_url(url)
