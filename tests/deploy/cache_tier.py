"""A real nginx running the shipped cache tier (deploy/nginx/electric-cache.conf) on loopback, in
front of an Electric upstream.

The shipped file is rendered as its header says (`envsubst` of ELECTRIC_ADDRESS and
ELECTRIC_SECRET), then only what a test must change is replaced (each replacement must find its
text): the port, file paths into a temporary prefix, one worker, `daemon off`.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from yarl import URL

from tests.deploy.files import NGINX
from tests.deploy.front import accepting, nginx_binary
from tests.services import free_port

CONFIG = NGINX / "electric-cache.conf"


def _replace(text: str, old: str, new: str) -> str:
    assert old in text, f"deploy/nginx/electric-cache.conf no longer contains {old!r}"
    return text.replace(old, new)


def rendered(address: str, secret: str) -> str:
    """The shipped file through `envsubst`, exactly as deploy/nginx/electric-cache.conf says."""
    envsubst = shutil.which("envsubst")
    if envsubst is None:
        pytest.skip("no envsubst (Debian: gettext-base) to render the cache tier's config")
    result = subprocess.run(
        [envsubst, "${ELECTRIC_ADDRESS} ${ELECTRIC_SECRET}"],
        input=CONFIG.read_text(), capture_output=True, text=True, check=True, timeout=10,
        env={"ELECTRIC_ADDRESS": address, "ELECTRIC_SECRET": secret},
    )  # fmt: skip
    return result.stdout


def relocated(config: str, prefix: Path, port: int) -> str:
    """`config` with its files inside `prefix`, listening on 127.0.0.1:`port`, in the foreground."""
    config = _replace(config, "/var/cache/electric-cache/", f"{prefix}/cache/")
    config = _replace(config, "/var/log/nginx/", f"{prefix}/")
    config = _replace(config, "pid /run/", f"pid {prefix}/")
    config = _replace(config, "worker_processes auto;", "worker_processes 1;\ndaemon off;")
    config = _replace(config, "worker_rlimit_nofile 65536;", "worker_rlimit_nofile 1024;")
    config = _replace(config, "worker_connections 16384;", "worker_connections 512;")
    return _replace(config, "listen 3000;", f"listen 127.0.0.1:{port};")


def lay_out(config: str) -> tuple[Path, int]:
    """A prefix (0755: nginx's workers run as `nobody` under root) holding the config."""
    prefix = Path(tempfile.mkdtemp(prefix="shape-gateway-electric-cache-"))
    prefix.chmod(0o755)
    (prefix / "cache").mkdir()
    port = free_port()
    (prefix / "nginx.conf").write_text(relocated(config, prefix, port))
    return prefix, port


def nginx_t(config: str) -> subprocess.CompletedProcess[str]:
    prefix, _ = lay_out(config)
    try:
        return subprocess.run(
            [nginx_binary(), "-t", "-p", str(prefix), "-c", str(prefix / "nginx.conf"),
             "-e", str(prefix / "test.log")],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
    finally:
        shutil.rmtree(prefix, ignore_errors=True)


@dataclass(frozen=True)
class CacheTier:
    url: URL
    prefix: Path

    @property
    def access_log(self) -> Path:
        return self.prefix / "electric-cache.access.log"

    def cache_files(self) -> list[Path]:
        return [path for path in (self.prefix / "cache" / "entries").rglob("*") if path.is_file()]


CacheTierFactory = Callable[[URL, str], Awaitable[CacheTier]]


@pytest.fixture
async def cache_tier_factory() -> AsyncIterator[CacheTierFactory]:
    """start(Electric's URL, its secret) -> the shipped tier in front of it; stopped after."""
    binary = nginx_binary()
    processes: list[asyncio.subprocess.Process] = []
    prefixes: list[Path] = []

    async def start(electric: URL, secret: str) -> CacheTier:
        prefix, port = lay_out(rendered(f"{electric.host}:{electric.port}", secret))
        prefixes.append(prefix)
        log = prefix / "start-up.log"
        with log.open("wb") as output:
            process = await asyncio.create_subprocess_exec(
                binary, "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-e", "stderr",
                stdout=asyncio.subprocess.DEVNULL, stderr=output,
            )  # fmt: skip
        processes.append(process)
        await accepting(port, process, log)
        return CacheTier(URL(f"http://127.0.0.1:{port}"), prefix)

    yield start
    for process in processes:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            await process.wait()
    for prefix in prefixes:
        shutil.rmtree(prefix, ignore_errors=True)
