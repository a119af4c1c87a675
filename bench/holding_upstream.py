"""A stand-in for Electric that only holds, for `bench.scale`: its subject is the gateway holding
and cutting 10,000 streams, so the upstream must cost next to nothing per held request (our
Python imitation of Electric checks each held request 10 times a second: 10,000 of them would
take the machine's cores from the gateways being measured).

A long-poll (`live=true`) is held for `--long-poll` seconds (Electric's 20 s), then answered
up to date; with `live_sse=true` it gets SSE headers at once and a stream that stays open until
the client goes (or `--hold` seconds). Anything else is answered at once with an empty,
up-to-date log.
`GET /_stats` says how many requests it holds.

Run: `python -m bench.holding_upstream [--port 0] [--long-poll 20] [--hold 300]`; prints its URL
when listening.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Final

from aiohttp import web

HEADERS: Final = {
    "electric-handle": "bench-handle",
    "electric-offset": "0_0",
    "electric-cursor": "1",
    "electric-schema": '{"id":{"type":"int4"}}',
    "electric-up-to-date": "",
}
HELD: Final = web.AppKey("held", list[int])
HOLD: Final = web.AppKey("hold", float)
LONG_POLL: Final = web.AppKey("long_poll", float)


async def shape(request: web.Request) -> web.StreamResponse:
    query = request.rel_url.query
    if query.get("live") != "true":
        return web.json_response([], headers=HEADERS)
    held = request.app[HELD]
    held[0] += 1
    try:
        if query.get("live_sse") != "true":
            await asyncio.sleep(request.app[LONG_POLL])
            return web.json_response([{"headers": {"control": "up-to-date"}}], headers=HEADERS)
        response = web.StreamResponse(headers={**HEADERS, "Content-Type": "text/event-stream"})
        await response.prepare(request)
        await asyncio.sleep(request.app[HOLD])  # unless the gateway closes the connection first
        return response
    finally:
        held[0] -= 1


async def stats(request: web.Request) -> web.Response:
    return web.json_response({"held": request.app[HELD][0]})


async def main(port: int, long_poll: float, hold: float) -> None:
    app = web.Application()
    app[HELD], app[LONG_POLL], app[HOLD] = [0], long_poll, hold
    app.router.add_get("/v1/shape", shape)
    app.router.add_get("/_stats", stats)
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port, backlog=4096)
    await site.start()
    host, bound = runner.addresses[0][:2]
    print(f"holding upstream listening on http://{host}:{bound}", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--long-poll", type=float, default=20.0)
    parser.add_argument("--hold", type=float, default=300.0)
    options = parser.parse_args()
    asyncio.run(main(options.port, options.long_poll, options.hold))
