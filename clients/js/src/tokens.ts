// The caller's token: a string, or a function returning one (sync or async).
//
// The function is called when a token is first needed and again when the gateway says the one
// in use has expired or is stale (a role changed); requests in between reuse the last token.
// Several requests refused at once call it once.

export type TokenSource = string | (() => string | Promise<string>)

/** What the client reads from a token without verifying it (the gateway verifies): only to
 * tell whether a revocation event predates the token, or names another session. */
export interface TokenClaims {
  issuedAt?: number
  session?: string
}

export class Tokens {
  readonly #source: TokenSource | undefined
  #current: Promise<string> | null = null
  #value: string | null = null
  #replacing: string | null = null // the token a refresh in flight replaces

  constructor(source: TokenSource | undefined) {
    this.#source = source
  }

  /** False in cookie mode: the browser sends the cookie, the script never sees a token. */
  get present(): boolean {
    return this.#source !== undefined
  }

  /** Whether a refused token can be replaced: only a function can give another. */
  get refreshable(): boolean {
    return typeof this.#source === "function"
  }

  /** The token to send now. */
  current(): Promise<string> {
    if (this.#current === null) this.#current = this.#fetch()
    return this.#current
  }

  /** A fresh token after `stale` was refused; if another request already replaced `stale`,
   * that replacement (the function is not called twice for one expiry). */
  refresh(stale: string): Promise<string> {
    const replaced = this.#value !== null && this.#value !== stale
    if ((replaced || this.#replacing === stale) && this.#current !== null) return this.#current
    this.#replacing = stale
    const fresh = this.#fetch()
    this.#current = fresh
    const done = () => {
      if (this.#current === fresh) this.#replacing = null
    }
    fresh.then(done, done)
    return fresh
  }

  /** Forget the token: the next request asks the function again (after a role change). */
  invalidate(): void {
    if (typeof this.#source === "function") this.#current = null
  }

  /** `iat` and `sid` (else `jti`) of the token last handed out, when it is a readable JWT. */
  claims(): TokenClaims {
    return this.#value === null ? {} : readClaims(this.#value)
  }

  async #fetch(): Promise<string> {
    const source = this.#source
    if (source === undefined) throw new Error("no token: this client authenticates with a cookie")
    try {
      const token = typeof source === "function" ? await source() : source
      if (typeof token !== "string" || token === "") {
        throw new TypeError("the token function must return the token as a non-empty string")
      }
      this.#value = token
      return token
    } catch (error) {
      this.#current = null // the next request tries again
      throw error
    }
  }
}

export function readClaims(token: string): TokenClaims {
  const payload = token.split(".")[1]
  if (payload === undefined) return {}
  try {
    const text = atob(payload.replace(/-/g, "+").replace(/_/g, "/"))
    const bytes = Uint8Array.from(text, (c) => c.charCodeAt(0))
    const claims = JSON.parse(new TextDecoder().decode(bytes)) as Record<string, unknown>
    const session = claims["sid"] ?? claims["jti"]
    return {
      ...(typeof claims["iat"] === "number" ? { issuedAt: claims["iat"] } : {}),
      ...(typeof session === "string" ? { session } : {}),
    }
  } catch {
    return {}
  }
}
