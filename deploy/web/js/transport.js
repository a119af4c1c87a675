// How a panel signs in, and where its gateway is. Two ways in:
// - bearer: the page holds a token from the demo server and sends `Authorization: Bearer` to
//   the gateway on another origin (CORS; GATEWAY_CORS_ORIGINS lists this page's origin);
// - cookie: the gateway is reverse-proxied onto this page's origin under /as/USER/, and the
//   token travels in an HttpOnly cookie scoped to that path: the script never sees it.

export class AppError extends Error {
  constructor(status, body) {
    super(body?.message ?? `HTTP ${status}`)
    this.status = status
    this.code = body?.error ?? null
  }
}

export async function postJson(url, body, headers = {}) {
  const response = await fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/json", ...headers },
    body: JSON.stringify(body),
  })
  const answer = await response.json().catch(() => null)
  if (!response.ok) throw new AppError(response.status, answer)
  return answer
}

class Session {
  constructor(key) {
    this.key = key
  }
  get value() {
    return JSON.parse(sessionStorage.getItem(this.key) ?? "null")
  }
  set value(session) {
    if (session) sessionStorage.setItem(this.key, JSON.stringify(session))
    else sessionStorage.removeItem(this.key)
  }
}

class BearerTransport {
  constructor(gateway, user) {
    this.mode = "bearer"
    this.user = user
    this.gateway = gateway
    this.session = new Session(`demo:bearer:${user}`)
  }
  get claims() {
    return this.session.value?.claims ?? null
  }
  // The client's token function: the stored token first, a new sign-in each time the gateway
  // said the one in use expired.
  tokens() {
    let first = true
    return async () => {
      if (!first) await this.signIn()
      first = false
      return this.session.value.token
    }
  }
  async signIn() {
    const { token, claims } = await postJson("/api/sign-in", { user: this.user })
    this.session.value = { token, claims }
    return claims
  }
  async signOut() {
    this.session.value = null
  }
  addTask(task) {
    return postJson("/api/tasks", task, { Authorization: `Bearer ${this.session.value?.token}` })
  }
}

class CookieTransport {
  constructor(user) {
    this.mode = "cookie"
    this.user = user
    this.base = `/as/${encodeURIComponent(user)}/`
    this.gateway = new URL(this.base, location.origin).href
    this.session = new Session(`demo:cookie:${user}`) // the claims only: the token is HttpOnly
  }
  get claims() {
    return this.session.value?.claims ?? null
  }
  tokens() {
    return undefined // the cookie goes along by itself
  }
  async signIn() {
    const { claims } = await postJson(`${this.base}api/sign-in`, {})
    this.session.value = { claims }
    return claims
  }
  async signOut() {
    this.session.value = null
    await postJson(`${this.base}api/sign-out`, {}).catch(() => {})
  }
  addTask(task) {
    return postJson(`${this.base}api/tasks`, task)
  }
}

export function transportFor(config, user) {
  return config.mode === "cookie" ? new CookieTransport(user) : new BearerTransport(config.gateway, user)
}
