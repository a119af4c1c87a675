"""Redis servers of a test's own, as deployed: a master with a replica and sentinels, a
3-master Cluster, a TLS server with an ACL user. Real `redis-server` processes on free ports in
temporary directories, so a test can kill, pause or reconfigure them without touching the
shared Redis. Each is stopped at the end of the test that started it.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pytest
import redis
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.services import free_port

MASTER_NAME = "gw-master"


def free_cluster_port() -> int:
    """A free port at most 55535 whose +10000 (the cluster bus) is free too."""
    for _ in range(100):
        port = free_port()
        if port > 55535:
            port = port % 30000 + 20000
        try:
            for candidate in (port, port + 10000):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", candidate))
        except OSError:
            continue
        return port
    raise AssertionError("no free port pair for a cluster node")


def redis_server_binary() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        message = "redis-server is not on PATH (apt-get install redis-server)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return binary


@dataclass
class RedisProcess:
    """One redis-server (or sentinel): `argv` is everything after the binary."""

    directory: Path
    port: int
    argv: list[str]
    process: subprocess.Popen[bytes] | None = None
    client_kwargs: dict[str, object] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisProcess:
        self.directory.mkdir(parents=True, exist_ok=True)
        with (self.directory / "redis.log").open("ab") as log:  # the child keeps its own
            self.process = subprocess.Popen(
                [redis_server_binary(), *self.argv], cwd=self.directory, stdout=log, stderr=log
            )
        deadline = time.monotonic() + 10
        while not self.answers():
            assert self.process.poll() is None, self.log_tail()
            assert time.monotonic() < deadline, f"redis on {self.port} did not start"
            time.sleep(0.02)
        return self

    def client(self) -> redis.Redis:
        return redis.Redis(
            host="127.0.0.1", port=self.port, decode_responses=True, socket_timeout=5,
            **self.client_kwargs,  # type: ignore[arg-type]
        )  # fmt: skip

    def answers(self) -> bool:
        client = self.client()
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def kill(self) -> None:
        """SIGKILL: the process dies with whatever it had not replicated."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def pause(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def log_tail(self) -> str:
        path = self.directory / "redis.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""


def _data_node(directory: Path, *extra: str, port: int | None = None) -> RedisProcess:
    port = port or free_port()
    # A replica's first sync waits repl-diskless-sync-delay (5 s) for others to join: none will.
    argv = ["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", str(directory), "--repl-diskless-sync-delay", "0", *extra]  # fmt: skip
    return RedisProcess(directory, port, argv)


@dataclass
class Replicated:
    """A master, its replica and three sentinels watching them."""

    master: RedisProcess
    replica: RedisProcess
    sentinels: list[RedisProcess]

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://{hosts}/{MASTER_NAME}"

    def master_port(self) -> int:
        """The port the sentinels name as master now."""
        client = self.sentinels[0].client()
        try:
            host_port = client.sentinel_get_master_addr_by_name(MASTER_NAME)
            return int(cast(tuple[str, int], host_port)[1])
        finally:
            client.close()


def wait_for(condition: object, what: str, within: float = 10.0) -> None:
    assert callable(condition)
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, f"{what} within {within} s"
        time.sleep(0.05)


def start_replicated(servers: RedisServers) -> Replicated:
    directory = servers.directory
    master = servers.start(_data_node(directory / "master"))
    replica = servers.start(
        _data_node(directory / "replica", "--replicaof", "127.0.0.1", str(master.port))
    )

    def linked() -> bool:
        client = replica.client()
        try:
            return client.info("replication").get("master_link_status") == "up"
        finally:
            client.close()

    wait_for(linked, "the replica syncs")
    sentinels = []
    # Each sentinel is told the others and the replica up front (discovering them takes
    # Sentinel's hello and INFO periods, 2 s and 10 s), so the group can fail over at once.
    ports = [free_port() for _ in range(3)]
    ids = [f"{n + 1:040x}" for n in range(3)]
    for n, port in enumerate(ports):
        home = directory / f"sentinel-{n}"
        home.mkdir(parents=True)
        known = "".join(
            f"sentinel known-sentinel {MASTER_NAME} 127.0.0.1 {other} {ids[m]}\n"
            for m, other in enumerate(ports) if m != n
        )  # fmt: skip
        (home / "sentinel.conf").write_text(
            f"port {port}\nbind 127.0.0.1\ndir {home}\nsentinel myid {ids[n]}\n"
            f"sentinel monitor {MASTER_NAME} 127.0.0.1 {master.port} 2\n"
            f"sentinel down-after-milliseconds {MASTER_NAME} 1000\n"
            f"sentinel failover-timeout {MASTER_NAME} 4000\n"
            f"sentinel known-replica {MASTER_NAME} 127.0.0.1 {replica.port}\n{known}"
        )
        sentinels.append(RedisProcess(home, port, [str(home / "sentinel.conf"), "--sentinel"]))
    for sentinel in sentinels:
        servers.start(sentinel)
    group = Replicated(master, replica, sentinels)

    def watched() -> bool:
        client = sentinels[0].client()
        try:
            state = cast(dict[str, Any], client.sentinel_master(MASTER_NAME))
            return int(state["num-slaves"]) == 1 and int(state["num-other-sentinels"]) == 2
        finally:
            client.close()

    wait_for(watched, "the sentinels see the replica and each other")
    return group


@dataclass
class Cluster:
    nodes: list[RedisProcess]

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)

    def add_gateway_user(self, user: str, password: str, prefix: str) -> None:
        """The gateway's ACL on every node, plus reading the slot map (CLUSTER SLOTS)."""
        for node in self.nodes:
            client = node.client()
            try:
                client.acl_setuser(user, enabled=True, passwords=[f"+{password}"],
                                   keys=[f"{prefix}:*"], commands=[*GATEWAY_ACL_COMMANDS,
                                                                   "+cluster|slots"])  # fmt: skip
            finally:
                client.close()


def start_cluster(servers: RedisServers, masters: int = 3, replicas: int = 0) -> Cluster:
    """`masters` primaries splitting the slots, each with `replicas` replicas."""
    nodes = [
        servers.start(_data_node(
            servers.directory / f"node-{n}", "--cluster-enabled", "yes",
            "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000",
            port=free_cluster_port(),
        ))
        for n in range(masters * (1 + replicas))
    ]  # fmt: skip
    cli = shutil.which("redis-cli")
    assert cli is not None, "redis-cli comes with redis-server"
    subprocess.run(
        [cli, "--cluster", "create", *(f"127.0.0.1:{n.port}" for n in nodes),
         "--cluster-replicas", str(replicas), "--cluster-yes"],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip

    def ready() -> bool:
        for node in nodes:
            client = node.client()
            try:
                if cast(dict[str, str], client.cluster("INFO")).get("cluster_state") != "ok":
                    return False
                replication = client.info("replication")
                if replication["role"] == "slave" and replication["master_link_status"] != "up":
                    return False
            finally:
                client.close()
        return True

    wait_for(ready, "the cluster is ok on every node, replicas in sync", within=20)
    return Cluster(nodes)


@dataclass
class TlsFiles:
    ca: Path
    cert: Path
    key: Path


def make_tls_files(directory: Path, name: str = "localhost") -> TlsFiles:
    """A throwaway CA and a server certificate it signed, for `name` and 127.0.0.1."""
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "shape-gateway test CA")])
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    key = ec.generate_private_key(ec.SECP256R1())
    names = [x509.DNSName(name), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    files = TlsFiles(directory / "ca.pem", directory / "redis.pem", directory / "redis.key")
    files.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    return files


# The ACL docs/redis.md gives the gateway's user: its keys, and the commands it sends.
GATEWAY_ACL_COMMANDS = ("-@all", "+@read", "+@write", "+@scripting", "+@connection",
                        "-@dangerous", "+role", "+wait", "+time")  # fmt: skip
GATEWAY_ACL = ("resetchannels", *GATEWAY_ACL_COMMANDS)


def start_tls(
    servers: RedisServers, user: str, password: str, prefix: str
) -> tuple[RedisProcess, TlsFiles]:
    """A TLS-only redis-server whose one enabled user is `user` with `password`, allowed the
    keys under `prefix` and the commands of GATEWAY_ACL."""
    directory = servers.directory / "tls-server"
    files = make_tls_files(servers.directory / "tls")
    port = free_port()
    argv = ["--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--dir", str(directory),
            "--tls-cert-file", str(files.cert), "--tls-key-file", str(files.key),
            "--tls-ca-cert-file", str(files.ca), "--tls-auth-clients", "no",
            "--user", "default", "off",
            "--user", user, "on", f">{password}", f"~{prefix}:*", *GATEWAY_ACL,
            "--user", "admin", "on", f">{password}-admin", "~*", "&*", "+@all"]  # fmt: skip
    server = RedisProcess(directory, port, argv)
    server.client_kwargs = {
        "ssl": True,
        "ssl_ca_certs": str(files.ca),
        "username": "admin",
        "password": f"{password}-admin",
    }  # the test's own inspections
    return servers.start(server), files


def supports_tls() -> bool:
    """Debian's redis-server is built with TLS; a build without it rejects `--tls-port` (this
    asks it to listen nowhere, so it exits at once either way)."""
    result = subprocess.run(
        [redis_server_binary(), "--port", "0", "--tls-port", "0"],
        capture_output=True, check=False, timeout=10,
    )  # fmt: skip
    return b"not listen anywhere" in result.stdout + result.stderr


class RedisServers:
    """The servers one test starts, all killed when it ends (the `redis_servers` fixture)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.started: list[RedisProcess] = []

    def start(self, server: RedisProcess) -> RedisProcess:
        self.started.append(server)
        return server.start()

    def single(self, name: str = "single", port: int | None = None) -> RedisProcess:
        return self.start(_data_node(self.directory / name, port=port))

    def replace_with_snapshot(self, server: RedisProcess, snapshot: RedisProcess) -> RedisProcess:
        """Kill `server` and start, on its port, a server loading what `snapshot` holds (saved
        with SAVE): as when a failover promotes a replica that holds less, or a restart loads
        an older snapshot. Clients reconnect to the same address and find that."""
        client = snapshot.client()
        try:
            client.save()
        finally:
            client.close()
        snapshot.kill()
        server.kill()
        directory = self.directory / f"{server.directory.name}-restored"
        directory.mkdir()
        shutil.copy(snapshot.directory / "dump.rdb", directory / "dump.rdb")
        return self.start(_data_node(directory, port=server.port))

    def replicated(self) -> Replicated:
        return start_replicated(self)

    def cluster(self, masters: int = 3, replicas: int = 0) -> Cluster:
        return start_cluster(self, masters, replicas)

    def tls(self, user: str, password: str, prefix: str) -> tuple[RedisProcess, TlsFiles]:
        return start_tls(self, user, password, prefix)

    def stop_all(self) -> None:
        for server in self.started:
            server.kill()


@pytest.fixture
def redis_servers(tmp_path: Path) -> Iterator[RedisServers]:
    servers = RedisServers(tmp_path / "redis")
    yield servers
    servers.stop_all()
