// A local store for synced shapes in IndexedDB: one database per user and tenant, holding each
// shape's rows and its position (handle, offset), so a reload resumes where it stopped, and
// its `local_ttl` with the last time the gateway served it, so rows kept longer are dropped.
//
//   const store = await indexedDbStore("my-app").open(client)   // database my-app/alice/acme
//   const tasks = client.shape("tasks", store.resume("tasks"))
//   tasks.subscribe((messages) => store.apply("tasks", tasks, messages))
//
// `open` registers the store with the client: it is cleared when access to its tenant ends,
// and swept for rows past their `local_ttl` at start and on the client's timer. Writes run one
// after another, in call order.

import {
  type Message,
  type Offset,
  type Row,
  type ShapeStreamInterface,
  isChangeMessage,
  isControlMessage,
} from "@electric-sql/client"

import type { GatewayClient } from "./client.js"
import { deleteDatabase, finished, openDatabase, requestResult } from "./idb.js"

export interface StoredShape<T extends Row<unknown> = Row> {
  handle?: string
  offset?: Offset
  /** Seconds the gateway lets this client keep the rows (`Shape-Gateway-Local-TTL`). */
  localTtl?: number
  /** When the gateway last served this shape up to date (epoch ms): rows count from here. */
  syncedAt?: number
  rows: Map<string, T>
}

interface ShapeRecord {
  shape: string
  handle?: string
  offset?: Offset
  localTtl?: number
  syncedAt?: number
}

interface RowRecord {
  shape: string
  key: string
  value: Row
}

const ROWS = "rows"
const SHAPES = "shapes"

function allOf(shape: string): IDBKeyRange {
  return IDBKeyRange.bound([shape, ""], [shape, "\uffff"])
}

export class IndexedDbStore {
  readonly name: string
  readonly user: string
  readonly tenant: string
  readonly #client: GatewayClient
  #db: Promise<IDBDatabase> | null = null
  #cleared = false // after clear(), nothing is written again: a late batch cannot bring rows back
  #queue: Promise<unknown> = Promise.resolve()
  #shapes = new Map<string, StoredShape>()

  constructor(client: GatewayClient, family: string, user: string, tenant: string) {
    this.#client = client
    this.user = user
    this.tenant = tenant
    this.name = [family, user, tenant].map(encodeURIComponent).join("/")
  }

  /** What is kept of `shape`: its rows (updated by `apply`) and position. */
  shape<T extends Row<unknown> = Row>(shape: string): StoredShape<T> {
    let stored = this.#shapes.get(shape)
    if (stored === undefined) {
      stored = { rows: new Map() }
      this.#shapes.set(shape, stored)
    }
    return stored as unknown as StoredShape<T>
  }

  /** Shape options that resume from the kept position (none: start with a snapshot). */
  resume(shape: string): { handle?: string; offset?: Offset } {
    const { handle, offset } = this.shape(shape)
    return handle !== undefined && offset !== undefined ? { handle, offset } : {}
  }

  /** Load what is kept (after dropping what is past its local_ttl). */
  load(): Promise<void> {
    return this.#then(async () => {
      if (this.#cleared) return
      await this.#expire(Date.now())
      const db = await this.#open()
      const transaction = db.transaction([ROWS, SHAPES])
      const [shapes, rows] = await Promise.all([
        requestResult(transaction.objectStore(SHAPES).getAll() as IDBRequest<ShapeRecord[]>),
        requestResult(transaction.objectStore(ROWS).getAll() as IDBRequest<RowRecord[]>),
      ])
      this.#shapes = new Map()
      for (const { shape, ...position } of shapes) this.#shapes.set(shape, { ...position, rows: new Map() })
      for (const { shape, key, value } of rows) this.shape(shape).rows.set(key, value)
    })
  }

  /** Apply a batch the shape's subscriber got: rows, position, local_ttl, and when the gateway
   * last served the shape up to date. Resolves, once written, with what is kept of the shape. */
  apply<T extends Row<unknown>>(
    shape: string,
    stream: ShapeStreamInterface<T>,
    messages: Message<T>[],
  ): Promise<StoredShape<T>> {
    const stored = this.shape<T>(shape)
    if (this.#cleared) return Promise.resolve(stored)
    const upserts = new Map<string, T>()
    const deletes = new Set<string>()
    let reset = false
    let upToDate = false
    for (const message of messages) {
      if (isChangeMessage(message)) {
        const { key, value } = message
        if (message.headers.operation === "delete") {
          stored.rows.delete(key)
          upserts.delete(key)
          deletes.add(key)
        } else {
          const previous = message.headers.operation === "update" ? stored.rows.get(key) : undefined
          const row = { ...previous, ...value } as T
          stored.rows.set(key, row)
          upserts.set(key, row)
          deletes.delete(key)
        }
      } else if (isControlMessage(message)) {
        if (message.headers.control === "must-refetch") {
          stored.rows.clear()
          upserts.clear()
          deletes.clear()
          reset = true
        } else if (message.headers.control === "up-to-date") {
          upToDate = true
        }
      }
    }
    stored.handle = stream.shapeHandle
    stored.offset = stream.lastOffset
    const localTtl = this.#client.localTtl(stream)
    if (localTtl !== undefined) stored.localTtl = localTtl
    if (upToDate) stored.syncedAt = Date.now()
    const { rows: _, ...position } = stored
    return this.#then(async () => {
      if (this.#cleared) return stored
      const db = await this.#open()
      const transaction = db.transaction([ROWS, SHAPES], "readwrite")
      const rows = transaction.objectStore(ROWS)
      if (reset) rows.delete(allOf(shape))
      for (const key of deletes) rows.delete([shape, key])
      for (const [key, value] of upserts) rows.put({ shape, key, value })
      transaction.objectStore(SHAPES).put({ shape, ...position })
      await finished(transaction)
      return stored
    })
  }

  /** Drop every shape whose rows the gateway last served longer ago than its local_ttl, with
   * its position (its next sync starts from a snapshot). The shapes dropped. */
  expire(now: number = Date.now()): Promise<string[]> {
    return this.#then(async () => (this.#cleared ? [] : this.#expire(now)))
  }

  /** Delete the database (access to the tenant ended, or signed out). The store writes nothing
   * after this; open the family again for a new one. */
  clear(): Promise<void> {
    this.#cleared = true
    return this.#then(async () => {
      this.#shapes = new Map()
      if (this.#db !== null) (await this.#db.catch(() => null))?.close()
      this.#db = null
      await deleteDatabase(this.name)
    })
  }

  close(): void {
    void this.#db?.then((db) => db.close()).catch(() => {})
    this.#db = null
  }

  async #expire(now: number): Promise<string[]> {
    const db = await this.#open()
    const read = db.transaction(SHAPES)
    const shapes = await requestResult(read.objectStore(SHAPES).getAll() as IDBRequest<ShapeRecord[]>)
    const past = shapes.filter(
      (s) => s.localTtl !== undefined && now - (s.syncedAt ?? 0) > s.localTtl * 1000,
    )
    if (past.length === 0) return []
    const transaction = db.transaction([ROWS, SHAPES], "readwrite")
    for (const { shape } of past) {
      transaction.objectStore(ROWS).delete(allOf(shape))
      transaction.objectStore(SHAPES).delete(shape)
      this.#shapes.delete(shape)
    }
    await finished(transaction)
    return past.map((s) => s.shape)
  }

  #open(): Promise<IDBDatabase> {
    this.#db ??= openDatabase(this.name, (db) => {
      db.createObjectStore(ROWS, { keyPath: ["shape", "key"] })
      db.createObjectStore(SHAPES, { keyPath: "shape" })
    })
    return this.#db
  }

  #then<T>(operation: () => Promise<T>): Promise<T> {
    const next = this.#queue.then(operation)
    this.#queue = next.catch(() => {})
    return next
  }
}

export interface IndexedDbStores {
  readonly family: string
  /** The store of the client's user in `tenant` (default: the active tenant), loaded and
   * registered with the client. */
  open(client: GatewayClient, tenant?: string): Promise<IndexedDbStore>
}

/** A family of IndexedDB stores named `name`: one database per user and tenant. */
export function indexedDbStore(name: string): IndexedDbStores {
  return {
    family: name,
    async open(client: GatewayClient, tenant?: string): Promise<IndexedDbStore> {
      const identity = await client.identity()
      const store = new IndexedDbStore(client, name, identity.user, tenant ?? identity.tenant)
      client.registerStore(store)
      await store.load()
      return store
    },
  }
}
