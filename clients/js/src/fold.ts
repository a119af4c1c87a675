// The revocation events of one batch, folded in order into what they mean for this client now.
//
// A batch is what the feed delivered together: the replay after a (re)connection, or one live
// event. Folding before acting is what makes a replayed suspension followed by its
// reinstatement end nothing. Pure: no clock, no I/O.
//
// Which events affect the token in use (docs/revocation.md): an event naming the user
// (`membership.revoked`, `session.revoked`, `role.changed`) affects tokens issued at or before
// its second (`iat <= at`); a token issued later was granted since, and is not affected. A
// suspension affects every token until the tenant is reinstated.

import type { AccessEndedCode } from "./errors.js"
import type { TokenClaims } from "./tokens.js"

/** An event of `GET /v1/events` (its `data`, which repeats the SSE `id:`). */
export interface RevocationEvent {
  id: string
  type: string
  user?: string
  tenant?: string
  role?: string
  session?: string
  at: number
}

export interface Ending {
  code: AccessEndedCode
  event: RevocationEvent
}

export interface Verdict {
  /** Tenants whose access ended, with the event that ended it. */
  ended: Map<string, Ending>
  /** Tenants reinstated in this batch and not suspended again after it. */
  reinstated: Map<string, RevocationEvent>
  /** The session ended: every tenant's access, and the token with it. */
  session: RevocationEvent | null
  /** A `session.revoked` naming a session the client cannot see (cookie mode): ask the gateway. */
  sessionToConfirm: RevocationEvent | null
  /** A role changed: the next request needs a fresh token. */
  roleChanged: RevocationEvent | null
}

export function foldEvents(events: readonly RevocationEvent[], token: TokenClaims): Verdict {
  const verdict: Verdict = {
    ended: new Map(),
    reinstated: new Map(),
    session: null,
    sessionToConfirm: null,
    roleChanged: null,
  }
  const affects = (event: RevocationEvent) =>
    token.issuedAt === undefined || token.issuedAt <= event.at
  const suspended = new Map<string, RevocationEvent>()
  const revoked = new Map<string, RevocationEvent>()
  for (const event of events) {
    const tenant = event.tenant
    switch (event.type) {
      case "tenant.suspended":
        if (tenant !== undefined) {
          suspended.set(tenant, event)
          verdict.reinstated.delete(tenant)
        }
        break
      case "tenant.reinstated":
        if (tenant !== undefined) {
          suspended.delete(tenant) // a suspension earlier in this batch ends nothing
          verdict.reinstated.set(tenant, event) // one from an earlier batch is lifted
        }
        break
      case "membership.revoked":
        if (tenant !== undefined && affects(event)) revoked.set(tenant, event)
        break
      case "session.revoked":
        if (!affects(event)) break
        if (event.session === undefined || event.session === token.session) {
          verdict.session ??= event
        } else if (token.session === undefined) {
          verdict.sessionToConfirm ??= event
        }
        break
      case "role.changed":
        if (affects(event)) verdict.roleChanged = event
        break
      default:
        break // an event type this version does not know changes nothing
    }
  }
  for (const [tenant, event] of suspended) {
    verdict.ended.set(tenant, { code: "tenant_suspended", event })
  }
  for (const [tenant, event] of revoked) {
    verdict.ended.set(tenant, { code: "access_revoked", event }) // outlives any reinstatement
    verdict.reinstated.delete(tenant)
  }
  return verdict
}
