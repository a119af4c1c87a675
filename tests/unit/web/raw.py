"""Raw HTTP/1.1 over a socket: requests no well-behaved client library would send."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from yarl import URL


@dataclass(frozen=True)
class RawResponse:
    status: int
    headers: dict[str, str]  # lower-cased names; the last of repeated headers
    body: bytes


def _body(rest: bytes, headers: dict[str, str]) -> bytes:
    if headers.get("transfer-encoding", "").lower() != "chunked":
        return rest
    out, data = b"", rest
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out, data = out + data[:size], data[size + 2 :]
    return out


async def send_raw(url: URL, request: bytes, within: float = 10.0) -> RawResponse:
    """Send `request` as is (it should say `Connection: close`) and read the whole answer."""
    reader, writer = await asyncio.open_connection(url.host, url.port)
    try:
        writer.write(request)
        await writer.drain()
        async with asyncio.timeout(within):
            data = await reader.read()
    finally:
        writer.close()
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return RawResponse(int(lines[0].split()[1]), headers, _body(rest, headers))


def raw_request(
    method: str, target: str, headers: Sequence[tuple[bytes, bytes]] = (), body: bytes = b""
) -> bytes:
    lines = [f"{method} {target} HTTP/1.1".encode("latin-1"), b"Host: gateway"]
    lines += [b"Connection: close", *(name + b": " + value for name, value in headers)]
    if body:
        lines.append(b"Content-Length: " + str(len(body)).encode())
    return b"\r\n".join(lines) + b"\r\n\r\n" + body
