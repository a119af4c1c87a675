// Drives the real @electric-sql/client ShapeStream against the gateway for pytest.
// Config comes as JSON in argv[2]: {url, table, token, where?, params?, liveSse?, columns?}.
// Every event is one JSON line on stdout; pytest reads them as they happen.
// On an error the stream pauses and reads one line from stdin: a new token to retry with,
// or an empty line to stop.
import { ShapeStream } from "@electric-sql/client";
import { createInterface } from "node:readline";

const config = JSON.parse(process.argv[2]);
const emit = (event) => process.stdout.write(JSON.stringify(event) + "\n");
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();

console.warn = (...args) => emit({ kind: "warn", message: args.map(String).join(" ") });

let token = config.token;
const fetchClient = async (input, init) => {
  const url = new URL(typeof input === "string" ? input : input.url);
  emit({ kind: "request", live: url.searchParams.get("live") === "true",
         sse: url.searchParams.get("live_sse") === "true", offset: url.searchParams.get("offset") });
  const response = await fetch(input, init);
  emit({ kind: "response", status: response.status, sse: url.searchParams.get("live_sse") === "true" });
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
    emit({ kind: "error", status: error.status ?? null, body: error.json ?? error.text ?? String(error) });
    const next = await lines.next();
    if (next.done || !next.value.trim()) {
      emit({ kind: "stopped" });
      process.exit(0);
    }
    token = next.value.trim();
    return { headers: { Authorization: `Bearer ${token}` } };
  },
});

stream.subscribe((messages) => {
  for (const message of messages) {
    if ("key" in message) {
      emit({ kind: "change", op: message.headers.operation, key: message.key, value: message.value });
    } else if (message.headers?.control) {
      emit({ kind: "control", control: message.headers.control });
    }
  }
}, (error) => emit({ kind: "fatal", message: String(error) }));

process.on("SIGTERM", () => { stream.unsubscribeAll(); process.exit(0); });
