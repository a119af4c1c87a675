// createGatewayClient: Electric's ShapeStream through shape-gateway, and everything a
// local-first app must do around it when access can end (docs/client.md).

import {
  type GetExtensions,
  type Row,
  ShapeStream,
  type ShapeStreamInterface,
  type ShapeStreamOptions,
} from "@electric-sql/client"

import type { Backoff } from "./backoff.js"
import { type AccessEndedCode, GatewayError, readRefusal } from "./errors.js"
import { type AfterRefusal, Feed, type KeyValueStorage, memoryStorage } from "./feed.js"
import { type RevocationEvent, foldEvents } from "./fold.js"
import { type KeyScope, type LocalKeyAnswer, type LocalKeyMode, LocalKeys } from "./localkey.js"
import { type TokenSource, Tokens } from "./tokens.js"
import { Transport } from "./transport.js"

/** The response header carrying a shape rule's `local_ttl`, in seconds. */
export const LOCAL_TTL_HEADER = "shape-gateway-local-ttl"

export interface GatewayClientOptions {
  /** The gateway's base URL (`https://gateway.example.com`); relative: against the page. */
  url: string
  /** The token, or a function returning it (sync or async), called again when it expired.
   * Omitted: the browser authenticates with the gateway's cookie (GATEWAY_AUTH_COOKIE). */
  token?: TokenSource
  /** The active tenant, sent as X-Tenant-Id; omitted: the token's own. */
  tenant?: string
  /** Where the revocation feed's position is kept across reloads (localStorage,
   * sessionStorage, ...); default: in memory. */
  storage?: KeyValueStorage
  /** The user, as local stores are named; omitted: learned from GET /v1/memberships. Pass it
   * (with `tenant`) so that a start refused for revoked access still finds the local data. */
  user?: string
  /** How the local encryption key is kept: "memory" (default) or "lease". */
  localKey?: LocalKeyMode
  /** Follow the revocation feed (default true). */
  feed?: boolean
  /** Credentials mode of every request (default "include": the cookie, and
   * Clear-Site-Data applied cross-origin too). */
  credentials?: RequestCredentials
  /** The fetch every request goes through (default: the global one). */
  fetch?: typeof fetch
  /** Reconnection of the feed (milliseconds). */
  reconnect?: Partial<Backoff>
  /** How often registered stores are swept for rows past their local_ttl (default 60 s). */
  expiryInterval?: number
}

export interface AccessEnded {
  code: AccessEndedCode
  /** The tenant whose access ended; null: the token's own, which the client never learned. */
  tenant: string | null
  /** The revocation event that said so, or null when a refusal did. */
  event: RevocationEvent | null
  /** The refusal that said so (a shape's, the feed's, the local key's), or null. */
  error: GatewayError | null
}

export interface AccessResumed {
  tenant: string
  event: RevocationEvent
}

/** Local data of one tenant, cleared when access to it ends. */
export interface RegisteredStore {
  tenant: string
  clear(): void | Promise<void>
  /** Drop what is past its local_ttl; called at registration and on a timer. */
  expire?(now: number): unknown
}

export type GatewayShapeOptions<T extends Row<unknown> = Row> = Omit<
  ShapeStreamOptions<GetExtensions<T>>,
  "url" | "params"
> & {
  where?: string
  params?: string[] | Record<`${number}`, string>
  columns?: string[]
  replica?: "default" | "full"
}

export interface Identity {
  user: string
  tenant: string
}

export interface GatewayClient {
  readonly url: string
  /** The active tenant (undefined: the token's own, not learned yet). */
  readonly tenant: string | undefined
  shape<T extends Row<unknown> = Row>(name: string, options?: GatewayShapeOptions<T>): ShapeStream<T>
  onAccessEnded(handler: (ended: AccessEnded) => unknown): () => void
  onAccessResumed(handler: (resumed: AccessResumed) => unknown): () => void
  /** Every revocation event the feed delivered, in order, once the client acted on its batch. */
  onEvent(handler: (event: RevocationEvent) => unknown): () => void
  registerStore(store: RegisteredStore): () => void
  switchTenant(tenant: string): Promise<void>
  /** Stop the shapes, the feed and the timers; local data and the feed's position stay. */
  close(): Promise<void>
  /** Stop everything and delete every tenant's local data, keys and the feed's position. */
  signOut(): Promise<void>
  encrypt(value: unknown): Promise<string>
  decrypt<T = unknown>(text: string): Promise<T>
  identity(): Promise<Identity>
  localTtl(stream: ShapeStreamInterface<never> | ShapeStreamInterface<Row<unknown>>): number | undefined
}

interface ShapeRecord {
  name: string
  tenant: string | undefined
  controller: AbortController
  localTtl: number | undefined
}

const shapes = new WeakMap<object, ShapeRecord>()

function anySignal(signals: (AbortSignal | undefined)[]): AbortSignal {
  const present = signals.filter((s): s is AbortSignal => s !== undefined)
  if (present.length === 1) return present[0] as AbortSignal
  const controller = new AbortController()
  for (const signal of present) {
    if (signal.aborted) controller.abort(signal.reason)
    else signal.addEventListener("abort", () => controller.abort(signal.reason), { once: true })
  }
  return controller.signal
}

class Client implements GatewayClient {
  readonly url: string
  readonly #transport: Transport
  readonly #tokens: Tokens
  readonly #storage: KeyValueStorage
  readonly #keys: LocalKeys
  readonly #feed: Feed | null
  readonly #expiryInterval: number
  #tenant: string | undefined
  #user: string | undefined
  #identity: Promise<Identity> | null = null
  #closed = false
  readonly #shapes = new Set<ShapeRecord>()
  readonly #stores = new Set<RegisteredStore>()
  readonly #ended = new Map<string | null, AccessEndedCode>()
  readonly #endedHandlers = new Set<(ended: AccessEnded) => unknown>()
  readonly #resumedHandlers = new Set<(resumed: AccessResumed) => unknown>()
  readonly #eventHandlers = new Set<(event: RevocationEvent) => unknown>()
  #sweeper: ReturnType<typeof setInterval> | null = null

  constructor(options: GatewayClientOptions) {
    const here = typeof location === "undefined" ? undefined : location.href
    const base = new URL(options.url.endsWith("/") ? options.url : `${options.url}/`, here)
    this.url = base.href
    this.#tokens = new Tokens(options.token)
    this.#transport = new Transport(
      base,
      this.#tokens,
      options.fetch ?? ((input, init) => fetch(input, init)),
      options.credentials ?? "include",
    )
    this.#tenant = options.tenant
    this.#user = options.user
    this.#storage = options.storage ?? memoryStorage()
    this.#expiryInterval = options.expiryInterval ?? 60_000
    this.#keys = new LocalKeys(options.localKey ?? "memory", (tenant) => this.#fetchKey(tenant))
    this.#feed =
      options.feed === false
        ? null
        : new Feed(
            this.#transport,
            {
              batch: (events) => this.#applyEvents(events),
              refused: (error) => this.#feedRefused(error),
              scope: () => this.#feedScope(),
            },
            {
              storage: this.#storage,
              reconnect: { initialDelay: 250, maxDelay: 10_000, ...options.reconnect },
            },
          )
    this.#feed?.start()
  }

  get tenant(): string | undefined {
    return this.#tenant
  }

  // --- shapes ---------------------------------------------------------------------------

  shape<T extends Row<unknown> = Row>(name: string, options: GatewayShapeOptions<T> = {}): ShapeStream<T> {
    if (this.#closed) throw new Error("this client was closed or signed out: create a new one")
    const { where, params, columns, replica, headers, fetchClient, onError, signal, ...rest } = options
    const record: ShapeRecord = {
      name,
      tenant: this.#tenant,
      controller: new AbortController(),
      localTtl: undefined,
    }
    const query: Record<string, unknown> = { table: name }
    if (where !== undefined) query["where"] = where
    if (params !== undefined) query["params"] = params
    if (columns !== undefined) query["columns"] = columns
    if (replica !== undefined) query["replica"] = replica
    const ours: Record<string, string | (() => Promise<string>)> = {}
    if (this.#tokens.present) ours["Authorization"] = () => this.#transport.authorization()
    if (record.tenant !== undefined) ours["X-Tenant-Id"] = record.tenant
    const stream = new ShapeStream<T>({
      ...rest,
      url: this.#transport.url("v1/shape"),
      params: query as ShapeStreamOptions<GetExtensions<T>>["params"],
      headers: { ...headers, ...ours },
      signal: anySignal([record.controller.signal, signal]),
      fetchClient: (input, init) => this.#fetchShape(record, fetchClient, input, init),
      onError: (error) => this.#shapeError(record, error, onError),
    })
    this.#shapes.add(record)
    shapes.set(stream, record)
    record.controller.signal.addEventListener("abort", () => this.#shapes.delete(record))
    return stream
  }

  localTtl(stream: object): number | undefined {
    return shapes.get(stream)?.localTtl
  }

  async #fetchShape(
    record: ShapeRecord,
    fetchClient: typeof fetch | undefined,
    input: RequestInfo | URL,
    init?: RequestInit,
  ): Promise<Response> {
    const response = await this.#transport.send(input, init, { tenant: record.tenant, fetch: fetchClient })
    const ttl = Number(response.headers.get(LOCAL_TTL_HEADER) ?? Number.NaN)
    if (Number.isInteger(ttl) && ttl > 0) record.localTtl = ttl
    const refusal = await readRefusal(response)
    if (refusal === null) return response
    await response.body?.cancel().catch(() => {})
    throw refusal // a FetchError: 5xx and 429 are retried by the stock client, 4xx reach onError
  }

  async #shapeError(
    record: ShapeRecord,
    error: Error,
    onError: ShapeStreamOptions["onError"],
  ): Promise<Awaited<ReturnType<NonNullable<ShapeStreamOptions["onError"]>>>> {
    if (error instanceof GatewayError && error.endsAccess) {
      await this.#refusedAccess(error, record.tenant ?? this.#tenant ?? null)
      return // stop: the tenant's data is no longer this user's
    }
    return onError?.(error)
  }

  // --- access ---------------------------------------------------------------------------

  onAccessEnded(handler: (ended: AccessEnded) => unknown): () => void {
    this.#endedHandlers.add(handler)
    return () => this.#endedHandlers.delete(handler)
  }

  onAccessResumed(handler: (resumed: AccessResumed) => unknown): () => void {
    this.#resumedHandlers.add(handler)
    return () => this.#resumedHandlers.delete(handler)
  }

  onEvent(handler: (event: RevocationEvent) => unknown): () => void {
    this.#eventHandlers.add(handler)
    return () => this.#eventHandlers.delete(handler)
  }

  async #refusedAccess(error: GatewayError, tenant: string | null): Promise<void> {
    if (error.code === "session_revoked") await this.#endSession(null, error)
    else await this.#endAccess(tenant, error.code as AccessEndedCode, null, error)
  }

  /** Stop the tenant's shapes, clear its stores and key, then tell the handlers: once. */
  async #endAccess(
    tenant: string | null,
    code: AccessEndedCode,
    event: RevocationEvent | null,
    error: GatewayError | null,
  ): Promise<void> {
    if (this.#ended.has(tenant)) return
    this.#ended.set(tenant, code)
    for (const record of [...this.#shapes]) {
      if (tenant === null || (record.tenant ?? this.#tenant) === tenant) record.controller.abort()
    }
    const stores = [...this.#stores].filter((store) => tenant === null || store.tenant === tenant)
    const user = this.#user
    await Promise.all([
      ...stores.map(async (store) => store.clear()),
      user === undefined || tenant === null
        ? Promise.resolve()
        : this.#keys.forget(this.#scopeOf(user, tenant)),
    ]).catch((failure: unknown) => console.error("shape-gateway client: clearing local data", failure))
    for (const handler of [...this.#endedHandlers]) {
      try {
        await handler({ code, tenant, event, error })
      } catch (failure) {
        console.error("shape-gateway client: onAccessEnded handler", failure)
      }
    }
  }

  async #endSession(event: RevocationEvent | null, error: GatewayError | null): Promise<void> {
    const tenants = new Set<string>()
    if (this.#tenant !== undefined) tenants.add(this.#tenant)
    for (const store of this.#stores) tenants.add(store.tenant)
    for (const record of this.#shapes) if (record.tenant !== undefined) tenants.add(record.tenant)
    if (tenants.size === 0) await this.#endAccess(null, "session_revoked", event, error)
    for (const tenant of tenants) await this.#endAccess(tenant, "session_revoked", event, error)
    void this.#feed?.stop() // the session is over: nothing more can come for it
  }

  async #resume(tenant: string, event: RevocationEvent): Promise<void> {
    if (this.#ended.get(tenant) !== "tenant_suspended") return
    this.#ended.delete(tenant)
    for (const handler of [...this.#resumedHandlers]) {
      try {
        await handler({ tenant, event })
      } catch (failure) {
        console.error("shape-gateway client: onAccessResumed handler", failure)
      }
    }
  }

  // --- the revocation feed ----------------------------------------------------------------

  async #applyEvents(events: RevocationEvent[]): Promise<void> {
    const verdict = foldEvents(events, this.#tokens.claims())
    if (verdict.roleChanged !== null) this.#tokens.invalidate()
    if (verdict.session !== null) {
      await this.#endSession(verdict.session, null)
    } else {
      if (verdict.sessionToConfirm !== null) await this.#confirmSession(verdict.sessionToConfirm)
      for (const [tenant, { code, event }] of verdict.ended) await this.#endAccess(tenant, code, event, null)
      for (const [tenant, event] of verdict.reinstated) await this.#resume(tenant, event)
    }
    for (const event of events) {
      for (const handler of [...this.#eventHandlers]) {
        try {
          await handler(event)
        } catch (failure) {
          console.error("shape-gateway client: onEvent handler", failure)
        }
      }
    }
  }

  /** A session.revoked naming a session this client cannot see (its token is a cookie): ask. */
  async #confirmSession(event: RevocationEvent): Promise<void> {
    try {
      const response = await this.#transport.request("v1/memberships", {}, { tenant: this.#tenant })
      await response.body?.cancel()
    } catch (error) {
      if (error instanceof GatewayError && error.code === "session_revoked") {
        await this.#endSession(event, error)
      }
    }
  }

  async #feedRefused(error: GatewayError): Promise<AfterRefusal> {
    if (error.endsAccess) {
      await this.#refusedAccess(error, this.#tenant ?? null)
      // A suspension may be lifted: keep asking. A revoked membership or session is final
      // for this token (switchTenant, or a new client after signing in again).
      return error.code === "tenant_suspended" ? "retry" : "stop"
    }
    if (error.status === 401) {
      this.#tokens.invalidate() // ask the token function again
      return "retry"
    }
    return error.status === 429 || error.status >= 500 ? "retry" : "stop"
  }

  async #feedScope(): Promise<{ tenant: string | undefined; storageKey: string | null }> {
    // The position is kept only when the token's issue time is known (a bearer token): the
    // fold then ignores replayed events older than the token. With a cookie it is not: a fresh
    // start replays what is newer than the token, which the gateway picks.
    if (!this.#tokens.present) return { tenant: this.#tenant, storageKey: null }
    const { user } = await this.identity()
    return { tenant: this.#tenant, storageKey: `shape-gateway:last-event-id:${this.url}:${user}` }
  }

  // --- identity and tenants ---------------------------------------------------------------

  identity(): Promise<Identity> {
    if (this.#identity === null) {
      const resolving = this.#resolveIdentity()
      this.#identity = resolving
      resolving.catch(() => {
        if (this.#identity === resolving) this.#identity = null // try again next time
      })
    }
    return this.#identity
  }

  async #resolveIdentity(): Promise<Identity> {
    if (this.#user !== undefined && this.#tenant !== undefined) {
      return { user: this.#user, tenant: this.#tenant }
    }
    let body: { user: string; memberships: { tenant: string; active: boolean }[] }
    try {
      const response = await this.#transport.request("v1/memberships", {}, { tenant: this.#tenant })
      body = (await response.json()) as typeof body
    } catch (error) {
      if (error instanceof GatewayError && error.endsAccess) {
        await this.#refusedAccess(error, this.#tenant ?? null)
      }
      throw error
    }
    this.#user ??= body.user
    this.#tenant ??= body.memberships.find((m) => m.active)?.tenant
    if (this.#tenant === undefined) throw new Error("GET /v1/memberships named no active tenant")
    return { user: this.#user, tenant: this.#tenant }
  }

  async switchTenant(tenant: string): Promise<void> {
    if (this.#closed) throw new Error("this client was closed or signed out: create a new one")
    const previous = this.#tenant ?? (await this.identity()).tenant
    if (tenant === previous) return
    for (const record of [...this.#shapes]) {
      if ((record.tenant ?? previous) === previous) record.controller.abort() // data kept
    }
    this.#tenant = tenant
    if (this.#user !== undefined) this.#identity = Promise.resolve({ user: this.#user, tenant })
    await this.#feed?.restart()
  }

  // --- local data -------------------------------------------------------------------------

  registerStore(store: RegisteredStore): () => void {
    this.#stores.add(store)
    if (this.#ended.has(store.tenant)) {
      void Promise.resolve(store.clear()).catch((e: unknown) => console.error(e))
    } else {
      void Promise.resolve(store.expire?.(Date.now())).catch((e: unknown) => console.error(e))
    }
    if (this.#sweeper === null && this.#expiryInterval > 0) {
      this.#sweeper = setInterval(() => this.#sweep(), this.#expiryInterval)
      ;(this.#sweeper as { unref?: () => void }).unref?.()
    }
    return () => this.#stores.delete(store)
  }

  #sweep(): void {
    const now = Date.now()
    for (const store of this.#stores) {
      void Promise.resolve(store.expire?.(now)).catch((e: unknown) => console.error(e))
    }
  }

  async close(): Promise<void> {
    this.#closed = true
    await this.#feed?.stop()
    for (const record of [...this.#shapes]) record.controller.abort()
    if (this.#sweeper !== null) clearInterval(this.#sweeper)
    this.#sweeper = null
    await this.#keys.forgetAll([]) // held keys and their renewals; a leased key stays kept
  }

  async signOut(): Promise<void> {
    await this.close()
    this.#feed?.forget()
    const tenants = new Set([...this.#stores].map((store) => store.tenant))
    if (this.#tenant !== undefined) tenants.add(this.#tenant)
    const scopes = this.#user === undefined ? [] : [...tenants].map((t) => this.#scopeOf(this.#user as string, t))
    await Promise.all([
      ...[...this.#stores].map(async (store) => store.clear()),
      this.#keys.forgetAll(scopes),
    ])
    this.#stores.clear()
  }

  // --- the local key ----------------------------------------------------------------------

  async encrypt(value: unknown): Promise<string> {
    return this.#keys.encrypt(await this.#keyScope(), value)
  }

  async decrypt<T = unknown>(text: string): Promise<T> {
    return this.#keys.decrypt<T>(await this.#keyScope(), text)
  }

  async #keyScope(tenant?: string): Promise<KeyScope> {
    if (this.#ended.has(tenant ?? this.#tenant ?? null)) {
      throw new Error(`access to tenant ${tenant ?? this.#tenant} has ended: no local key`)
    }
    const identity = await this.identity()
    return this.#scopeOf(identity.user, tenant ?? identity.tenant)
  }

  #scopeOf(user: string, tenant: string): KeyScope {
    return { id: JSON.stringify([this.url, user, tenant]), tenant }
  }

  async #fetchKey(tenant: string | undefined): Promise<LocalKeyAnswer> {
    try {
      const response = await this.#transport.request("v1/local-key", {}, { tenant })
      return (await response.json()) as LocalKeyAnswer
    } catch (error) {
      if (error instanceof GatewayError && error.endsAccess) {
        await this.#refusedAccess(error, tenant ?? this.#tenant ?? null)
      }
      throw error
    }
  }
}

export function createGatewayClient(options: GatewayClientOptions): GatewayClient {
  return new Client(options)
}
