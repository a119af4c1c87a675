// Encryption of sensitive fields at rest, with a key only the gateway hands out.
//
// `GET /v1/local-key` answers the caller's key for the active tenant while their access lasts.
// The key is imported as a non-extractable AES-GCM CryptoKey (script can use it, never read its
// bytes back) and renewed while online, at half its lease. Two modes (docs/client.md):
//
// - "memory": the key lives in this page only. After a reload nothing encrypted is readable
//   until the gateway hands the key out again, which it refuses once access has ended.
// - "lease": the key (still non-extractable) is kept in IndexedDB until its lease ends, so
//   encrypted fields stay readable offline for that long, and are deleted when access ends.
//
// Ciphertext: `gw1:<key_id>:<iv>:<data>` (base64url), the key id bound as additional data.

import { deleteDatabase, finished, openDatabase, requestResult } from "./idb.js"

export type LocalKeyMode = "memory" | "lease"

export interface LocalKeyAnswer {
  key: string
  key_id: string
  expires_in: number
}

interface HeldKey {
  key: CryptoKey
  keyId: string
  expiresAt: number // epoch milliseconds
}

export class LocalKeyError extends Error {
  constructor(message: string) {
    super(message)
    this.name = "LocalKeyError"
  }
}

const PREFIX = "gw1"
const KEYS_DATABASE = "shape-gateway-local-keys"
const STORE = "keys"

function fromBase64url(text: string): Uint8Array<ArrayBuffer> {
  const binary = atob(text.replace(/-/g, "+").replace(/_/g, "/"))
  return Uint8Array.from(binary, (c) => c.charCodeAt(0))
}

function toBase64url(bytes: Uint8Array): string {
  let binary = ""
  for (const byte of bytes) binary += String.fromCharCode(byte)
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "")
}

/** The persisted keys of lease mode: one IndexedDB record per gateway, user and tenant. */
const leases = {
  open: () => openDatabase(KEYS_DATABASE, (db) => db.createObjectStore(STORE)),
  async load(id: string): Promise<HeldKey | undefined> {
    const db = await leases.open()
    try {
      return await requestResult<HeldKey | undefined>(db.transaction(STORE).objectStore(STORE).get(id))
    } finally {
      db.close()
    }
  },
  async save(id: string, held: HeldKey): Promise<void> {
    const db = await leases.open()
    try {
      const transaction = db.transaction(STORE, "readwrite")
      transaction.objectStore(STORE).put(held, id)
      await finished(transaction)
    } finally {
      db.close()
    }
  },
  async remove(ids: string[]): Promise<void> {
    if (ids.length === 0 || typeof indexedDB === "undefined") return
    const db = await leases.open()
    try {
      const transaction = db.transaction(STORE, "readwrite")
      for (const id of ids) transaction.objectStore(STORE).delete(id)
      await finished(transaction)
    } finally {
      db.close()
    }
  },
  deleteAll: () => deleteDatabase(KEYS_DATABASE),
}

export interface KeyScope {
  id: string // gateway, user and tenant: names the persisted lease
  tenant: string | undefined
}

export class LocalKeys {
  readonly mode: LocalKeyMode
  readonly #fetchKey: (tenant: string | undefined) => Promise<LocalKeyAnswer>
  readonly #held = new Map<string, Promise<HeldKey>>()
  readonly #renewals = new Map<string, ReturnType<typeof setTimeout>>()

  constructor(mode: LocalKeyMode, fetchKey: (tenant: string | undefined) => Promise<LocalKeyAnswer>) {
    this.mode = mode
    this.#fetchKey = fetchKey
  }

  async encrypt(scope: KeyScope, value: unknown): Promise<string> {
    const held = await this.#key(scope)
    const iv = crypto.getRandomValues(new Uint8Array(12))
    const plain = new TextEncoder().encode(JSON.stringify(value))
    const sealed = await crypto.subtle.encrypt(
      { name: "AES-GCM", iv, additionalData: this.#additionalData(held.keyId) },
      held.key,
      plain,
    )
    return [PREFIX, held.keyId, toBase64url(iv), toBase64url(new Uint8Array(sealed))].join(":")
  }

  async decrypt<T>(scope: KeyScope, text: string): Promise<T> {
    const parts = text.split(":")
    const [prefix, keyId, iv, data] = parts
    if (parts.length !== 4 || prefix !== PREFIX || !keyId || !iv || !data) {
      throw new LocalKeyError("not a value encrypted by client.encrypt")
    }
    const held = await this.#key(scope)
    if (held.keyId !== keyId) {
      throw new LocalKeyError(
        `encrypted under key ${keyId}, and this tenant's key is now ${held.keyId}: drop the value and sync it again`,
      )
    }
    let plain: ArrayBuffer
    try {
      plain = await crypto.subtle.decrypt(
        { name: "AES-GCM", iv: fromBase64url(iv), additionalData: this.#additionalData(keyId) },
        held.key,
        fromBase64url(data),
      )
    } catch {
      throw new LocalKeyError("the value does not decrypt with this tenant's key (altered, or another tenant's)")
    }
    return JSON.parse(new TextDecoder().decode(plain)) as T
  }

  /** Drop a tenant's key, held and persisted (its access ended). */
  async forget(scope: KeyScope): Promise<void> {
    this.#drop(scope.id)
    if (this.mode === "lease") await leases.remove([scope.id])
  }

  /** Drop every key (signed out); lease mode deletes the persisted ones too. */
  async forgetAll(scopes: KeyScope[]): Promise<void> {
    for (const id of [...this.#held.keys()]) this.#drop(id)
    if (this.mode === "lease") await leases.remove(scopes.map((scope) => scope.id))
  }

  #drop(id: string): void {
    this.#held.delete(id)
    const renewal = this.#renewals.get(id)
    if (renewal !== undefined) clearTimeout(renewal)
    this.#renewals.delete(id)
  }

  #additionalData(keyId: string): Uint8Array<ArrayBuffer> {
    return new TextEncoder().encode(`${PREFIX}:${keyId}`)
  }

  async #key(scope: KeyScope): Promise<HeldKey> {
    const held = this.#held.get(scope.id)
    if (held !== undefined) {
      const key = await held.catch(() => null)
      if (key !== null && key.expiresAt > Date.now()) return key
      if (this.#held.get(scope.id) === held) this.#held.delete(scope.id)
    }
    const loading = this.#load(scope)
    this.#held.set(scope.id, loading)
    loading.catch(() => {
      if (this.#held.get(scope.id) === loading) this.#held.delete(scope.id)
    })
    return loading
  }

  async #load(scope: KeyScope): Promise<HeldKey> {
    if (this.mode === "lease") {
      const kept = await leases.load(scope.id)
      if (kept !== undefined && kept.expiresAt > Date.now()) {
        this.#renew(scope, (kept.expiresAt - Date.now()) / 2)
        return kept
      }
      if (kept !== undefined) await leases.remove([scope.id])
    }
    return this.#fetch(scope)
  }

  async #fetch(scope: KeyScope): Promise<HeldKey> {
    const answer = await this.#fetchKey(scope.tenant)
    const raw = fromBase64url(answer.key)
    const key = await crypto.subtle.importKey("raw", raw, "AES-GCM", false, ["encrypt", "decrypt"])
    raw.fill(0)
    const held = { key, keyId: answer.key_id, expiresAt: Date.now() + answer.expires_in * 1000 }
    if (this.mode === "lease") await leases.save(scope.id, held)
    this.#renew(scope, (answer.expires_in * 1000) / 2)
    return held
  }

  /** Renew at half the lease while this page runs; the key in hand stays until it expires or
   * the renewal brings the next. A refusal drops it (the client then ends the tenant's access);
   * an unreachable gateway is tried again a minute later. */
  #renew(scope: KeyScope, after: number): void {
    const previous = this.#renewals.get(scope.id)
    if (previous !== undefined) clearTimeout(previous)
    const timer = setTimeout(() => {
      this.#renewals.delete(scope.id)
      this.#fetch(scope).then(
        (held) => void this.#held.set(scope.id, Promise.resolve(held)),
        (error: unknown) => {
          if (error instanceof Error && error.name === "GatewayError") this.#drop(scope.id)
          else this.#renew(scope, 60_000)
        },
      )
    }, Math.max(1000, after))
    ;(timer as { unref?: () => void }).unref?.()
    this.#renewals.set(scope.id, timer)
  }
}

export const deleteLeases = leases.deleteAll
