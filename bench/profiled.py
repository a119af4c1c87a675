"""`python -m bench.profiled STATS_PATH serve ...`: the gateway's own CLI under cProfile,
timed in CPU seconds (idle waits in the event loop are not counted), stats written at exit.

Profiling costs the gateway roughly twice its CPU per request: use it for where the time goes,
not for how much there is.
"""

from __future__ import annotations

import cProfile
import pstats
import sys
import time
from pathlib import Path

from gateway.cli import main


def run(argv: list[str]) -> int:
    stats_path, gateway_argv = argv[0], argv[1:]
    profiler = cProfile.Profile(time.process_time)
    profiler.enable()
    try:
        return main(gateway_argv)
    finally:
        profiler.disable()
        profiler.dump_stats(stats_path)


def summarize_profile(path: Path, requests: int, limit: int = 20) -> str:
    """The top functions by own CPU, then the gateway's own functions by cumulative CPU, in
    µs per request; the full listing goes to PATH.txt."""
    with Path(f"{path}.txt").open("w") as sink:
        pstats.Stats(str(path), stream=sink).sort_stats("tottime").print_stats(100)
    stats = pstats.Stats(str(path))
    table = stats.stats  # type: ignore[attr-defined]
    total: float = stats.total_tt  # type: ignore[attr-defined]
    per = 1e6 / max(requests, 1)
    rows = [
        (func, tottime, cumtime, calls) for func, (_, calls, tottime, cumtime, _) in table.items()
    ]
    lines = [
        f"gateway profile: {total:.2f} CPU s for {requests} requests = {total * per:.0f} µs each "
        f"(cProfile doubles it); full listing in {path}.txt",
        f"  {'own %':>6} {'own µs/req':>10} {'cum µs/req':>10}  function (top by own time)",
    ]
    for func, own, cum, _ in sorted(rows, key=lambda row: row[1], reverse=True)[:limit]:
        lines.append(f"  {own / total:6.1%} {own * per:10.1f} {cum * per:10.1f}  {_name(func)}")
    lines.append(
        f"  {'cum %':>6} {'':>10} {'cum µs/req':>10}  gateway/ function (top by cumulative)"
    )
    own_code = [row for row in rows if "/gateway/" in row[0][0]]
    for func, _, cum, _ in sorted(own_code, key=lambda row: row[2], reverse=True)[:limit]:
        lines.append(f"  {cum / total:6.1%} {'':>10} {cum * per:10.1f}  {_name(func)}")
    return "\n".join(lines)


def _name(func: tuple[str, int, str]) -> str:
    filename, line, function = func
    if not line:
        return function
    parts = Path(filename).parts
    return f"{'/'.join(parts[-2:])}:{line}({function})"


if __name__ == "__main__":
    raise SystemExit(run(sys.argv[1:]))
