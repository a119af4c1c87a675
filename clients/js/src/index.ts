// @shape-gateway/client: the client half of shape-gateway for local-first frontends.
// The guide: docs/client.md in the shape-gateway repository.

export {
  type AccessEnded,
  type AccessResumed,
  createGatewayClient,
  type GatewayClient,
  type GatewayClientOptions,
  type GatewayShapeOptions,
  type Identity,
  LOCAL_TTL_HEADER,
  type RegisteredStore,
} from "./client.js"
export { type AccessEndedCode, ENDS_ACCESS, GatewayError } from "./errors.js"
export { type KeyValueStorage, memoryStorage } from "./feed.js"
export { foldEvents, type RevocationEvent, type Verdict } from "./fold.js"
export { IndexedDbStore, type IndexedDbStores, indexedDbStore, type StoredShape } from "./indexeddb.js"
export { LocalKeyError, type LocalKeyMode } from "./localkey.js"
export { readEvents, type ServerSentEvent } from "./sse.js"
export type { TokenSource } from "./tokens.js"
