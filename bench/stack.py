"""The processes a benchmark runs: the in-memory upstream, nginx, the bare aiohttp proxy and the
gateway, each on a free port, pinned to a CPU when there are several, stopped on exit.

Layout on a 2-core machine (docs/performance.md's): the load generator on core 0, the upstream
and the proxy under test sharing core 1, so a proxy's cost shows as throughput it takes from
the upstream on the same core.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import psutil
import redis

ROOT: Final = Path(__file__).resolve().parent.parent
SECRET: Final = "bench-secret-0123456789-0123456789-abcdef"
RULES: Final = """\
version: 1
identity: {user: sub, tenant: tid, role: role}
roles: [member]
shapes:
  items:
    table: public.items
    where: "tenant_id = :tenant"
    allow: [member]
limits:
  default: {requests_per_minute: 1000000000, tenant_requests_per_minute: 1000000000,
            live_connections_per_user: 1000000}
"""
NGINX: Final = """\
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log;
events {{ worker_connections 30000; }}
worker_rlimit_nofile 40000;
http {{
  access_log off;
  upstream electric {{ server 127.0.0.1:{upstream}; keepalive 256; }}
  server {{
    listen 127.0.0.1:{port} backlog=8192;
    location / {{
      proxy_pass http://electric;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
      proxy_read_timeout 90s;
    }}
  }}
}}
"""
OURS: Final = ("GATEWAY_", "JWT_", "ELECTRIC_", "REDIS_URL", "LOG_")  # set here, not inherited
LOAD_CPU: Final = 0
SERVER_CPU: Final = 1


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pinned(command: Sequence[str], cpu: int | None) -> list[str]:
    """`command` on one CPU (None: any), when the machine has several and taskset exists."""
    if cpu is not None and (os.cpu_count() or 1) > 1 and shutil.which("taskset"):
        return ["taskset", "-c", str(cpu), *command]
    return list(command)


def wait_for_port(port: int, process: subprocess.Popen[bytes], within: float = 15.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited with {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port} after {within} s")


@dataclass
class Server:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    pids: list[int] = field(default_factory=list)  # whose memory counts (nginx: its worker)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def rss(self) -> int:
        """Resident bytes of the process(es) doing the serving."""
        total = 0
        for pid in self.pids or [self.process.pid]:
            with contextlib.suppress(psutil.Error):
                total += psutil.Process(pid).memory_info().rss
        return total

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pids or [self.process.pid])


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time the processes have used so far."""
    total = 0.0
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            times = psutil.Process(pid).cpu_times()
            total += times.user + times.system
    return total


class Stack(contextlib.ExitStack):
    """Starts servers; every one is stopped when the stack closes, also on errors."""

    def __init__(self) -> None:
        super().__init__()
        # SIGTERM (a timeout, a kill) unwinds like an error: the servers are stopped too.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
        self.dir = Path(tempfile.mkdtemp(prefix="shape-gateway-bench-"))
        self.callback(shutil.rmtree, self.dir, ignore_errors=True)

    def _spawn(self, name: str, command: list[str], port: int, env: dict[str, str]) -> Server:
        log = (self.dir / f"{name}.log").open("wb")
        self.callback(log.close)
        process = subprocess.Popen(command, env=env, stdout=log, stderr=log, cwd=ROOT)
        self.callback(_stop, process)
        wait_for_port(port, process)
        return Server(name, port, process)

    def upstream(
        self, work_us: float = 0.0, hold: float = 20.0, sse_hold: float = 60.0,
        cpu: int | None = SERVER_CPU, *, snapshot_bytes: int = 1_300_000,
        snapshot_delay: float = 0.0,
    ) -> Server:  # fmt: skip
        port = free_port()
        command = [sys.executable, "-m", "bench.upstream", "--port", str(port), "--work-us",
                   str(work_us), "--hold", str(hold), "--sse-hold", str(sse_hold),
                   "--snapshot-bytes", str(snapshot_bytes),
                   "--snapshot-delay", str(snapshot_delay)]  # fmt: skip
        return self._spawn("upstream", pinned(command, cpu), port, dict(os.environ))

    def nginx(self, upstream: Server) -> Server:
        port = free_port()
        conf = self.dir / "nginx.conf"
        conf.write_text(NGINX.format(dir=self.dir, upstream=upstream.port, port=port))
        command = ["nginx", "-c", str(conf), "-p", str(self.dir), "-g", "daemon off;"]
        server = self._spawn("nginx", pinned(command, SERVER_CPU), port, dict(os.environ))
        server.pids = [c.pid for c in psutil.Process(server.process.pid).children()]
        return server

    def bare(self, upstream: Server) -> Server:
        port = free_port()
        command = [sys.executable, "-m", "bench.bare_proxy", "--port", str(port),
                   "--upstream", upstream.url]  # fmt: skip
        env = {**os.environ, "JWT_SECRET": SECRET}
        return self._spawn("bare", pinned(command, SERVER_CPU), port, env)

    def gateway(
        self,
        upstream: Server,
        redis_url: str | None = None,
        workers: int = 1,
        *,
        prefix: str = "",
        env: dict[str, str] | None = None,
        cpu: int | None = SERVER_CPU,
    ) -> Server:
        """A replica; with `redis_url`, on `prefix` (replicas given the same share state)."""
        port = free_port()
        rules = self.dir / "rules.yaml"
        rules.write_text(textwrap.dedent(RULES))
        environment = {k: v for k, v in os.environ.items() if not k.startswith(OURS)}
        environment |= {"JWT_SECRET": SECRET, "LOG_FORMAT": "json", "GATEWAY_MAX_CONNECTIONS":
                        "19000", "GATEWAY_HEADER_TIMEOUT": "60"}  # fmt: skip
        if redis_url:
            prefix = prefix or f"bench-{port}"
            environment |= {"REDIS_URL": redis_url, "GATEWAY_REDIS_PREFIX": prefix}
            self.callback(_delete_keys, redis_url, prefix)  # after the replica stops
        command = [sys.executable, "-m", "gateway", "serve", "--host", "127.0.0.1",
                   "--port", str(port), "--rules", str(rules), "--upstream", upstream.url,
                   "--workers", str(workers)]  # fmt: skip
        # One worker shares the upstream's core; several spread over every core.
        server = self._spawn(
            f"gateway-{port}",
            pinned(command, cpu if workers == 1 else None),
            port,
            environment | (env or {}),
        )
        if workers > 1:
            server.pids = [c.pid for c in psutil.Process(server.process.pid).children()]
        return server


def _delete_keys(redis_url: str, prefix: str) -> None:
    with redis.Redis.from_url(redis_url) as client:
        for key in client.scan_iter(f"{prefix}:*"):
            client.delete(key)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
