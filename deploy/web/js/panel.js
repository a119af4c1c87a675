// One person's panel: their shapes, synced through the gateway by @shape-gateway/client (the
// stock ShapeStream, token refresh, the revocation feed) into its IndexedDB store, which the
// client deletes the moment access ends.
//
// Local rows are shown only once the gateway has answered for this person in this run: after
// a revocation while the tab was closed, a reload must not flash data the person no longer may
// see. When the gateway cannot be reached at all, the local copy is shown, marked offline.

import { createGatewayClient, indexedDbStore } from "@shape-gateway/client"
import { isChangeMessage } from "@electric-sql/client"
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
const STORES = indexedDbStore("shape-gateway-demo") // one database per person and tenant
const MESSAGE = {
  access_revoked: (who) => `An admin revoked ${who.user}'s membership in ${who.tenant}.`,
  tenant_suspended: (who) => `An admin suspended tenant ${who.tenant}.`,
  session_revoked: (who) => `${who.user}'s session was ended.`,
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
    this.view.log(`signed in as ${this.user} (${this.transport.mode})`)
    return this.start()
  }

  async signOut() {
    const client = this.run?.client
    this.stop()
    this.view.clear()
    await client?.signOut() // a shared computer keeps nothing of a person who signed out
    await this.transport.signOut()
    this.setState("signed-out")
    this.view.show({ kind: "info", title: "Signed out", message: "Local data deleted." })
  }

  stop() {
    void this.run?.client.close()
    this.run = null
  }

  async start() {
    this.stop()
    const { sub: user, tid: tenant } = this.transport.claims
    const client = createGatewayClient({
      url: this.transport.gateway,
      token: this.transport.tokens(),
      tenant,
      user,
      storage: sessionStorage,
      reconnect: { maxDelay: 2000 }, // a demo: a reinstated tenant comes back within 2 s
    })
    const run = { client, shapes: {}, ended: false, confirmed: false }
    this.run = run
    client.onEvent((event) => run === this.run && this.logEvent(event))
    client.onAccessEnded((ended) => this.ended(run, ended))
    client.onAccessResumed(({ event }) => {
      this.view.log(`${event.tenant} reinstated: starting again`)
      if (run === this.run) this.start()
    })
    this.view.clear()
    this.view.show(null)
    this.setState("checking")
    run.store = await STORES.open(client)
    if (run !== this.run || run.ended) return
    for (const spec of SHAPES) {
      run.shapes[spec.name] = { spec, ...run.store.shape(spec.name) }
      const stream = client.shape(spec.name, {
        ...run.store.resume(spec.name),
        subscribe: spec.live,
        fetchClient: (input, init) => this.fetch(run, spec.name, input, init),
        onError: (error) => this.shapeError(run, spec.name, error),
      })
      stream.subscribe((messages) => this.apply(run, spec.name, stream, messages), () => {})
    }
  }

  current(run) {
    return run === this.run && !run.ended ? run : null
  }

  // The gateway answered for this person: what is stored may be shown.
  confirm(run) {
    if (!this.current(run) || run.confirmed) return
    run.confirmed = true
    this.setState("live")
    for (const [name, shape] of Object.entries(run.shapes)) this.view.shape(name, shape)
  }

  // Every shape request goes through here: the page reads the headers CORS exposes to it.
  async fetch(run, name, input, init) {
    let response
    try {
      response = await fetch(input, init)
    } catch (error) {
      // Unreachable (not stopped: the client aborts a tenant's shapes when access ends).
      if (this.current(run) && !run.confirmed && !init?.signal?.aborted) {
        this.setState("offline") // the gateway is unreachable: show the local copy, say so
        for (const [shape, stored] of Object.entries(run.shapes)) this.view.shape(shape, stored)
      }
      throw error
    }
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

  async apply(run, name, stream, messages) {
    if (!this.current(run)) return
    const shape = run.shapes[name]
    const fresh = stream.isUpToDate
      ? messages.filter((m) => isChangeMessage(m) && m.headers.operation === "insert").map((m) => m.key)
      : []
    await run.store.apply(name, stream, messages)
    shape.upToDate ||= stream.isUpToDate
    if (run.confirmed) this.view.shape(name, shape, new Set(fresh))
    for (const key of fresh) this.view.log(`${name}: ${shape.rows.get(key)?.title ?? key} arrived`)
  }

  shapeError(run, name, error) {
    if (!this.current(run)) return
    const code = error.code ?? error.json?.error ?? error.name
    this.view.log(`${name}: HTTP ${error.status ?? "-"} ${code}: ${error.message}`)
    this.view.shapeError(name, `HTTP ${error.status ?? "-"} ${code}: ${error.json?.message ?? error.message}`)
    return error.status >= 500 || error.status === 429 ? {} : undefined
  }

  logEvent(event) {
    this.view.log(`feed: ${event.type} ${event.user ?? ""}${event.tenant ? `@${event.tenant}` : ""} (event ${event.id})`)
  }

  // The client has stopped the shapes and deleted the local store: say so. The gateway ends the
  // feed after the event that ended access; after a suspension the client keeps asking for it
  // (every 2 s at most here), so a reinstated tenant comes back by itself (onAccessResumed).
  ended(run, { code, event, error }) {
    if (!this.current(run)) return
    run.ended = true
    for (const shape of Object.values(run.shapes)) shape.rows.clear()
    this.view.clear()
    // Timed from the admin's click only when that click ended access (a reinstatement or a
    // restore deletes nothing, even if this panel learns of an older revocation just after).
    const action = this.clock.lastAction
    const since = action && ["revoke", "suspend"].includes(action.action) && performance.now() - action.at < 10000
      ? `${Math.round(performance.now() - action.at)} ms after the admin clicked "${action.label}"`
      : null
    const via = event
      ? `the ${event.type} event on /v1/events (${event.id})`
      : `a ${error.status} ${error.code} (the gateway's JSON, read by this page)`
    this.setState("ended")
    this.view.root.dataset.ended = code
    this.view.show({
      kind: "ended",
      title: code,
      message: error?.json?.message ?? MESSAGE[code]({ user: this.user, tenant: this.person.tenant }),
      details: [`Local data deleted${since ? `, ${since}` : ""}.`, `Learned from ${via}.`],
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
