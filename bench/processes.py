"""Child processes of the benchmark: started in their own session (Ctrl-C reaches only us, and
we stop them in order), killed with us if we die, stopped with SIGTERM then SIGKILL."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import signal
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Final

ROOT: Final = Path(__file__).resolve().parent.parent
STOP_TIMEOUT: Final = 10.0  # seconds between SIGTERM and SIGKILL
PR_SET_PDEATHSIG: Final = 1

Sink = int | IO[bytes] | None


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM it if the benchmark itself dies (even by SIGKILL)."""
    if sys.platform == "linux":
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


async def spawn(
    argv: list[str], env: Mapping[str, str] | None, stdout: Sink, stderr: Sink
) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *argv,
        cwd=ROOT,
        env=None if env is None else dict(env),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=stdout,
        stderr=stderr,
        start_new_session=True,
        preexec_fn=_die_with_parent,  # the child runs no threads before exec
    )


async def stop(process: asyncio.subprocess.Process) -> None:
    """SIGTERM, then SIGKILL after STOP_TIMEOUT seconds; returns once it has exited."""
    if process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        process.terminate()
    try:
        await asyncio.wait_for(process.wait(), STOP_TIMEOUT)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()


async def output_of(process: asyncio.subprocess.Process, within: float) -> str:
    """The process's stdout once it exits (stopped after `within` seconds); raises unless it
    exited 0."""
    try:
        stdout, _ = await asyncio.wait_for(process.communicate(), within)
    finally:
        await stop(process)
    if process.returncode != 0:
        raise RuntimeError(f"process {process.pid} exited with {process.returncode}")
    return stdout.decode()
