// Every request the package makes to the gateway goes through `send`: the token (or the
// cookie), the active tenant, and one retry with a fresh token when the gateway answers 401
// `token_expired` or `token_stale`. The retry repeats the very request (same offset, same
// handle), so a shape goes on from where it was instead of starting over.

import { REFRESHES_TOKEN, readRefusal } from "./errors.js"
import type { Tokens } from "./tokens.js"

export interface SendOptions {
  /** X-Tenant-Id; omitted: the token's own tenant. */
  tenant?: string | undefined
  /** The fetch to send with (a shape's own `fetchClient`); default: the client's. */
  fetch?: typeof fetch | undefined
}

const BEARER = /^Bearer\s+/i

export class Transport {
  readonly base: URL
  readonly tokens: Tokens
  readonly #fetch: typeof fetch
  readonly #credentials: RequestCredentials

  constructor(base: URL, tokens: Tokens, fetchImpl: typeof fetch, credentials: RequestCredentials) {
    this.base = base
    this.tokens = tokens
    this.#fetch = fetchImpl
    this.#credentials = credentials
  }

  /** An absolute URL on the gateway: the stock client refuses a relative one. */
  url(path: string): string {
    return new URL(path.replace(/^\//, ""), this.base).href
  }

  async authorization(): Promise<string> {
    return `Bearer ${await this.tokens.current()}`
  }

  async send(
    input: RequestInfo | URL,
    init: RequestInit = {},
    options: SendOptions = {},
  ): Promise<Response> {
    const fetchImpl = options.fetch ?? this.#fetch
    const headers = new Headers(init.headers)
    if (options.tenant !== undefined && !headers.has("x-tenant-id")) {
      headers.set("X-Tenant-Id", options.tenant)
    }
    let token: string | null = null
    if (this.tokens.present) {
      const sent = headers.get("authorization")
      token = sent !== null ? sent.replace(BEARER, "") : await this.tokens.current()
      headers.set("Authorization", `Bearer ${token}`)
    }
    const request = { credentials: this.#credentials, ...init, headers }
    const response = await fetchImpl(input, request)
    if (response.status !== 401 || token === null || !this.tokens.refreshable) return response
    const refusal = await readRefusal(response)
    if (refusal === null || !REFRESHES_TOKEN.has(refusal.code)) return response
    const fresh = await this.tokens.refresh(token)
    headers.set("Authorization", `Bearer ${fresh}`)
    await response.body?.cancel().catch(() => {})
    return fetchImpl(input, request)
  }

  /** `send` for the package's own routes: a refusal is thrown as a GatewayError. */
  async request(path: string, init: RequestInit = {}, options: SendOptions = {}): Promise<Response> {
    const response = await this.send(this.url(path), { cache: "no-store", ...init }, options)
    if (response.ok) return response
    const refusal = await readRefusal(response)
    await response.body?.cancel().catch(() => {})
    if (refusal !== null) throw refusal
    throw new Error(`${path}: HTTP ${response.status} without the gateway's JSON refusal`)
  }
}
