// Server-sent events read from a fetch response body (the HTML standard's parsing rules):
// `EventSource` cannot send an Authorization header, fetch can. Lines end in \n, \r\n or \r,
// possibly split across chunks. `readEvents` skips comments (": heartbeat"), as EventSource
// does; `readMessages` hands them on too, in order, for the feed (": replayed N" ends a replay).

export interface ServerSentEvent {
  id: string | null
  event: string
  data: string
}

/** A comment line: its text after the colon (and the one space after it, if any). */
export interface ServerSentComment {
  comment: string
}

function dispatch(lines: string[]): ServerSentEvent | null {
  let id: string | null = null
  let event = "message"
  const data: string[] = []
  for (const line of lines) {
    const colon = line.indexOf(":")
    const field = colon < 0 ? line : line.slice(0, colon)
    let value = colon < 0 ? "" : line.slice(colon + 1)
    if (value.startsWith(" ")) value = value.slice(1)
    if (field === "data") data.push(value)
    else if (field === "id") id = value
    else if (field === "event") event = value
  }
  return data.length > 0 ? { id, event, data: data.join("\n") } : null
}

export async function* readEvents(
  body: ReadableStream<Uint8Array>,
): AsyncGenerator<ServerSentEvent, void, undefined> {
  for await (const message of readMessages(body)) {
    if (!("comment" in message)) yield message
  }
}

export async function* readMessages(
  body: ReadableStream<Uint8Array>,
): AsyncGenerator<ServerSentEvent | ServerSentComment, void, undefined> {
  const reader = body.getReader()
  const decoder = new TextDecoder()
  let buffer = ""
  let pending: string[] = []
  let skipNewline = false // the \n of a \r\n whose \r ended the previous chunk
  try {
    for (;;) {
      const { value, done } = await reader.read()
      if (done) return
      buffer += decoder.decode(value, { stream: true })
      let start = 0
      for (let i = 0; i < buffer.length; i++) {
        const char = buffer[i]
        if (char === "\n" && skipNewline && i === start) {
          skipNewline = false
          start = i + 1
          continue
        }
        skipNewline = false
        if (char !== "\n" && char !== "\r") continue
        const line = buffer.slice(start, i)
        if (char === "\r") {
          if (buffer[i + 1] === "\n") i++
          else if (i + 1 === buffer.length) skipNewline = true
        }
        start = i + 1
        if (line === "") {
          const event = dispatch(pending)
          pending = []
          if (event !== null) yield event
        } else if (line.startsWith(":")) {
          yield { comment: line.startsWith(": ") ? line.slice(2) : line.slice(1) }
        } else {
          pending.push(line)
        }
      }
      buffer = buffer.slice(start)
    }
  } finally {
    reader.cancel().catch(() => {})
  }
}
