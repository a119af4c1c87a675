"""`serve --workers N`: N processes on one port, each a full replica.

Python runs one core per process. The kernel spreads connections over processes that listen on
the same port with SO_REUSEPORT, so N workers use N cores with no proxy between them. Each
worker is a complete gateway (its own revocation follower, limiter and audit sink) and they
share state exactly as replicas on different machines do: through Redis, which is why N > 1
needs REDIS_URL.

The parent only supervises: it forwards SIGTERM/SIGINT (drain and stop) and SIGHUP (reload the
rules) to every worker, restarts a worker that dies unasked (at most once a second), and exits
when all have stopped.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import multiprocessing
import os
import signal
import socket
import time
from collections.abc import Mapping
from multiprocessing.process import BaseProcess
from typing import Final

import structlog

from gateway.settings import Settings

log = structlog.get_logger(__name__)
RESTART_PAUSE: Final = 1.0
PR_SET_PDEATHSIG: Final = 1  # linux/prctl.h


def _die_with_parent(parent: int) -> None:
    """Linux: SIGTERM this worker when the supervisor dies, however it dies (SIGKILL
    included), so no orphaned worker keeps serving a stale configuration."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        return  # not Linux: the parent's SIGTERM still reaches the workers
    if os.getppid() != parent:  # the parent died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


def _worker(settings: Settings, env: Mapping[str, str], index: int, parent: int) -> None:
    # Imported here: the child is a fresh interpreter (spawn), and the parent needs none of it.
    from gateway.logs import configure_logging  # noqa: PLC0415
    from gateway.server.runtime import run_async  # noqa: PLC0415
    from gateway.server.serve import serve  # noqa: PLC0415

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent turns Ctrl-C into SIGTERM
    _die_with_parent(parent)
    configure_logging(settings.log_format, worker=index)
    run_async(serve(settings, env, reuse_port=True))


def check_port(host: str, port: int) -> None:
    """Bind the port as the workers will (SO_REUSEPORT) and let it go: a port another process
    holds fails here, once, instead of in every worker restarted forever."""
    for family, kind, proto, _, address in socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    ):
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            probe.bind(address)


class Supervisor:
    def __init__(self, settings: Settings, env: Mapping[str, str]) -> None:
        self.settings = settings
        self.env = dict(env)
        self.context = multiprocessing.get_context("spawn")
        self.workers: dict[int, BaseProcess] = {}
        self.stopping = False

    def start(self, index: int) -> None:
        process = self.context.Process(
            target=_worker,
            args=(self.settings, self.env, index, os.getpid()),
            name=f"worker-{index}",
        )
        process.start()
        self.workers[index] = process

    def forward(self, signum: int) -> None:
        if signum in (signal.SIGTERM, signal.SIGINT):
            self.stopping = True
            signum = signal.SIGTERM
        for process in self.workers.values():
            if process.is_alive() and process.pid is not None:
                os.kill(process.pid, signum)

    def run(self) -> int:
        """Supervise until every worker stopped; OSError, before any starts, when the port is
        taken by a process that does not share it (as one process's `serve` reports it)."""
        check_port(self.settings.host, self.settings.port)
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, lambda number, _frame: self.forward(number))
        for index in range(self.settings.workers):
            self.start(index)
        log.info("workers_started", workers=self.settings.workers, port=self.settings.port)
        while self.workers:
            time.sleep(0.2)
            for index, process in list(self.workers.items()):
                if process.is_alive():
                    continue
                process.join()
                if self.stopping:
                    del self.workers[index]
                    continue
                log.error("worker_exited", worker=index, exitcode=process.exitcode)
                time.sleep(RESTART_PAUSE)
                self.start(index)
        log.info("workers_stopped")
        return 0
