"""A real nginx running the shipped front (deploy/nginx) on loopback, in front of a real gateway.

The shipped nginx.conf is used as it is, with only what a test must change replaced (each
replacement must find its text, so an edit to the shipped file cannot silently escape the
test): ports and the upstream address, file paths into a temporary prefix, `daemon off`. One
server block is added: the shipped locations behind plain HTTP, which the aiohttp client drives;
the TLS + HTTP/2 listener is tested with ALPN and curl. The certificate is made at test time.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import os
import shutil
import signal
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from yarl import URL

from tests.deploy.files import NGINX
from tests.services import free_port

LOCATIONS = "shape-gateway-locations.conf"


def nginx_binary() -> str:
    """nginx from PATH or Debian's /usr/sbin; missing, the test skips, or fails under CI."""
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin")
    if found:
        return found
    message = "nginx is not installed (Debian: apt-get install nginx; .ci/run installs it)"
    if os.environ.get("CI"):
        pytest.fail(f"{message}; CI must run the front's tests", pytrace=False)
    pytest.skip(message)
    raise AssertionError  # pytest.skip raises; this line only informs the type checker


def write_certificate(directory: Path) -> Path:
    """A self-signed certificate for localhost and 127.0.0.1; returns the certificate's path."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "tls.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    (directory / "tls.crt").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return directory / "tls.crt"


def _replace(text: str, old: str, new: str) -> str:
    assert old in text, f"deploy/nginx/nginx.conf no longer contains {old!r}"
    return text.replace(old, new)


def prepare_prefix(prefix: Path) -> None:
    """Copy the shipped files into `prefix` beside a fresh certificate (tls/, as shipped)."""
    for name in ("nginx.conf", LOCATIONS):
        shutil.copy(NGINX / name, prefix / name)
    write_certificate(prefix / "tls")


def relocate_paths(config: str, prefix: Path) -> str:
    """The shipped config with its log and pid files inside `prefix`."""
    config = _replace(config, "/var/log/nginx/", f"{prefix}/")
    return _replace(config, "pid /run/", f"pid {prefix}/")


@dataclass(frozen=True)
class Front:
    http: URL  # the shipped locations behind plain HTTP (added for the tests)
    https: URL  # the shipped TLS + HTTP/2 server
    redirect: URL  # the shipped port-80 server
    certificate: Path
    error_log: Path


def render(prefix: Path, upstream: URL, front: Front) -> str:
    assert front.https.port
    assert front.redirect.port
    assert front.http.port
    config = relocate_paths((NGINX / "nginx.conf").read_text(), prefix)
    config = _replace(config, "worker_processes auto;", "worker_processes 1;\ndaemon off;")
    config = _replace(config, "worker_rlimit_nofile 65536;", "worker_rlimit_nofile 1024;")
    config = _replace(config, "worker_connections 16384;", "worker_connections 512;")
    config = _replace(config, "server 127.0.0.1:8080;", f"server {upstream.host}:{upstream.port};")
    config = _replace(
        config, "listen 443 ssl http2;", f"listen 127.0.0.1:{front.https.port} ssl http2;"
    )
    config = _replace(config, "        listen [::]:443 ssl http2;\n", "")
    config = _replace(config, "listen 80;", f"listen 127.0.0.1:{front.redirect.port};")
    config = _replace(config, "        listen [::]:80;\n", "")
    temporary = "".join(
        f"    {kind}_temp_path {prefix}/temp/{kind};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    plain = (
        f"    server {{\n        listen 127.0.0.1:{front.http.port};\n"
        f"        include {LOCATIONS};\n    }}\n"
    )
    return _replace(
        config, "    server_tokens off;\n", f"    server_tokens off;\n{temporary}{plain}"
    )


async def accepting(port: int, process: asyncio.subprocess.Process, log: Path) -> None:
    async with asyncio.timeout(10):
        while True:
            if process.returncode is not None:
                said = await asyncio.to_thread(log.read_text)
                raise AssertionError(f"nginx exited: {said}")
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(0.02)
                continue
            writer.close()
            await writer.wait_closed()
            return


FrontFactory = Callable[[URL], Awaitable[Front]]


def lay_out(upstream: URL) -> tuple[Path, Front]:
    """A prefix holding the shipped files, a certificate and the rendered config, on free ports.

    Not under pytest's 0700 tmp_path: nginx's workers (`nobody` when the master is root) must
    reach their temp directories inside the prefix."""
    prefix = Path(tempfile.mkdtemp(prefix="shape-gateway-nginx-"))
    prefix.chmod(0o755)
    (prefix / "temp").mkdir()
    prepare_prefix(prefix)
    front = Front(
        http=URL(f"http://127.0.0.1:{free_port()}"),
        https=URL(f"https://127.0.0.1:{free_port()}"),
        redirect=URL(f"http://127.0.0.1:{free_port()}"),
        certificate=prefix / "tls" / "tls.crt",
        error_log=prefix / "shape-gateway.error.log",
    )
    (prefix / "nginx.conf").write_text(render(prefix, upstream, front))
    return prefix, front


@pytest.fixture
async def front_factory() -> AsyncIterator[FrontFactory]:
    """Start the shipped front in front of a gateway URL; stopped (fast) after the test."""
    binary = nginx_binary()
    processes: list[asyncio.subprocess.Process] = []
    prefixes: list[Path] = []

    async def start(upstream: URL) -> Front:
        prefix, front = lay_out(upstream)
        prefixes.append(prefix)
        log = prefix / "start-up.log"  # what nginx says before it reads its error_log directive
        with log.open("wb") as output:
            process = await asyncio.create_subprocess_exec(
                binary, "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-e", "stderr",
                stdout=asyncio.subprocess.DEVNULL, stderr=output,
            )  # fmt: skip
        processes.append(process)
        for url in (front.http, front.https, front.redirect):
            assert url.port is not None
            await accepting(url.port, process, log)
        return front

    yield start
    for process in processes:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)  # fast shutdown: held streams are cut
            await process.wait()
    for prefix in prefixes:
        shutil.rmtree(prefix, ignore_errors=True)
