"""`python -m bench.gc_probe serve ...`: the gateway's own CLI, logging every garbage collection
that takes PAUSE_MS or more as one JSON line on stderr, for a benchmark to line up with its
latencies (a collection stops the event loop, held requests and revocations included):

    {"event": "gc_pause", "generation": 2, "ms": 84.1, "collected": 3636, "at": <time.time()>}

Its cost is two calls of a small function per collection.
"""

from __future__ import annotations

import gc
import json
import sys
import time
from typing import Any, Final

from gateway.cli import main

PAUSE_MS: Final = 5.0


class Probe:
    def __init__(self) -> None:
        self.started = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        now = time.perf_counter()
        if phase == "start":
            self.started = now
            return
        ms = (now - self.started) * 1e3
        if ms >= PAUSE_MS:
            line = {"event": "gc_pause", "generation": info["generation"], "ms": round(ms, 1),
                    "collected": info["collected"], "at": time.time(), "level": "info"}  # fmt: skip
            print(json.dumps(line), file=sys.stderr, flush=True)


if __name__ == "__main__":
    gc.callbacks.append(Probe())
    raise SystemExit(main(sys.argv[1:]))
