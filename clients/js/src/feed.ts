// The revocation feed: `GET /v1/events` read with fetch (the Authorization header or the
// cookie goes along), reconnected with backoff, resumed from the last event id.
//
// Events are handed on in batches, folded by the client before it acts. The replay (what came
// after Last-Event-ID, or what is newer than the token) is one batch, whatever its pace: the
// gateway ends it with a `: replayed N` comment, and only that comment, or the gateway's
// refusal of a connection (its verdict now), closes it. A replayed suspension and the
// reinstatement after it are thus folded together and end nothing, however the replay was
// split on its way. A replay cut short (the stream ended or broke before the comment) stays
// open and goes on with the next connection's replay, which starts after the last event
// received. After the comment every event is live, true now: a batch of its own, acted on as
// it arrives.
//
// The last event id is kept in `storage` once its batch was acted on, so a reload resumes
// after it instead of acting on the same events again.

import { RECONNECT, type Backoff, backoffDelay, sleep } from "./backoff.js"
import { GatewayError } from "./errors.js"
import type { RevocationEvent } from "./fold.js"
import { readMessages } from "./sse.js"
import type { Transport } from "./transport.js"

/** Where the last event id is kept: localStorage, sessionStorage, or anything alike. */
export interface KeyValueStorage {
  getItem(key: string): string | null
  setItem(key: string, value: string): void
  removeItem(key: string): void
}

export type AfterRefusal = "retry" | "stop"

export interface FeedHooks {
  /** Act on a batch of events, in order. */
  batch(events: RevocationEvent[]): Promise<void>
  /** Act on the gateway's refusal of the feed (after the batch before it), and say whether
   * to keep reconnecting. */
  refused(error: GatewayError): Promise<AfterRefusal>
  /** The tenant to open the feed for (X-Tenant-Id), and the key under which to keep its
   * position; called before each connection. */
  scope(): Promise<{ tenant: string | undefined; storageKey: string | null }>
}

export interface FeedOptions {
  storage: KeyValueStorage
  reconnect?: Backoff
}

const HEALTHY_AFTER = 10_000 // a connection that lasted this long resets the backoff
const REPLAYED = /^replayed \d+$/ // the gateway's comment after the replay of a connection

function parseEvent(data: string): RevocationEvent | null {
  try {
    const event = JSON.parse(data) as RevocationEvent
    const ok =
      typeof event === "object" &&
      event !== null &&
      typeof event.id === "string" &&
      typeof event.type === "string" &&
      typeof event.at === "number"
    return ok ? event : null
  } catch {
    return null
  }
}

export class Feed {
  readonly #transport: Transport
  readonly #hooks: FeedHooks
  readonly #storage: KeyValueStorage
  readonly #reconnect: Backoff
  #controller: AbortController | null = null
  #lastId: string | null = null
  #storageKey: string | null = null
  #pending: RevocationEvent[] = [] // the replay received so far, not yet acted on
  #acting: Promise<void> = Promise.resolve()
  /** Resolves when the loop has ended (stop, or a refusal it does not retry). */
  done: Promise<void> = Promise.resolve()

  constructor(transport: Transport, hooks: FeedHooks, options: FeedOptions) {
    this.#transport = transport
    this.#hooks = hooks
    this.#storage = options.storage
    this.#reconnect = options.reconnect ?? RECONNECT
  }

  get running(): boolean {
    return this.#controller !== null && !this.#controller.signal.aborted
  }

  start(): void {
    if (this.running) return
    const controller = new AbortController()
    this.#controller = controller
    this.done = this.#run(controller.signal).finally(() => {
      if (this.#controller === controller) this.#controller = null
    })
  }

  /** Stop reading. Live events were acted on as they arrived; a replay not yet ended is held,
   * and goes on with the next connection's replay if the feed starts again. */
  async stop(): Promise<void> {
    this.#controller?.abort()
    this.#controller = null
    await this.done
  }

  /** Reconnect now (another tenant, another token). */
  async restart(): Promise<void> {
    await this.stop()
    this.start()
  }

  /** Forget the position (signed out): the next start replays from the token's issue. */
  forget(): void {
    if (this.#storageKey !== null) this.#storage.removeItem(this.#storageKey)
    this.#lastId = null
  }

  async #run(signal: AbortSignal): Promise<void> {
    let attempt = 0
    while (!signal.aborted) {
      let opened = 0
      let cut = false // the gateway ended the stream before the replay's end, with events held
      try {
        const { tenant, storageKey } = await this.#hooks.scope()
        if (storageKey !== this.#storageKey) {
          this.#storageKey = storageKey
          this.#lastId = storageKey === null ? this.#lastId : this.#storage.getItem(storageKey)
        }
        const headers: Record<string, string> = { Accept: "text/event-stream" }
        if (this.#lastId !== null) headers["Last-Event-ID"] = this.#lastId
        const response = await this.#transport.request("/v1/events", { headers, signal }, { tenant })
        opened = Date.now()
        if (response.body === null) throw new Error("/v1/events answered without a body")
        let live = false
        for await (const message of readMessages(response.body)) {
          if ("comment" in message) {
            if (!live && REPLAYED.test(message.comment)) {
              live = true
              void this.#flush() // the replay, whole (not awaited: a handler may stop the feed)
            }
            continue
          }
          const event = parseEvent(message.data)
          if (event === null) continue
          this.#lastId = message.id ?? event.id
          this.#pending.push(event)
          if (live) void this.#flush()
        }
        cut = !live && this.#pending.length > 0
      } catch (error) {
        if (signal.aborted) break
        // Access refused: the gateway's verdict now; act on what arrived, then on it. Any
        // other refusal (an expired token, a busy gateway), a gateway out of reach or a
        // stream that broke says nothing about access: a replay cut short stays open.
        if (error instanceof GatewayError) {
          if (error.endsAccess) await this.#flush()
          if ((await this.#hooks.refused(error)) === "stop") break
        }
      }
      const lived = opened === 0 ? 0 : Date.now() - opened
      attempt = lived >= HEALTHY_AFTER ? 0 : attempt + 1
      // A replay the gateway ended early goes on at once (once: then with backoff).
      const wait = cut && attempt <= 1 ? 0 : backoffDelay(attempt - 1, this.#reconnect)
      await sleep(wait, signal)
    }
  }

  /** Hand the pending batch on (batches one after another, in order). */
  #flush(): Promise<void> {
    const events = this.#pending
    this.#pending = []
    const lastId = this.#lastId
    const storageKey = this.#storageKey
    if (events.length === 0) return this.#acting
    this.#acting = this.#acting
      .then(() => this.#hooks.batch(events))
      .then(() => {
        if (storageKey !== null && lastId !== null) this.#storage.setItem(storageKey, lastId)
      })
      .catch((error: unknown) => console.error("shape-gateway client: revocation feed", error))
    return this.#acting
  }
}

/** A KeyValueStorage in memory: positions last as long as the page. */
export function memoryStorage(): KeyValueStorage {
  const items = new Map<string, string>()
  return {
    getItem: (key) => items.get(key) ?? null,
    setItem: (key, value) => void items.set(key, value),
    removeItem: (key) => void items.delete(key),
  }
}
