"""A page that uses the client package as an app would, for the package's browser tests.

`python -m tests.browser.harness --port 0` serves, on loopback:

- `/`: a page whose import map points at the built package (`/client/`, clients/js/dist) and
  the stock client it was built against (`/electric/`), and whose script (`APP` below) gives
  the tests a small app: start a client, sync shapes into `indexedDbStore`, switch tenants,
  encrypt and decrypt, and record what the client reported;
- `POST /token`: a token for the claims in the body, signed with HARNESS_JWT_SECRET (the
  gateway's JWT_SECRET): what an app's backend does; `iat_offset` moves its issue time.

Prints `harness listening on URL` once it serves.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from pathlib import Path
from typing import Any, Final

import jwt
from aiohttp import web

ROOT: Final = Path(__file__).resolve().parent.parent.parent
PACKAGE_DIST: Final = ROOT / "clients" / "js" / "dist"
ELECTRIC_DIST: Final = (
    ROOT / "clients" / "js" / "node_modules" / "@electric-sql" / "client" / "dist"
)

PAGE: Final = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>client package harness</title>
<link rel="icon" href="data:,">
<script type="importmap">
{"imports": {"@electric-sql/client": "/electric/index.browser.mjs",
             "@shape-gateway/client": "/client/index.js"}}
</script>
<script type="module" src="/app.js"></script>
</head><body><p>@shape-gateway/client in a browser</p></body></html>
"""

APP: Final = """
import { createGatewayClient, indexedDbStore } from "@shape-gateway/client"

const stores = indexedDbStore("harness")
const app = { ended: [], resumed: [], tokens: 0, streams: {}, client: null, store: null }
window.app = app

async function mint(claims) {
  app.tokens++
  const response = await fetch("/token", {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(claims),
  })
  return (await response.json()).token
}

// options: gateway, claims (minted on every call of the token function) or token (fixed),
// firstTtl (the first token's lifetime), tenant, user, shapes [{name, live}], localKey,
// expiryInterval, feed
app.start = async (options) => {
  let first = true
  const token = options.token ?? (() => {
    const ttl = first && options.firstTtl ? options.firstTtl : 600
    first = false
    return mint({ ...options.claims, ttl })
  })
  const client = createGatewayClient({
    url: options.gateway, token, tenant: options.tenant, user: options.user,
    storage: localStorage, localKey: options.localKey ?? "memory", feed: options.feed ?? true,
    expiryInterval: options.expiryInterval ?? 60000,
  })
  app.client = client
  client.onAccessEnded((e) => void app.ended.push({
    code: e.code, tenant: e.tenant, event: e.event?.type ?? null, error: e.error?.code ?? null,
  }))
  client.onAccessResumed((e) => void app.resumed.push(e.tenant))
  await app.open(options.shapes ?? [])
}

app.open = async (shapes) => {
  app.store = await stores.open(app.client)
  for (const { name, live = true } of shapes) {
    const stream = app.client.shape(name, { ...app.store.resume(name), subscribe: live })
    stream.subscribe((messages) => app.store.apply(name, stream, messages), () => {})
    app.streams[name] = stream
  }
}

app.switchTo = async (tenant, shapes) => {
  await app.client.switchTenant(tenant)
  await app.open(shapes)
}

app.titles = (name) => [...(app.store?.shape(name).rows.values() ?? [])].map((r) => r.title).sort()
app.synced = (name) => Boolean(app.streams[name]?.isUpToDate)

// Everything kept in IndexedDB: {database: {store: [records]}}; CryptoKeys as their algorithm.
app.databases = async () => {
  const result = (request) => new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result)
    request.onerror = () => reject(request.error)
  })
  const dump = {}
  for (const { name } of await indexedDB.databases()) {
    const db = await result(indexedDB.open(name))
    dump[name] = {}
    for (const store of db.objectStoreNames) {
      const records = await result(db.transaction(store).objectStore(store).getAll())
      dump[name][store] = records.map((r) => (r?.key instanceof CryptoKey
        ? { ...r, key: { extractable: r.key.extractable, algorithm: r.key.algorithm.name } } : r))
    }
    db.close()
  }
  return dump
}

// A value encrypted with the local key, kept in localStorage across reloads.
app.seal = async (value) => {
  const sealed = await app.client.encrypt(value)
  localStorage.setItem("sealed", sealed)
  return sealed
}
app.unseal = async () => {
  try {
    return { value: await app.client.decrypt(localStorage.getItem("sealed")) }
  } catch (error) {
    return { error: error.name, code: error.code ?? null }
  }
}

app.hasDatabase = async (name) => (await indexedDB.databases()).some((d) => d.name === name)
app.storedRows = async (name) => (await app.databases())[name]?.rows ?? []

window.appReady = true
"""


async def page(request: web.Request) -> web.Response:
    return web.Response(text=PAGE, content_type="text/html", headers={"Cache-Control": "no-store"})


async def app_script(request: web.Request) -> web.Response:
    return web.Response(text=APP, content_type="text/javascript")


async def token(request: web.Request) -> web.Response:
    body: dict[str, Any] = await request.json()
    now = int(time.time()) + int(body.pop("iat_offset", 0))
    lifetime = int(body.pop("ttl", 600))
    claims = {**body, "iat": now, "exp": now + lifetime}
    signed = jwt.encode(claims, request.app[SECRET], "HS256")
    return web.json_response({"token": signed}, headers={"Cache-Control": "no-store"})


SECRET: Final = web.AppKey("secret", str)


def make_app(secret: str) -> web.Application:
    app = web.Application()
    app[SECRET] = secret
    app.router.add_get("/", page)
    app.router.add_get("/app.js", app_script)
    app.router.add_post("/token", token)
    app.router.add_static("/client/", PACKAGE_DIST)
    app.router.add_static("/electric/", ELECTRIC_DIST)
    return app


async def main(port: int) -> None:
    runner = web.AppRunner(make_app(os.environ["HARNESS_JWT_SECRET"]), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    host, bound = runner.addresses[0][:2]
    print(f"harness listening on http://{host}:{bound}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    asyncio.run(main(parser.parse_args().port))
