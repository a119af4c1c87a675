// Drives the real @electric-sql/client ShapeStream against the gateway for pytest.
// Config comes as JSON in argv[2]: {url, table, token, where?, params?, liveSse?, columns?}.
// Every event is one JSON line on stdout; pytest reads them as they happen:
//   {kind: "request", n, t, live, sse, offset, handle, params}   before each fetch
//   {kind: "response", n, t, status, sse, handle, offset}        when its headers arrive
//   {kind: "fetch_failed", n, t, message}                        network error or abort
//   {kind: "change", op, key, value} / {kind: "control", control}  what subscribers get
//   {kind: "error", status, body, name, message}                  what onError gets
//   {kind: "warn", message} (console.warn), {kind: "fatal", message}, {kind: "stopped"}
//   {kind: "revocation", type, tenant, id}, {kind: "cleared", rows}  with config.events (below)
// `n` numbers the fetches, `t` is milliseconds since the driver started.
// With `events: true` the app also follows the gateway's /v1/events feed, as the README shows:
// on membership.revoked or tenant.suspended for its tenant it stops the shape and deletes its
// local rows.
// On an error the stream pauses and reads one line from stdin: a new token to retry with,
// or an empty line (or end of input) to stop.
import { ShapeStream } from "@electric-sql/client";
import { createInterface } from "node:readline";

const config = JSON.parse(process.argv[2]);
const started = Date.now();
// int8 columns arrive as BigInt, which JSON.stringify refuses: send them as strings.
const plain = (_key, value) => (typeof value === "bigint" ? value.toString() : value);
const emit = (event) => process.stdout.write(JSON.stringify(event, plain) + "\n");
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();

console.warn = (...args) => emit({ kind: "warn", message: args.map(String).join(" ") });

let token = config.token;
let fetches = 0;
const fetchClient = async (input, init) => {
  const url = new URL(typeof input === "string" ? input : input.url);
  const query = url.searchParams;
  const n = ++fetches;
  const sse = query.get("live_sse") === "true";
  emit({
    kind: "request", n, t: Date.now() - started, live: query.get("live") === "true", sse,
    offset: query.get("offset"), handle: query.get("handle"), params: Object.fromEntries(query),
  });
  let response;
  try {
    response = await fetch(input, init);
  } catch (error) {
    emit({ kind: "fetch_failed", n, t: Date.now() - started, message: String(error) });
    throw error;
  }
  emit({
    kind: "response", n, t: Date.now() - started, status: response.status, sse,
    handle: response.headers.get("electric-handle"), offset: response.headers.get("electric-offset"),
  });
  return response;
};

const stream = new ShapeStream({
  url: config.url,
  params: {
    table: config.table,
    ...(config.where ? { where: config.where } : {}),
    ...(config.params ? { params: config.params } : {}),
    ...(config.columns ? { columns: config.columns } : {}),
  },
  headers: { Authorization: () => `Bearer ${token}` },
  liveSse: Boolean(config.liveSse),
  fetchClient,
  onError: async (error) => {
    emit({
      kind: "error", status: error.status ?? null, body: error.json ?? error.text ?? String(error),
      name: error.name ?? null, message: error.message ?? String(error),
    });
    const next = await lines.next();
    if (next.done || !next.value.trim()) {
      emit({ kind: "stopped" });
      process.exit(0);
    }
    token = next.value.trim();
    return { headers: { Authorization: `Bearer ${token}` } };
  },
});

const rows = new Map(); // the app's local copy of the shape
stream.subscribe((messages) => {
  for (const message of messages) {
    if ("key" in message) {
      if (message.headers.operation === "delete") rows.delete(message.key);
      else rows.set(message.key, { ...rows.get(message.key), ...message.value });
      emit({ kind: "change", op: message.headers.operation, key: message.key, value: message.value });
    } else if (message.headers?.control) {
      if (message.headers.control === "must-refetch") rows.clear();
      emit({ kind: "control", control: message.headers.control });
    }
  }
}, (error) => emit({ kind: "fatal", message: String(error) }));

// The revocation feed: SSE read with fetch, because EventSource cannot send Authorization.
async function followRevocations() {
  const response = await fetch(new URL("/v1/events", config.url), {
    headers: { Authorization: `Bearer ${token}`, Accept: "text/event-stream" },
  });
  emit({ kind: "feed", status: response.status });
  const decoder = new TextDecoder();
  let buffer = "";
  for await (const chunk of response.body) {
    buffer += decoder.decode(chunk, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = block.split("\n").find((line) => line.startsWith("data: "));
      if (!data) continue;
      const event = JSON.parse(data.slice(6));
      emit({ kind: "revocation", type: event.type, tenant: event.tenant ?? null, id: event.id });
      if ((event.type === "membership.revoked" || event.type === "tenant.suspended")
          && event.tenant === config.tenant) {
        stream.unsubscribeAll();
        rows.clear();
        emit({ kind: "cleared", rows: rows.size });
      }
    }
  }
}
if (config.events) followRevocations().catch((error) => emit({ kind: "fatal", message: String(error) }));

process.on("SIGTERM", () => { stream.unsubscribeAll(); process.exit(0); });
