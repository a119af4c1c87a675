"""An upstream that answers like Electric, from memory, fast: the baseline every proxy is
measured against (the Electric imitation in tests/ runs on PostgreSQL and is far slower).

HTTP/1.1 keep-alive on a bare asyncio protocol. `GET /v1/shape`:
- `offset=-1`: a snapshot of `--snapshot-bytes` (default 1.3 MB), chunked like Electric;
- `live=true`: held until `POST /_change` releases every held poll with a one-row change
  (or `--hold` seconds pass: an up-to-date answer, as Electric's 20 s timeout);
- `live=true&live_sse=true`: SSE headers at once, then a stream kept open (a change is sent as
  events) until the client goes or `--sse-hold` seconds pass (Electric's 60 s);
- otherwise a catch-up: one row and up-to-date.
`GET /_stats` answers how many polls and streams are held, and how many shape requests of each
kind (`snapshot`, `live`, `sse`, `catch_up`) came so far: what a proxy cost the upstream.
`--snapshot-delay` holds each snapshot that long before answering, as Electric takes time to
start one (a herd then arrives while the first is still in flight). `--work-us` spends that much
CPU on each shape request before answering, like a real server's per-request work: bench.compare's
default (40) makes going direct about as fast as the reference upstream of docs/performance.md
(~18,500 catch-ups/s), so the ratios compare with its table; 0 measures against the fastest
possible upstream.

    python -m bench.upstream --port 3000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Final, cast

HEAD: Final = (
    "HTTP/1.1 200 OK\r\ncontent-type: application/json; charset=utf-8\r\n"
    "electric-handle: 1795968529-1\r\nelectric-offset: {offset}\r\n"
    'etag: "1795968529-1:{offset}"\r\ncache-control: {cache}\r\n{extra}'
)
ROW: Final = (
    '{"key":"\\"public\\".\\"items\\"/\\"%d\\"","value":{"id":"%d","tenant_id":"acme",'
    '"title":"item %d with a title of some length","done":"false"},'
    '"headers":{"operation":"insert","relation":["public","items"]}}'
)
UP_TO_DATE: Final = '{"headers":{"control":"up-to-date","global_last_seen_lsn":"1"}}'
SCHEMA: Final = (
    'electric-schema: {"id":{"type":"int8","pk_index":0},"tenant_id":{"type":"text"},'
    '"title":{"type":"text"},"done":{"type":"bool"}}\r\n'
)


def _response(body: bytes, offset: str, cache: str, extra: str = "") -> bytes:
    head = HEAD.format(offset=offset, cache=cache, extra=extra)
    return f"{head}content-length: {len(body)}\r\n\r\n".encode() + body


def _snapshot(size: int) -> bytes:
    """A snapshot body of about `size` bytes, sent chunked in 256 KiB pieces as Electric does."""
    rows: list[str] = []
    total = 0
    while total < size:
        rows.append(ROW % (len(rows) + 1, len(rows) + 1, len(rows) + 1))
        total += len(rows[-1]) + 1
    body = ("[" + ",".join(rows) + "]").encode()
    head = HEAD.format(offset="0_0", cache="public, max-age=604800, s-maxage=3600",
                       extra=SCHEMA + "transfer-encoding: chunked\r\n")  # fmt: skip
    out = [head.encode() + b"\r\n"]
    for start in range(0, len(body), 256 * 1024):
        piece = body[start : start + 256 * 1024]
        out.append(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
    out.append(b"0\r\n\r\n")
    return b"".join(out)


class Upstream:
    def __init__(
        self, snapshot_bytes: int, hold: float, work_us: float = 0.0, sse_hold: float = 60.0,
        snapshot_delay: float = 0.0,
    ) -> None:  # fmt: skip
        self.work_ns = int(work_us * 1000)
        self.snapshot = _snapshot(snapshot_bytes)
        self.catch_up = _response(
            f"[{ROW % (1, 1, 1)},{UP_TO_DATE}]".encode(), "1_0", "public, max-age=60",
            SCHEMA + "electric-up-to-date: \r\n",
        )  # fmt: skip
        self.change = _response(
            f"[{ROW % (2, 2, 2)},{UP_TO_DATE}]".encode(), "2_0", "public, max-age=5",
            "electric-cursor: 1\r\nelectric-up-to-date: \r\n",
        )  # fmt: skip
        self.timeout = _response(
            f"[{UP_TO_DATE}]".encode(), "1_0", "public, max-age=5",
            "electric-cursor: 1\r\nelectric-up-to-date: \r\n",
        )  # fmt: skip
        self.sse_head = (
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            b"electric-handle: 1795968529-1\r\nelectric-offset: 1_0\r\nelectric-cursor: 1\r\n"
            b"cache-control: public, max-age=59\r\ntransfer-encoding: chunked\r\n\r\n"
        )
        events = f"data: {ROW % (2, 2, 2)}\n\ndata: {UP_TO_DATE}\n\n".encode()
        self.sse_change = f"{len(events):x}\r\n".encode() + events + b"\r\n"
        self.hold, self.sse_hold = hold, sse_hold
        self.held: set[asyncio.Transport] = set()
        self.streams: set[asyncio.Transport] = set()
        self.snapshot_delay = snapshot_delay
        self.requests = {"snapshot": 0, "live": 0, "sse": 0, "catch_up": 0}

    def answer(self, transport: asyncio.Transport, method: bytes, target: bytes) -> None:
        path, _, query = target.partition(b"?")
        if self.work_ns and path == b"/v1/shape":
            until = time.perf_counter_ns() + self.work_ns
            while time.perf_counter_ns() < until:
                pass
        if path == b"/_change":
            released, self.held = self.held, set()
            for held in released:
                held.write(self.change)
            for stream in self.streams:
                stream.write(self.sse_change)
            transport.write(_response(json.dumps({"released": len(released)}).encode(), "", ""))
        elif path == b"/_stats":
            count = len(self.held) + len(self.streams)
            stats = {"held": count, "requests": self.requests}
            transport.write(_response(json.dumps(stats).encode(), "", ""))
        elif b"live_sse=true" in query:
            self.requests["sse"] += 1
            self.streams.add(transport)
            transport.write(self.sse_head)
            asyncio.get_running_loop().call_later(self.sse_hold, self._end, transport)
        elif b"live=true" in query:
            self.requests["live"] += 1
            self.held.add(transport)
            asyncio.get_running_loop().call_later(self.hold, self._expire, transport)
        elif b"offset=-1" in query:
            self.requests["snapshot"] += 1
            if self.snapshot_delay:
                loop = asyncio.get_running_loop()
                loop.call_later(self.snapshot_delay, self._send_snapshot, transport)
            else:
                transport.write(self.snapshot)
        else:
            self.requests["catch_up"] += 1
            transport.write(self.catch_up)

    def _send_snapshot(self, transport: asyncio.Transport) -> None:
        if not transport.is_closing():
            transport.write(self.snapshot)

    def _expire(self, transport: asyncio.Transport) -> None:
        if transport in self.held:
            self.held.discard(transport)
            transport.write(self.timeout)

    def _end(self, transport: asyncio.Transport) -> None:
        if transport in self.streams:
            self.streams.discard(transport)
            transport.write(b"0\r\n\r\n")


class Connection(asyncio.Protocol):
    """One keep-alive connection; requests carry no body except `/_change`'s (ignored)."""

    def __init__(self, upstream: Upstream) -> None:
        self.upstream = upstream
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        assert self.transport is not None
        while b"\r\n\r\n" in self.buffer:
            head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
            lines = head.split(b"\r\n")
            method, target, _ = lines[0].split(b" ", 2)
            for line in lines[1:]:
                if line.lower().startswith(b"content-length:"):
                    self.buffer = self.buffer[int(line.split(b":")[1]) :]
            self.upstream.answer(self.transport, method, target)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.transport is not None:
            self.upstream.held.discard(self.transport)
            self.upstream.streams.discard(self.transport)


async def serve(
    port: int, snapshot_bytes: int, hold: float, work_us: float, sse: float, *, delay: float
) -> None:
    upstream = Upstream(snapshot_bytes, hold, work_us, sse, delay)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Connection(upstream), "127.0.0.1", port, backlog=8192)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=3000)
    parser.add_argument("--snapshot-bytes", type=int, default=1_300_000)
    parser.add_argument("--hold", type=float, default=20.0, help="long-poll timeout, seconds")
    parser.add_argument("--sse-hold", type=float, default=60.0, help="SSE lifetime, seconds")
    parser.add_argument("--work-us", type=float, default=0.0, help="CPU per shape request, µs")
    parser.add_argument("--snapshot-delay", type=float, default=0.0, help="seconds to start one")
    args = parser.parse_args()
    import uvloop  # noqa: PLC0415 - the `speed` extra; the benchmark needs it

    uvloop.run(serve(args.port, args.snapshot_bytes, args.hold, args.work_us, args.sse_hold,
                     delay=args.snapshot_delay))  # fmt: skip


if __name__ == "__main__":
    main()
