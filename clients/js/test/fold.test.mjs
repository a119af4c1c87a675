// The event fold: what a batch of revocation events means for this client, in order.
import assert from "node:assert/strict"
import { test } from "node:test"

import { foldEvents } from "../dist/index.js"

let n = 0
const event = (type, fields = {}) => ({ id: `1700000000000-${n++}`, type, at: 1700000000, ...fields })
const ended = (verdict) => Object.fromEntries([...verdict.ended].map(([t, e]) => [t, e.code]))

test("a suspension followed by its reinstatement ends nothing", () => {
  const verdict = foldEvents(
    [event("tenant.suspended", { tenant: "acme" }), event("tenant.reinstated", { tenant: "acme" })],
    { issuedAt: 1600000000 },
  )
  assert.deepEqual(ended(verdict), {})
  assert.deepEqual([...verdict.reinstated.keys()], ["acme"])
})

test("a reinstatement followed by a new suspension ends access", () => {
  const verdict = foldEvents(
    [
      event("tenant.suspended", { tenant: "acme" }),
      event("tenant.reinstated", { tenant: "acme" }),
      event("tenant.suspended", { tenant: "acme" }),
    ],
    {},
  )
  assert.deepEqual(ended(verdict), { acme: "tenant_suspended" })
  assert.equal(verdict.reinstated.size, 0)
})

test("a suspension affects every token, even one issued after it", () => {
  const verdict = foldEvents([event("tenant.suspended", { tenant: "acme", at: 100 })], { issuedAt: 200 })
  assert.deepEqual(ended(verdict), { acme: "tenant_suspended" })
})

test("a revoked membership ends the tenant's access, and a reinstatement does not undo it", () => {
  const verdict = foldEvents(
    [
      event("membership.revoked", { user: "alice", tenant: "acme" }),
      event("tenant.suspended", { tenant: "globex" }),
      event("tenant.reinstated", { tenant: "acme" }),
    ],
    { issuedAt: 1700000000 }, // issued in the event's second: affected (the safe side)
  )
  assert.deepEqual(ended(verdict), { acme: "access_revoked", globex: "tenant_suspended" })
  assert.equal(verdict.ended.get("acme").event.type, "membership.revoked")
  assert.equal(verdict.reinstated.has("acme"), false)
})

test("events older than the token are ignored: access was granted again since", () => {
  const old = { at: 1000 }
  const verdict = foldEvents(
    [
      event("membership.revoked", { user: "alice", tenant: "acme", ...old }),
      event("session.revoked", { user: "alice", ...old }),
      event("role.changed", { user: "alice", tenant: "acme", role: "admin", ...old }),
    ],
    { issuedAt: 2000, session: "s1" },
  )
  assert.deepEqual(ended(verdict), {})
  assert.equal(verdict.session, null)
  assert.equal(verdict.roleChanged, null)
})

test("with the token unreadable (a cookie) every user event counts", () => {
  const verdict = foldEvents([event("membership.revoked", { user: "alice", tenant: "acme", at: 1 })], {})
  assert.deepEqual(ended(verdict), { acme: "access_revoked" })
})

test("a session revocation ends the session when it names this one or none", () => {
  assert.ok(foldEvents([event("session.revoked", { user: "a" })], { session: "s1" }).session)
  assert.ok(foldEvents([event("session.revoked", { user: "a", session: "s1" })], { session: "s1" }).session)
  const other = foldEvents([event("session.revoked", { user: "a", session: "s2" })], { session: "s1" })
  assert.equal(other.session, null)
  assert.equal(other.sessionToConfirm, null)
  const unknown = foldEvents([event("session.revoked", { user: "a", session: "s2" })], {})
  assert.equal(unknown.session, null)
  assert.equal(unknown.sessionToConfirm.session, "s2") // the client asks the gateway
})

test("a role change asks for a fresh token and ends nothing", () => {
  const verdict = foldEvents([event("role.changed", { user: "a", tenant: "acme", role: "admin" })], {})
  assert.equal(verdict.roleChanged.role, "admin")
  assert.deepEqual(ended(verdict), {})
})

test("an unknown event type changes nothing", () => {
  const verdict = foldEvents([event("tenant.renamed", { tenant: "acme" })], {})
  assert.deepEqual(ended(verdict), {})
  assert.equal(verdict.reinstated.size, 0)
})
