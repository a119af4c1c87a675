"""What a process costs, read from /proc: resident memory, CPU time, open descriptors.

CPU time per request is the benchmark's most robust number on a 2-core machine: throughput
shifts with whatever else competes for the cores, the CPU a process spends per request does not
much. Linux only, like the machines this project runs on.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Final

CLOCK_TICKS: Final = os.sysconf("SC_CLK_TCK")
PROC: Final = Path("/proc")


def rss_kib(pid: int) -> int:
    """The process's resident set (`VmRSS`), in KiB."""
    for line in (PROC / str(pid) / "status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far."""
    stat = (PROC / str(pid) / "stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # after `pid (comm) `; comm may hold spaces
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime (fields 14, 15)


def open_fds(pid: int) -> int:
    return len(os.listdir(PROC / str(pid) / "fd"))


def postgres_cpu_seconds() -> float:
    """CPU time of every `postgres` process (the fake's catalog lookups run there)."""
    total = 0.0
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() == "postgres":
                total += cpu_seconds(int(entry.name))
        except (OSError, ValueError):
            continue  # gone meanwhile, or not ours to read
    return total


def machine_ticks() -> tuple[int, int]:
    """(busy, total) CPU ticks of all cores since boot, from the first line of /proc/stat."""
    values = [int(v) for v in (PROC / "stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    total = sum(values[:8])  # guest time is already counted in user
    return total - idle, total


def listen_overflows() -> int:
    """Connections dropped machine-wide because a listen queue was full (`TcpExtListenOverflows`):
    each costs its client a SYN retransmit, 1 s or more."""
    lines = (PROC / "net" / "netstat").read_text().splitlines()
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        if names.startswith("TcpExt:"):
            return int(values.split()[names.split().index("ListenOverflows")])
    return 0


def memory_total_gib() -> float:
    for line in (PROC / "meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / 1024 / 1024
    return 0.0


@dataclass(frozen=True, slots=True)
class CpuSnapshot:
    """CPU seconds of the processes being watched, and the machine's tick counters."""

    seconds: dict[str, float]
    busy_ticks: int
    total_ticks: int


def take_cpu_snapshot(pids: dict[str, int]) -> CpuSnapshot:
    seconds = {name: cpu_seconds(pid) for name, pid in pids.items()}
    seconds["postgres"] = postgres_cpu_seconds()
    busy, total = machine_ticks()
    return CpuSnapshot(seconds, busy, total)


@dataclass(frozen=True, slots=True)
class CpuUse:
    """CPU seconds each watched process used between two snapshots, and the machine's: busy
    seconds and capacity (seconds times cores) meanwhile."""

    seconds: dict[str, float]
    busy_seconds: float
    capacity_seconds: float

    @property
    def machine_busy(self) -> float:
        """0..1 of all the machine's cores."""
        return self.busy_seconds / self.capacity_seconds if self.capacity_seconds else 0.0

    def other_share(self, ours: float) -> float:
        """0..1 of the machine used by processes that are not ours (`ours`: CPU seconds of the
        watched processes plus any not watched here, like the load generator)."""
        other = self.busy_seconds - ours
        return max(other, 0.0) / self.capacity_seconds if self.capacity_seconds else 0.0


def cpu_between(before: CpuSnapshot, after: CpuSnapshot) -> CpuUse:
    seconds = {name: after.seconds[name] - before.seconds[name] for name in before.seconds}
    return CpuUse(
        seconds,
        busy_seconds=(after.busy_ticks - before.busy_ticks) / CLOCK_TICKS,
        capacity_seconds=(after.total_ticks - before.total_ticks) / CLOCK_TICKS,
    )
