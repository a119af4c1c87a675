// The client against a real gateway, in front of the Electric imitation on PostgreSQL:
// token refresh, the revocation feed (fold, resume, reconnection), refusals acting like events,
// switching tenants, the local key. tests/client/test_package.py starts the processes and runs
// this file with their addresses; without them it skips, saying so.
//
// Environment: SHAPE_GATEWAY_URL, SHAPE_GATEWAY_JWT_SECRET, SHAPE_GATEWAY_ADMIN_TOKEN and
// SHAPE_GATEWAY_FIXTURE (the driver's helper: POST /insert writes a task row).
import assert from "node:assert/strict"
import { createHmac } from "node:crypto"
import { afterEach, describe, test } from "node:test"

import { FetchError } from "@electric-sql/client"

import { GatewayError, LocalKeyError, createGatewayClient as create } from "../dist/index.js"

const GATEWAY = process.env.SHAPE_GATEWAY_URL
const SECRET = process.env.SHAPE_GATEWAY_JWT_SECRET
const ADMIN = process.env.SHAPE_GATEWAY_ADMIN_TOKEN
const FIXTURE = process.env.SHAPE_GATEWAY_FIXTURE
const skip = GATEWAY && SECRET && ADMIN && FIXTURE ? false : "needs a running gateway: run tests/client/test_package.py"
const TIMEOUT = { timeout: 30_000 }

// --- helpers -------------------------------------------------------------------------------

/** Clients are closed after each test, passed or failed, so nothing keeps this file running. */
const opened = []
function createGatewayClient(options) {
  const client = create(options)
  opened.push(client)
  return client
}
afterEach(async () => {
  await Promise.all(opened.splice(0).map((client) => client.close()))
})

const base64url = (value) => Buffer.from(value).toString("base64url")
const now = () => Math.floor(Date.now() / 1000)

/** An HS256 token for the gateway's JWT_SECRET. */
function mint({ sub = "alice", tid = "acme", role = "member", ttl = 600, iat = now(), ...claims } = {}) {
  const header = base64url(JSON.stringify({ alg: "HS256", typ: "JWT" }))
  const payload = base64url(JSON.stringify({ sub, tid, role, iat, exp: iat + ttl, ...claims }))
  const signature = createHmac("sha256", SECRET).update(`${header}.${payload}`).digest("base64url")
  return `${header}.${payload}.${signature}`
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

async function until(what, predicate, within = 5000) {
  const deadline = Date.now() + within
  for (;;) {
    const value = await predicate()
    if (value) return value
    if (Date.now() > deadline) assert.fail(`no ${what} within ${within} ms`)
    await sleep(20)
  }
}

async function publish(event) {
  const response = await fetch(new URL("/admin/revocations", GATEWAY), {
    method: "POST",
    headers: { Authorization: `Bearer ${ADMIN}`, "Content-Type": "application/json" },
    body: JSON.stringify(event),
  })
  const body = await response.text()
  assert.equal(response.status, 202, body)
  return JSON.parse(body).id
}

async function insertTask(task) {
  const response = await fetch(new URL("/insert", FIXTURE), {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(task),
  })
  if (response.status !== 201) assert.fail(await response.text())
}

let nextId = 100
const newTaskId = () => nextId++

/** A fetch that records every exchange: url, method, request headers, status. */
function recorder(inner = fetch) {
  const log = []
  const recorded = async (input, init = {}) => {
    const entry = { url: new URL(typeof input === "string" ? input : input.url ?? String(input)), headers: new Headers(init.headers), at: Date.now() }
    log.push(entry)
    try {
      const response = await inner(input, init)
      entry.status = response.status
      return response
    } catch (error) {
      entry.error = String(error)
      throw error
    }
  }
  recorded.log = log
  recorded.shapes = () => log.filter((e) => e.url.pathname === "/v1/shape")
  recorded.feeds = () => log.filter((e) => e.url.pathname === "/v1/events")
  return recorded
}

/** A fetch whose /v1/events bodies reach the client as a slow network delivers them: each event
 * and comment in a read of its own, `pause` ms after the one before. `breakAfter(text)` (what
 * this connection delivered so far) may break the stream off, as a lost connection does.
 * `connections` holds each feed connection's text. Wraps a recorder. */
function slowFeed(pause, { breakAfter = () => false } = {}) {
  const connections = []
  const slowed = recorder(async (input, init) => {
    const response = await fetch(input, init)
    const path = new URL(typeof input === "string" ? input : input.url).pathname
    if (path !== "/v1/events" || response.status !== 200) return response
    const connection = { text: "" }
    connections.push(connection)
    const reader = response.body.getReader()
    const decoder = new TextDecoder()
    const encoder = new TextEncoder()
    const pieces = []
    let buffer = ""
    let ended = false
    const body = new ReadableStream({
      async pull(controller) {
        while (pieces.length === 0 && !ended) {
          const { value, done } = await reader.read()
          if (done) ended = true
          else buffer += decoder.decode(value, { stream: true })
          for (let end = buffer.indexOf("\n\n"); end >= 0; end = buffer.indexOf("\n\n")) {
            pieces.push(buffer.slice(0, end + 2))
            buffer = buffer.slice(end + 2)
          }
        }
        if (pieces.length === 0) return controller.close()
        await sleep(pause)
        const piece = pieces.shift()
        connection.text += piece
        controller.enqueue(encoder.encode(piece))
        if (breakAfter(connection.text, connections.length)) {
          reader.cancel().catch(() => {})
          controller.error(new TypeError("network error: the connection was lost"))
        }
      },
      cancel: (reason) => reader.cancel(reason),
    })
    return new Response(body, { status: response.status, headers: response.headers })
  })
  slowed.connections = connections
  return slowed
}

/** Rows a subscriber holds, by key. */
function follow(stream) {
  const rows = new Map()
  const errors = []
  stream.subscribe(
    (messages) => {
      for (const message of messages) {
        if (!("key" in message)) continue
        if (message.headers.operation === "delete") rows.delete(message.key)
        else rows.set(message.key, { ...rows.get(message.key), ...message.value })
      }
    },
    (error) => errors.push(error),
  )
  return { rows, errors, titles: () => [...rows.values()].map((r) => r.title).sort() }
}

/** A store that records what the client asks of it. */
function fakeStore(tenant) {
  const store = { tenant, cleared: 0, expired: 0, clear: () => void store.cleared++, expire: () => void store.expired++ }
  return store
}

function mapStorage() {
  const items = new Map()
  return { items, getItem: (k) => items.get(k) ?? null, setItem: (k, v) => void items.set(k, v), removeItem: (k) => void items.delete(k) }
}

// --- tests ---------------------------------------------------------------------------------

describe("through a real gateway", { skip }, () => {
  test("a token that expires mid live sync is fetched again and the shape goes on where it was", TIMEOUT, async () => {
    let calls = 0
    const http = recorder()
    const client = createGatewayClient({
      url: GATEWAY,
      feed: false,
      fetch: http,
      token: async () => mint({ sub: "ivan", ttl: ++calls === 1 ? 3 : 600 }),
    })
    const tasks = client.shape("tasks")
    const synced = follow(tasks)
    await insertTask({ id: newTaskId(), tenant: "acme", assigned_to: "ivan", title: "before" })
    await until("snapshot", () => tasks.isUpToDate && synced.rows.size === 1)
    // The first token expires 3 s after it was issued (JWT_LEEWAY=0): a held long-poll is
    // answered 401 token_expired, or the next one is.
    await until("the token function called again", () => calls === 2, 10_000)
    await insertTask({ id: newTaskId(), tenant: "acme", assigned_to: "ivan", title: "after the refresh" })
    await until("the row written after the refresh", () => synced.titles().includes("after the refresh"), 8000)
    assert.equal(calls, 2, "the token function is called once more, and only once")
    const shapes = http.shapes()
    const refused = shapes.findIndex((e) => e.status === 401)
    assert.ok(refused > 0, "a request was refused for the expired token")
    const retry = shapes[refused + 1]
    assert.equal(retry.url.href, shapes[refused].url.href, "the very request is retried")
    assert.notEqual(retry.headers.get("authorization"), shapes[refused].headers.get("authorization"))
    assert.equal(retry.status, 200)
    assert.equal(shapes.filter((e) => e.url.searchParams.get("offset") === "-1").length, 1, "no new snapshot")
    assert.deepEqual(synced.errors, [])
    await client.close()
  })

  test("a replayed suspension and reinstatement end nothing; a live revocation ends access once", TIMEOUT, async () => {
    const token = mint({ sub: "bob", iat: now() - 2 })
    await publish({ type: "tenant.suspended", tenant: "acme" })
    await publish({ type: "tenant.reinstated", tenant: "acme" })
    const http = recorder()
    const client = createGatewayClient({ url: GATEWAY, token, tenant: "acme", user: "bob", fetch: http })
    const store = fakeStore("acme")
    client.registerStore(store)
    const ended = []
    client.onAccessEnded((e) => void ended.push(e))
    const tasks = client.shape("tasks")
    follow(tasks)
    await until("the feed", () => http.feeds().some((e) => e.status === 200))
    await until("the snapshot", () => tasks.isUpToDate)
    await sleep(600) // the replay arrived and was folded
    assert.deepEqual(ended, [])
    assert.equal(store.cleared, 0)
    assert.equal(store.expired, 1, "a registered store is swept at once")
    const before = http.shapes().length
    await sleep(2500) // the live shape goes on polling
    assert.ok(http.shapes().length > before)

    await publish({ type: "membership.revoked", user: "bob", tenant: "acme" })
    await until("access ended", () => ended.length > 0, 3000)
    await sleep(500) // the feed's event and the shape's refusal both came: one call
    assert.equal(ended.length, 1)
    assert.equal(ended[0].code, "access_revoked")
    assert.equal(ended[0].tenant, "acme")
    assert.ok(ended[0].event?.type === "membership.revoked" || ended[0].error?.code === "access_revoked")
    assert.equal(store.cleared, 1)
    const stopped = http.shapes().length
    await sleep(2500)
    assert.equal(http.shapes().length, stopped, "the shape stopped")
    await client.close()
  })

  test("a refused shape request acts like the event: shapes stopped, stores cleared, handler told", TIMEOUT, async () => {
    const token = mint({ sub: "carol", iat: now() - 2 })
    await publish({ type: "membership.revoked", user: "carol", tenant: "acme" })
    const client = createGatewayClient({ url: GATEWAY, token, tenant: "acme", user: "carol", feed: false })
    const acme = fakeStore("acme")
    const globex = fakeStore("globex")
    client.registerStore(acme)
    client.registerStore(globex)
    const ended = []
    client.onAccessEnded((e) => void ended.push(e))
    const tasks = client.shape("tasks")
    const synced = follow(tasks)
    await until("access ended", () => ended.length > 0)
    assert.equal(ended[0].code, "access_revoked")
    assert.equal(ended[0].event, null)
    assert.ok(ended[0].error instanceof GatewayError)
    assert.ok(ended[0].error instanceof FetchError, "a GatewayError is the stock client's FetchError")
    assert.equal(ended[0].error.status, 403)
    assert.deepEqual([acme.cleared, globex.cleared], [1, 0])
    await until("the subscriber told", () => synced.errors.length > 0)
    assert.equal(synced.errors[0].code, "access_revoked")
    // A store registered after the end is cleared at once; a second refusal tells nobody again.
    const late = fakeStore("acme")
    client.registerStore(late)
    assert.equal(late.cleared, 1)
    follow(client.shape("tasks"))
    await sleep(500)
    assert.equal(ended.length, 1)
    await client.close()
  })

  test("a refusal that is no revocation reaches onError as a GatewayError with the code", TIMEOUT, async () => {
    const client = createGatewayClient({ url: GATEWAY, token: mint(), feed: false })
    const seen = []
    const stream = client.shape("salaries", { onError: (error) => void seen.push(error) })
    follow(stream)
    await until("onError", () => seen.length > 0)
    assert.ok(seen[0] instanceof GatewayError)
    assert.equal(seen[0].code, "unknown_shape")
    assert.equal(seen[0].status, 404)
    assert.ok(seen[0].requestId)
    await client.close()
  })

  test("the feed resumes after the last event id kept in storage", TIMEOUT, async () => {
    const storage = mapStorage()
    const tenants = { acme: "member", globex: "member" }
    const token = mint({ sub: "dave", tenants, iat: now() - 2 })
    const first = createGatewayClient({ url: GATEWAY, token, tenant: "acme", user: "dave", storage })
    const seen = await publish({ type: "tenant.reinstated", tenant: "globex" })
    const kept = await until("the kept event id", () => [...storage.items.values()].find((v) => v === seen))
    await first.close()
    const missed = await publish({ type: "tenant.reinstated", tenant: "globex" })
    const http = recorder()
    const again = createGatewayClient({ url: GATEWAY, token, tenant: "acme", user: "dave", storage, fetch: http })
    await until("the feed", () => http.feeds().some((e) => e.status === 200))
    assert.equal(http.feeds()[0].headers.get("last-event-id"), kept)
    await until("the missed event kept", () => [...storage.items.values()].includes(missed))
    await again.signOut()
    assert.equal(storage.items.size, 0, "signing out forgets the position")
  })

  test("the feed reconnects with backoff while the gateway is unreachable, then resumes", TIMEOUT, async () => {
    let failures = 4
    const http = recorder(async (input, init) => {
      const path = new URL(typeof input === "string" ? input : input.url).pathname
      if (path === "/v1/events" && failures-- > 0) throw new TypeError("fetch failed: network down")
      return fetch(input, init)
    })
    const client = createGatewayClient({
      url: GATEWAY, token: mint({ sub: "erin" }), tenant: "acme", user: "erin", fetch: http,
      reconnect: { initialDelay: 200, maxDelay: 5000 },
    })
    await until("the feed", () => http.feeds().some((e) => e.status === 200), 10_000)
    const times = http.feeds().map((e) => e.at)
    const gaps = times.slice(1).map((t, i) => t - times[i])
    assert.equal(gaps.length, 4)
    // Each wait is between half and all of its doubling step: 200, 400, 800, 1600 ms.
    gaps.forEach((gap, i) => assert.ok(gap >= 100 * 2 ** i - 20 && gap <= 200 * 2 ** i + 250, `gap ${i}: ${gap} ms`))
    await client.close()
  })

  test("when the gateway ends the feed it reconnects after the last event it received", TIMEOUT, async () => {
    // The stream is cut after its first event, as a gateway shutting down would end it.
    let cut = 1
    const http = recorder(async (input, init) => {
      const response = await fetch(input, init)
      const path = new URL(typeof input === "string" ? input : input.url).pathname
      if (path !== "/v1/events" || cut-- <= 0) return response
      const reader = response.body.getReader()
      let text = ""
      const body = new ReadableStream({
        async pull(controller) {
          const { value, done } = await reader.read()
          if (done) return controller.close()
          controller.enqueue(value)
          text += new TextDecoder().decode(value)
          if (text.includes("\nid: ")) {
            reader.cancel()
            controller.close()
          }
        },
      })
      return new Response(body, { status: response.status, headers: response.headers })
    })
    const ended = []
    const client = createGatewayClient({ url: GATEWAY, token: mint({ sub: "frank" }), tenant: "acme", user: "frank", fetch: http })
    client.onAccessEnded((e) => void ended.push(e))
    await until("the feed", () => http.feeds().some((e) => e.status === 200))
    const id = await publish({ type: "tenant.reinstated", tenant: "acme" })
    await until("a second connection", () => http.feeds().length >= 2)
    assert.equal(http.feeds()[1].headers.get("last-event-id"), id)
    assert.ok(http.feeds()[1].at - http.feeds()[0].at < 5000)
    assert.deepEqual(ended, [])
    await client.close()
  })

  test("a replay read slower than any timing window is one batch: a suspension and its reinstatement end nothing", TIMEOUT, async () => {
    const tenant = "umbrella" // a tenant of its own: its suspension touches no other test
    const token = mint({ sub: "xena", tid: tenant, iat: now() - 2 })
    await publish({ type: "tenant.suspended", tenant })
    const reinstated = await publish({ type: "tenant.reinstated", tenant })
    // Each event and comment 400 ms after the one before: four times the pause that used to
    // end a batch (100 ms), so the suspension arrives well before its reinstatement.
    const http = slowFeed(400)
    const storage = mapStorage()
    const client = createGatewayClient({ url: GATEWAY, token, tenant, user: "xena", fetch: http, storage })
    const store = fakeStore(tenant)
    client.registerStore(store)
    const ended = []
    client.onAccessEnded((e) => void ended.push(e))
    await until("the end of the replay", () => http.connections[0]?.text.includes(": replayed 2\n\n"), 8000)
    await until("the replay acted on", () => [...storage.items.values()].includes(reinstated))
    const text = http.connections[0].text
    assert.ok(text.indexOf("event: tenant.suspended") < text.indexOf("event: tenant.reinstated"))
    assert.deepEqual(ended, [])
    assert.equal(store.cleared, 0)
    // After the replay every event is live and acted on as it arrives, on its own.
    await publish({ type: "tenant.suspended", tenant })
    await until("access ended", () => ended.length > 0, 3000)
    await sleep(500) // the feed's event and its refused reconnection both came: one call
    assert.equal(ended.length, 1)
    assert.equal(ended[0].code, "tenant_suspended")
    assert.equal(ended[0].tenant, tenant)
    assert.equal(store.cleared, 1)
    await client.close()
    await publish({ type: "tenant.reinstated", tenant })
  })

  test("a replay broken off after a suspension goes on with the next connection, and its reinstatement ends nothing", TIMEOUT, async () => {
    const tenant = "hooli"
    const token = mint({ sub: "yuri", tid: tenant, iat: now() - 2 })
    const suspended = await publish({ type: "tenant.suspended", tenant })
    const reinstated = await publish({ type: "tenant.reinstated", tenant })
    // The first connection is lost right after the suspension, before the rest of the replay.
    const http = slowFeed(0, { breakAfter: (text, n) => n === 1 && text.includes("event: tenant.suspended") })
    const storage = mapStorage()
    const client = createGatewayClient({ url: GATEWAY, token, tenant, user: "yuri", fetch: http, storage })
    const store = fakeStore(tenant)
    client.registerStore(store)
    const ended = []
    client.onAccessEnded((e) => void ended.push(e))
    await until("the replay acted on", () => [...storage.items.values()].includes(reinstated), 8000)
    assert.ok(!http.connections[0].text.includes("tenant.reinstated"), "the first connection broke off before it")
    assert.equal(http.feeds()[1].headers.get("last-event-id"), suspended, "the next went on after the suspension")
    assert.match(http.connections[1].text, /event: tenant\.reinstated\n[^]*: replayed 1\n\n/)
    assert.deepEqual(ended, [])
    assert.equal(store.cleared, 0)
    await client.close()
  })

  test("switchTenant stops the tenant's shapes and the next shapes read the new tenant", TIMEOUT, async () => {
    const http = recorder()
    const tenants = { acme: "member", globex: "member" }
    const client = createGatewayClient({ url: GATEWAY, token: mint({ tenants }), fetch: http })
    assert.equal((await client.identity()).tenant, "acme") // the token's own, from /v1/memberships
    const acme = client.shape("tasks")
    const acmeRows = follow(acme)
    await until("acme's rows", () => acme.isUpToDate)
    assert.deepEqual(acmeRows.titles(), ["ship", "write spec"])
    const store = fakeStore("acme")
    client.registerStore(store)
    await client.switchTenant("globex")
    assert.equal(client.tenant, "globex")
    const switched = http.log.length
    const globex = client.shape("tasks")
    const globexRows = follow(globex)
    await until("globex's rows", () => globex.isUpToDate)
    assert.deepEqual(globexRows.titles(), ["globex secret plan"])
    await sleep(2500) // acme's live shape would have polled again by now
    const after = http.log.slice(switched).filter((e) => e.url.pathname === "/v1/shape")
    assert.ok(after.length > 0)
    assert.ok(after.every((e) => e.headers.get("x-tenant-id") === "globex"))
    assert.equal(store.cleared, 0, "switching keeps the tenant's data")
    const feed = http.log.slice(switched).find((e) => e.url.pathname === "/v1/events")
    assert.equal(feed?.headers.get("x-tenant-id"), "globex", "the feed follows the active tenant")
    await client.close()
  })

  test("the local key encrypts for this user and tenant only, and is refused once access ended", TIMEOUT, async () => {
    const token = mint({ sub: "gina", iat: now() - 2 })
    const client = createGatewayClient({ url: GATEWAY, token, tenant: "acme", user: "gina", feed: false })
    const sealed = await client.encrypt({ note: "salary 5000" })
    assert.match(sealed, /^gw1:1\.[\w-]+:[\w-]+:[\w-]+$/)
    assert.ok(!sealed.includes("5000"))
    assert.deepEqual(await client.decrypt(sealed), { note: "salary 5000" })
    assert.notEqual(await client.encrypt({ note: "salary 5000" }), sealed, "a fresh iv every time")
    // Another page of the same user and tenant (a reload) gets the same key from the gateway.
    const reloaded = createGatewayClient({ url: GATEWAY, token, tenant: "acme", user: "gina", feed: false })
    assert.deepEqual(await reloaded.decrypt(sealed), { note: "salary 5000" })
    const other = createGatewayClient({ url: GATEWAY, token: mint({ sub: "hal" }), tenant: "acme", user: "hal", feed: false })
    await assert.rejects(other.decrypt(sealed), LocalKeyError)
    // Revoked: a page that has no key yet cannot get one, and access ends.
    await publish({ type: "membership.revoked", user: "gina", tenant: "acme" })
    const after = createGatewayClient({ url: GATEWAY, token, tenant: "acme", user: "gina", feed: false })
    const ended = []
    after.onAccessEnded((e) => void ended.push(e))
    await assert.rejects(after.decrypt(sealed), (error) => error instanceof GatewayError && error.code === "access_revoked")
    assert.equal(ended.length, 1)
    assert.equal(ended[0].error.code, "access_revoked")
    await Promise.all([client.close(), reloaded.close(), other.close(), after.close()])
  })
})
