"""The floor an aiohttp proxy starts from: verify the JWT, inject the tenant where, stream the
answer back. Nothing else (no rules, limits, revocation, audit, header policy): what
shape-gateway costs beyond it is the cost of being a secure product.

    JWT_SECRET=... python -m bench.bare_proxy --port 8081 --upstream http://127.0.0.1:3000
"""

from __future__ import annotations

import argparse
import os
from collections.abc import AsyncIterator

import aiohttp
import jwt
from aiohttp import web

PASS: tuple[str, ...] = ("offset", "handle", "live", "cursor")


class BareProxy:
    def __init__(self, secret: str, upstream: str) -> None:
        self.secret, self.upstream = secret, upstream
        self.session: aiohttp.ClientSession | None = None

    async def lifetime(self, app: web.Application) -> AsyncIterator[None]:
        self.session = aiohttp.ClientSession(
            auto_decompress=False, connector=aiohttp.TCPConnector(limit=0)
        )
        yield
        await self.session.close()

    async def shape(self, request: web.Request) -> web.StreamResponse:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        try:
            claims = jwt.decode(token, self.secret, algorithms=["HS256"])
        except jwt.PyJWTError:
            return web.json_response({"error": "invalid_token"}, status=401)
        query = {k: request.query[k] for k in PASS if k in request.query}
        query |= {"table": "public.items", "where": "tenant_id = $1", "params[1]": claims["tid"]}
        assert self.session is not None
        async with self.session.get(self.upstream + "/v1/shape", params=query) as upstream:
            response = web.StreamResponse(status=upstream.status)
            for name, value in upstream.headers.items():
                if name.lower().startswith("electric-") or name.lower() in ("etag", "content-type"):
                    response.headers[name] = value
            await response.prepare(request)
            async for chunk in upstream.content.iter_any():
                await response.write(chunk)
            await response.write_eof()
            return response


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--upstream", required=True)
    args = parser.parse_args()
    proxy = BareProxy(os.environ["JWT_SECRET"], args.upstream)
    app = web.Application()
    app.cleanup_ctx.append(proxy.lifetime)
    app.router.add_get("/v1/shape", proxy.shape)
    import uvloop  # noqa: PLC0415 - the `speed` extra

    web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=None,
                loop=uvloop.new_event_loop())  # fmt: skip


if __name__ == "__main__":
    main()
