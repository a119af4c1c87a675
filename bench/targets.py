"""The shape requests the benchmark sends, found by asking: one request through the gateway,
then the fake's record of what the gateway sent upstream, replayed direct (secret included).
Also the fake's control API (`/_control/*`) the benchmark reads.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from multidict import CIMultiDictProxy
from yarl import URL

from bench.services import SHAPE, Stack


@dataclass(frozen=True, slots=True)
class Target:
    """One shape request, as a client sends it to the gateway and as the gateway sent it on."""

    scenario: str
    gateway: str
    direct: str
    same_body: bool  # direct and through the gateway answered byte-identical bodies


async def electric_get(stack: Stack, path: str) -> Any:
    async with stack.session.get(f"{stack.electric.url}{path}") as response:
        response.raise_for_status()
        return await response.json()


async def forget_requests(stack: Stack) -> None:
    """The fake records every request; clear it between runs so it does not grow unbounded."""
    async with stack.session.delete(f"{stack.electric.url}/_control/requests") as response:
        response.raise_for_status()


async def last_upstream_query(stack: Stack) -> str:
    """The raw query string of the gateway's latest request to the fake."""
    recorded = [
        r for r in await electric_get(stack, "/_control/requests") if r["path"] == "/v1/shape"
    ]
    if not recorded:
        raise RuntimeError("the gateway sent nothing upstream")
    query: str = recorded[-1]["query_string"]
    return query


async def get_body(
    stack: Stack, url: str, headers: dict[str, str]
) -> tuple[int, bytes, CIMultiDictProxy[str]]:
    async with stack.session.get(URL(url, encoded=True), headers=headers) as response:
        return response.status, await response.read(), response.headers


async def held_requests(stack: Stack) -> int:
    """Long-polls the fake is holding right now."""
    stats = await electric_get(stack, "/_control/stats")
    held: int = stats["held_requests"]
    return held


async def discover(stack: Stack) -> list[Target]:
    """Send the initial sync and a catch-up through the gateway once, read what it sent
    upstream, and check both paths answer the same bytes."""
    auth = {"Authorization": f"Bearer {stack.token()}", "Accept-Encoding": "identity"}
    shape = URL(stack.gateway.url).with_path("/v1/shape")
    targets: list[Target] = []

    snapshot = str(shape.with_query(table=SHAPE, offset="-1"))
    _, body, headers = await _gateway_then_direct(stack, snapshot, auth, targets, "initial sync")
    rows = sum(1 for message in json.loads(body) if "key" in message)
    if rows != stack.rows:
        raise RuntimeError(f"the snapshot has {rows} rows, expected {stack.rows}")
    handle, offset = headers["electric-handle"], headers["electric-offset"]

    catch_up = str(shape.with_query(table=SHAPE, handle=handle, offset=offset))
    _, body, _ = await _gateway_then_direct(stack, catch_up, auth, targets, "catch-up")
    if b"up-to-date" not in body or b'"key"' in body:
        raise RuntimeError(f"the catch-up is not a bare up-to-date: {body[:200]!r}")
    return targets[::-1]  # catch-up first: the small, per-request-cost case


async def live_url_at_head(stack: Stack) -> str:
    """A live request at the shape's head, found by following its log through the gateway."""
    shape = URL(stack.gateway.url).with_path("/v1/shape")
    auth = {"Authorization": f"Bearer {stack.token()}"}
    url = shape.with_query(table=SHAPE, offset="-1")
    for _ in range(20):  # a few chunks at most: the log holds the snapshot and our inserts
        status, body, headers = await get_body(stack, str(url), auth)
        if status != 200:
            raise RuntimeError(f"following the shape answered {status}: {body[:300]!r}")
        handle, offset = headers["electric-handle"], headers["electric-offset"]
        url = shape.with_query(table=SHAPE, handle=handle, offset=offset)
        if "electric-up-to-date" in headers:
            return str(url.update_query(live="true"))
    raise RuntimeError("the shape's log did not reach up-to-date in 20 requests")


async def _gateway_then_direct(
    stack: Stack, url: str, auth: dict[str, str], targets: list[Target], scenario: str
) -> tuple[int, bytes, CIMultiDictProxy[str]]:
    await forget_requests(stack)
    status, body, headers = await get_body(stack, url, auth)
    if status != 200:
        raise RuntimeError(f"{scenario} through the gateway answered {status}: {body[:300]!r}")
    direct = f"{stack.electric.url}/v1/shape?{await last_upstream_query(stack)}"
    direct_status, direct_body, _ = await get_body(stack, direct, {"Accept-Encoding": "identity"})
    if direct_status != 200:
        raise RuntimeError(f"{scenario} direct answered {direct_status}: {direct_body[:300]!r}")
    targets.append(Target(scenario, url, direct, same_body=direct_body == body))
    return status, body, headers
