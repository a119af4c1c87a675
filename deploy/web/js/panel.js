// One person's panel: their shapes, synced by the stock @electric-sql/client into the local
// store, and the gateway's revocation feed, which stops the shapes and deletes the local data
// the moment access ends.
//
// Local rows are shown only once the gateway has answered for this person in this run (its
// feed or a shape): after a revocation while the tab was closed, a reload must not flash data
// the person no longer may see. When the gateway cannot be reached at all, the local copy is
// shown, marked offline.

import { ShapeStream, isChangeMessage, isControlMessage } from "@electric-sql/client"
import { LocalStore } from "./store.js"
import { readSse, FeedRefused } from "./sse.js"
import { transportFor } from "./transport.js"
import { PanelView } from "./view.js"

// Over HTTP/1.1 a browser opens at most 6 connections per origin, and every live shape holds
// one (so does the feed): two panels with a live tasks shape and a feed each use 4 of the
// gateway's 6, leaving room for the one-off syncs. Behind HTTP/2 every shape can be live.
export const SHAPES = [
  { name: "tasks", title: "Tasks", live: true },
  { name: "drafts", title: "My drafts", live: false },
  { name: "projects", title: "Projects", live: false },
  { name: "documents", title: "Documents", live: false },
  { name: "countries", title: "Countries", live: false },
]
// Refusals meaning "this tenant's data is no longer yours": stop and delete (docs/http-api.md).
const ENDS_ACCESS = new Set(["access_revoked", "tenant_suspended", "session_revoked"])
const EVENT_CODE = {
  "membership.revoked": "access_revoked",
  "tenant.suspended": "tenant_suspended",
  "session.revoked": "session_revoked",
}

export class Panel {
  constructor(root, { config, user, clock, onSwitch }) {
    this.user = user
    this.clock = clock
    this.transport = transportFor(config, user)
    this.person = config.people.find((p) => p.user === user)
    this.view = new PanelView(root, {
      user,
      person: this.person,
      people: config.people,
      shapes: SHAPES,
      handlers: {
        toggleSession: () => (this.transport.claims ? this.signOut() : this.signIn()),
        switchTo: (other) => onSwitch(other),
        addTask: (form) => this.addTask(form),
      },
    })
    this.run = null
    this.setState("signed-out")
  }

  setState(state) {
    this.state = state
    this.view.state(state, Boolean(this.transport.claims))
  }

  get scope() {
    const claims = this.transport.claims
    return `${claims.sub}@${claims.tid}`
  }

  // On page load: resume the stored session, or sign in as this panel's person.
  async open() {
    if (this.transport.claims) return this.start()
    return this.signIn()
  }

  async signIn() {
    this.stop()
    try {
      await this.transport.signIn()
    } catch (error) {
      this.setState("signed-out")
      this.view.show({ kind: "error", title: `Cannot sign in (${error.code ?? error.status})`, message: error.message })
      return
    }
    sessionStorage.removeItem(`demo:last-event:${this.scope}`) // a new token: nothing to replay
    this.view.log(`signed in as ${this.user} (${this.transport.mode})`)
    return this.start()
  }

  async signOut() {
    const store = this.transport.claims ? new LocalStore(this.scope) : null
    this.stop()
    this.view.clear()
    await store?.wipe() // a shared computer keeps nothing of a person who signed out
    await this.transport.signOut()
    this.setState("signed-out")
    this.view.show({ kind: "info", title: "Signed out", message: "Local data deleted." })
  }

  stop() {
    if (!this.run) return
    this.run.feed.abort()
    for (const shape of Object.values(this.run.shapes)) shape.controller.abort()
    this.run = null
  }

  async start() {
    this.stop()
    const run = { shapes: {}, feed: new AbortController(), ended: false, confirmed: false, retried: 0 }
    this.run = run
    this.store = new LocalStore(this.scope)
    this.view.clear()
    this.view.show(null)
    this.setState("checking")
    const saved = await this.store.load()
    if (run !== this.run) return
    for (const spec of SHAPES) {
      const stored = saved[spec.name] ?? { rows: new Map() }
      run.shapes[spec.name] = { spec, ...stored, controller: new AbortController() }
    }
    this.follow(run)
    for (const spec of SHAPES) this.sync(run, spec.name)
  }

  current(run) {
    return run === this.run && !run.ended
  }

  // The gateway answered for this person: what is stored may be shown.
  confirm(run) {
    if (!this.current(run) || run.confirmed) return
    run.confirmed = true
    this.setState("live")
    for (const [name, shape] of Object.entries(run.shapes)) this.view.shape(name, shape)
  }

  sync(run, name) {
    const shape = run.shapes[name]
    const stream = new ShapeStream({
      url: this.transport.shapeUrl,
      params: { table: name },
      headers: this.transport.shapeHeaders(),
      ...(shape.handle ? { handle: shape.handle, offset: shape.offset } : {}),
      subscribe: shape.spec.live,
      signal: shape.controller.signal,
      fetchClient: (input, init) => this.fetch(run, name, input, init),
      onError: (error) => this.shapeError(run, name, error),
    })
    stream.subscribe(
      (messages) => this.apply(run, name, stream, messages),
      () => {}, // reported through onError
    )
  }

  // Every shape request goes through here: the page reads the headers CORS exposes to it.
  async fetch(run, name, input, init) {
    const response = await fetch(input, init)
    if (!this.current(run)) return response
    const headers = response.headers
    const schema = headers.get("electric-schema")
    if (schema) run.shapes[name].columns = Object.keys(JSON.parse(schema))
    this.view.wire(name, {
      status: String(response.status),
      handle: headers.get("electric-handle"),
      offset: headers.get("electric-offset"),
      requestId: headers.get("x-request-id"),
      cacheControl: headers.get("cache-control"),
    })
    if (response.ok) this.confirm(run)
    return response
  }

  apply(run, name, stream, messages) {
    if (!this.current(run)) return
    const shape = run.shapes[name]
    const upserts = new Map()
    const deletes = new Set()
    const fresh = new Set()
    let reset = false
    for (const message of messages) {
      if (isChangeMessage(message)) {
        const { key, value } = message
        const operation = message.headers.operation
        if (operation === "delete") {
          shape.rows.delete(key)
          upserts.delete(key)
          deletes.add(key)
        } else {
          const row = { ...(operation === "update" ? shape.rows.get(key) : {}), ...value }
          shape.rows.set(key, row)
          upserts.set(key, row)
          deletes.delete(key)
          if (operation === "insert" && stream.isUpToDate) fresh.add(key)
        }
      } else if (isControlMessage(message) && message.headers.control === "must-refetch") {
        shape.rows.clear()
        upserts.clear()
        deletes.clear()
        reset = true
      }
    }
    shape.handle = stream.shapeHandle
    shape.offset = stream.lastOffset
    shape.upToDate ||= stream.isUpToDate
    const { handle, offset, columns } = shape
    this.store.save(name, { upserts: [...upserts], deletes: [...deletes], reset, handle, offset, columns })
    if (run.confirmed) this.view.shape(name, shape, fresh)
    for (const key of fresh) this.view.log(`${name}: ${shape.rows.get(key)?.title ?? key} arrived`)
  }

  async shapeError(run, name, error) {
    if (!this.current(run)) return
    const body = error.json ?? {}
    const code = body.error ?? error.name
    this.view.log(`${name}: HTTP ${error.status ?? "-"} ${code}${body.message ? `: ${body.message}` : ""}`)
    if (ENDS_ACCESS.has(body.error)) {
      await this.endAccess(run, {
        code: body.error,
        message: body.message,
        via: `the ${name} shape's ${error.status} (the gateway's JSON, read by this page)`,
      })
      return
    }
    if (error.status === 401 && run.retried++ < 2) {
      // Expired, stale or unknown token: the app issues a new one and the stream goes on.
      await this.transport.signIn().catch(() => {})
      return {}
    }
    this.view.shapeError(name, `HTTP ${error.status ?? "-"} ${code}: ${body.message ?? error.message}`)
    return error.status >= 500 || error.status === 429 ? {} : undefined
  }

  // The revocation feed, read with fetch so the Authorization header (or cookie) goes along.
  async follow(run) {
    const key = `demo:last-event:${this.scope}`
    let delay = 500
    while (run === this.run) {
      try {
        const last = sessionStorage.getItem(key)
        const headers = { ...this.transport.headers(), ...(last ? { "Last-Event-ID": last } : {}) }
        const events = readSse(this.transport.eventsUrl, {
          headers,
          signal: run.feed.signal,
          onOpen: () => {
            delay = 500
            this.view.log("feed: connected to /v1/events")
            this.confirm(run)
          },
        })
        for await (const event of events) {
          if (event.id) sessionStorage.setItem(key, event.id)
          await this.onEvent(run, JSON.parse(event.data))
        }
      } catch (error) {
        if (run.feed.signal.aborted) return
        if (error instanceof FeedRefused) {
          this.view.log(`feed: HTTP ${error.status} ${error.code}: ${error.message}`)
          if (ENDS_ACCESS.has(error.code)) {
            await this.endAccess(run, {
              code: error.code,
              message: error.message,
              via: `/v1/events' ${error.status} (the gateway's JSON, read by this page)`,
            })
            if (error.code !== "tenant_suspended") return
            // The feed ends with the access; a suspension may be lifted: ask again every 2 s.
            // Once reinstated, the feed is admitted and replays the reinstatement (onEvent).
            delay = 2000
          }
          if (error.status === 401) await this.transport.signIn().catch(() => {}) // expired, stale
        } else if (!run.confirmed && this.current(run)) {
          this.setState("offline")
          for (const [name, shape] of Object.entries(run.shapes)) this.view.shape(name, shape)
        }
      }
      await new Promise((resolve) => setTimeout(resolve, delay))
      delay = Math.min(delay * 2, 10000)
    }
  }

  async onEvent(run, event) {
    const claims = this.transport.claims
    this.view.log(`feed: ${event.type} ${event.user ?? ""}${event.tenant ? `@${event.tenant}` : ""} (event ${event.id})`)
    const forMe = !event.user || event.user === claims.sub
    const forMyTenant = !event.tenant || event.tenant === claims.tid
    if (!forMe || !forMyTenant) return
    if (event.type === "tenant.reinstated") {
      if (this.state === "ended") this.start()
      return
    }
    // Only events at or after this token's issue second affect it (a newer token was granted).
    if (event.type !== "tenant.suspended" && event.at < claims.iat) return
    if (event.type === "role.changed") {
      this.view.log("role changed: signing in again")
      await this.signIn()
      return
    }
    const code = EVENT_CODE[event.type]
    if (!code) return
    if (event.type === "session.revoked" && event.session && event.session !== claims.sid) return
    const message = {
      access_revoked: `An admin revoked ${event.user}'s membership in ${event.tenant}.`,
      tenant_suspended: `An admin suspended tenant ${event.tenant}.`,
      session_revoked: `${event.user}'s session was ended.`,
    }[code]
    await this.endAccess(run, { code, message, via: `the ${event.type} event on /v1/events (${event.id})` })
  }

  // Stop the shapes, delete everything stored for this scope, say so. The gateway ends the feed
  // after the event that ended the access; for a suspension `follow` keeps asking, so a
  // reinstated tenant comes back by itself.
  async endAccess(run, { code, message, via }) {
    if (!this.current(run)) return
    run.ended = true
    for (const shape of Object.values(run.shapes)) {
      shape.controller.abort()
      shape.rows.clear()
    }
    this.view.clear()
    await this.store.wipe()
    const action = this.clock.lastAction
    const since = action && performance.now() - action.at < 10000
      ? `${Math.round(performance.now() - action.at)} ms after the admin clicked "${action.label}"`
      : null
    this.setState("ended")
    this.view.root.dataset.ended = code
    this.view.show({
      kind: "ended",
      title: code,
      message,
      details: [
        `Local data deleted${since ? `, ${since}` : ""}.`,
        `Learned from ${via}.`,
      ],
      actions: [
        code === "tenant_suspended"
          ? { label: "Try again", run: () => this.start() }
          : { label: "Sign in again", run: () => this.signIn() },
      ],
    })
    this.view.note("")
    this.view.log(`${code}: shapes stopped, local data deleted`)
  }

  async addTask(form) {
    const task = { title: String(form.get("title")), assigned_to: String(form.get("assigned_to")) }
    this.view.note("Writing to PostgreSQL…")
    try {
      const { id } = await this.transport.addTask(task)
      this.view.note(`Task #${id} written; it arrives through Electric and the gateway.`)
      this.view.form.reset()
    } catch (error) {
      this.view.note(`Not written: ${error.message}`)
    }
  }
}
