// The gateway's refusals, as errors a caller can branch on by `code`.
//
// A refusal is JSON `{"error": CODE, "message": TEXT}` (docs/http-api.md). GatewayError extends
// Electric's FetchError, so the stock ShapeStream treats it as it treats any HTTP error: a 5xx
// or 429 is retried with backoff, any other 4xx reaches `onError`.

import { FetchError } from "@electric-sql/client"

/** Refusals that mean "this tenant's data is no longer yours": stop and delete it. */
export const ENDS_ACCESS: ReadonlySet<string> = new Set([
  "access_revoked",
  "tenant_suspended",
  "session_revoked",
])

/** 401s that a fresh token cures: the request is retried once with one. */
export const REFRESHES_TOKEN: ReadonlySet<string> = new Set(["token_expired", "token_stale"])

export type AccessEndedCode = "access_revoked" | "tenant_suspended" | "session_revoked"

export interface Refusal {
  error: string
  message: string
}

export class GatewayError extends FetchError {
  /** The gateway's error code: `access_revoked`, `token_expired`, `rate_limited`, ... */
  readonly code: string
  /** The gateway's `X-Request-Id`, to find the audit line. */
  readonly requestId: string | null

  constructor(status: number, refusal: Refusal, headers: Record<string, string>, url: string) {
    super(status, undefined, refusal, headers, url, `${refusal.error}: ${refusal.message}`)
    this.name = "GatewayError"
    this.code = refusal.error
    this.requestId = headers["x-request-id"] ?? null
  }

  /** Whether this refusal ends access to the tenant (see ENDS_ACCESS). */
  get endsAccess(): boolean {
    return ENDS_ACCESS.has(this.code)
  }
}

function isRefusal(body: unknown): body is Refusal {
  if (typeof body !== "object" || body === null || Array.isArray(body)) return false
  const { error, message } = body as Record<string, unknown>
  return typeof error === "string" && typeof message === "string"
}

/** The gateway's refusal in `response`, if it is one; the body is read from a clone. Electric's
 * own errors (a 409 must-refetch, a 400 about a where) are not refusals: they pass on. */
export async function readRefusal(response: Response): Promise<GatewayError | null> {
  if (response.ok || !(response.headers.get("content-type") ?? "").includes("application/json")) {
    return null
  }
  let body: unknown
  try {
    body = await response.clone().json()
  } catch {
    return null
  }
  if (!isRefusal(body)) return null
  return new GatewayError(
    response.status,
    body,
    Object.fromEntries(response.headers.entries()),
    response.url,
  )
}
