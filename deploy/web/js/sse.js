// Server-sent events read with fetch: the Authorization header goes along (EventSource cannot
// send one), and a refusal's JSON body is readable. Yields {id, event, data} per event;
// comments (": heartbeat") are skipped. Lines may end in \n, \r\n or \r.

export class FeedRefused extends Error {
  constructor(status, body, requestId) {
    super(body?.message ?? `HTTP ${status}`)
    this.status = status
    this.code = body?.error ?? null
    this.requestId = requestId
  }
}

function parse(block) {
  const event = { id: null, event: "message", data: [] }
  for (const line of block.split("\n")) {
    if (line === "" || line.startsWith(":")) continue
    const colon = line.indexOf(":")
    const field = colon < 0 ? line : line.slice(0, colon)
    let value = colon < 0 ? "" : line.slice(colon + 1)
    if (value.startsWith(" ")) value = value.slice(1)
    if (field === "data") event.data.push(value)
    else if (field === "id") event.id = value
    else if (field === "event") event.event = value
  }
  return event.data.length ? { ...event, data: event.data.join("\n") } : null
}

export async function* readSse(url, { headers = {}, signal, onOpen } = {}) {
  const response = await fetch(url, {
    headers: { Accept: "text/event-stream", ...headers },
    signal,
    cache: "no-store",
  })
  if (!response.ok) {
    const body = await response.json().catch(() => null)
    throw new FeedRefused(response.status, body, response.headers.get("x-request-id"))
  }
  onOpen?.(response)
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader()
  let buffer = ""
  try {
    for (;;) {
      const { value, done } = await reader.read()
      if (done) return
      // A \r at the very end may be half of a \r\n: normalise it once the next chunk comes.
      buffer = (buffer + value).replace(/\r\n|\r(?!$)/g, "\n")
      let end
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const event = parse(buffer.slice(0, end))
        buffer = buffer.slice(end + 2)
        if (event) yield event
      }
    }
  } finally {
    reader.cancel().catch(() => {})
  }
}
