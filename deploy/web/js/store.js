// The local store: each shape's rows and position (handle, offset, columns) in IndexedDB, per
// person and tenant ("scope", e.g. alice@acme). A reload resumes each shape where it stopped;
// a revocation deletes exactly one scope. Operations run one after another, in call order.

const DATABASE = "shape-gateway-demo"
const SEP = "\u001f"
let opened = null

function open() {
  opened ??= new Promise((resolve, reject) => {
    const request = indexedDB.open(DATABASE, 1)
    request.onupgradeneeded = () => {
      request.result.createObjectStore("rows", { keyPath: "id" })
      request.result.createObjectStore("shapes", { keyPath: "id" })
    }
    request.onsuccess = () => resolve(request.result)
    request.onerror = () => reject(request.error)
  })
  return opened
}

const finished = (tx) =>
  new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve()
    tx.onerror = tx.onabort = () => reject(tx.error)
  })

const all = (store, range) =>
  new Promise((resolve, reject) => {
    const request = store.getAll(range)
    request.onsuccess = () => resolve(request.result)
    request.onerror = () => reject(request.error)
  })

const under = (prefix) => IDBKeyRange.bound(prefix, `${prefix}\uffff`)

export class LocalStore {
  constructor(scope) {
    this.scope = scope
    this.queue = Promise.resolve()
  }

  #then(operation) {
    const next = this.queue.then(operation)
    this.queue = next.catch((error) => console.error("local store", error))
    return next
  }

  // {shape: {handle, offset, columns, rows: Map(key -> row)}}
  load() {
    return this.#then(async () => {
      const tx = (await open()).transaction(["rows", "shapes"])
      const prefix = this.scope + SEP
      const [rows, shapes] = await Promise.all([
        all(tx.objectStore("rows"), under(prefix)),
        all(tx.objectStore("shapes"), under(prefix)),
      ])
      const loaded = {}
      for (const { shape, handle, offset, columns } of shapes) {
        loaded[shape] = { handle, offset, columns, rows: new Map() }
      }
      for (const { shape, key, value } of rows) {
        loaded[shape]?.rows.set(key, value)
      }
      return loaded
    })
  }

  save(shape, { upserts, deletes, reset, handle, offset, columns }) {
    return this.#then(async () => {
      const tx = (await open()).transaction(["rows", "shapes"], "readwrite")
      const rows = tx.objectStore("rows")
      const prefix = [this.scope, shape, ""].join(SEP)
      if (reset) rows.delete(under(prefix))
      for (const key of deletes) rows.delete(prefix + key)
      for (const [key, value] of upserts) rows.put({ id: prefix + key, shape, key, value })
      const id = this.scope + SEP + shape
      tx.objectStore("shapes").put({ id, shape, handle, offset, columns })
      await finished(tx)
    })
  }

  wipe() {
    return this.#then(async () => {
      const tx = (await open()).transaction(["rows", "shapes"], "readwrite")
      tx.objectStore("rows").delete(under(this.scope + SEP))
      tx.objectStore("shapes").delete(under(this.scope + SEP))
      await finished(tx)
    })
  }
}
