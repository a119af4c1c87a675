"""Load from wrk (Debian's package), pinned to its own core: req/s, MB/s and latency."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from typing import Final

from bench.stack import LOAD_CPU, pinned

_UNITS: Final = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "B": 1, "KB": 1024, "MB": 1024**2,
                 "GB": 1024**3}  # fmt: skip


@dataclass(frozen=True)
class Load:
    requests_per_s: float
    bytes_per_s: float
    p50: float  # seconds
    p99: float
    errors: int
    requests: int

    @property
    def mb_per_s(self) -> float:
        return self.bytes_per_s / 1e6


def _quantity(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|B|KB|MB|GB)", text)
    if match is None:
        raise ValueError(f"wrk printed {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def run_wrk(url: str, connections: int, seconds: float, token: str | None = None) -> Load:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk")
    command = ["wrk", "-t1", f"-c{connections}", f"-d{max(round(seconds), 1)}s", "--latency", url]
    if token:
        command[1:1] = ["-H", f"Authorization: Bearer {token}"]
    out = subprocess.run(pinned(command, LOAD_CPU), capture_output=True, text=True, check=True)
    text = out.stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))  # type: ignore[union-attr]
    transfer = _quantity(re.search(r"Transfer/sec:\s+(\S+)", text).group(1))  # type: ignore[union-attr]
    p50 = _quantity(re.search(r"\s50%\s+(\S+)", text).group(1))  # type: ignore[union-attr]
    p99 = _quantity(re.search(r"\s99%\s+(\S+)", text).group(1))  # type: ignore[union-attr]
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", text))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    errors += int(non_2xx.group(1)) if non_2xx else 0
    requests = int(re.search(r"(\d+) requests in", text).group(1))  # type: ignore[union-attr]
    return Load(rate, transfer, p50, p99, errors, requests)
