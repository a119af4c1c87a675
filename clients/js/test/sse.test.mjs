// Server-sent events parsed from a fetch body, however the bytes are split.
import assert from "node:assert/strict"
import { test } from "node:test"

import { readEvents } from "../dist/index.js"
import { readMessages } from "../dist/sse.js"

function body(chunks) {
  const encoder = new TextEncoder()
  return new ReadableStream({
    start(controller) {
      for (const chunk of chunks) controller.enqueue(encoder.encode(chunk))
      controller.close()
    },
  })
}

async function all(chunks) {
  const events = []
  for await (const event of readEvents(body(chunks))) events.push(event)
  return events
}

const TEXT =
  ": connected\n\nid: 1-0\nevent: tenant.suspended\ndata: {\"a\":1}\n\n: heartbeat\n\n" +
  "id: 2-0\r\nevent: tenant.reinstated\r\ndata: line one\r\ndata: line two\r\n\r\n" +
  "data:no space\r\rid: 3-0\n"

const EXPECTED = [
  { id: "1-0", event: "tenant.suspended", data: "{\"a\":1}" },
  { id: "2-0", event: "tenant.reinstated", data: "line one\nline two" },
  { id: null, event: "message", data: "no space" },
]

test("events, comments and every line ending, in one chunk", async () => {
  assert.deepEqual(await all([TEXT]), EXPECTED)
})

test("the same bytes split at every position, a \\r\\n split in two included", async () => {
  for (let i = 1; i < TEXT.length; i++) {
    assert.deepEqual(await all([TEXT.slice(0, i), TEXT.slice(i)]), EXPECTED, `split at ${i}`)
  }
})

test("a multi-byte character split across chunks", async () => {
  const bytes = new TextEncoder().encode("data: é\n\n")
  const stream = new ReadableStream({
    start(controller) {
      controller.enqueue(bytes.slice(0, 7))
      controller.enqueue(bytes.slice(7))
      controller.close()
    },
  })
  const events = []
  for await (const event of readEvents(stream)) events.push(event)
  assert.deepEqual(events, [{ id: null, event: "message", data: "é" }])
})

test("readMessages hands comments on too, in order, however the bytes are split", async () => {
  const text = ": connected\n\nid: 1-0\ndata: a\n\n: replayed 1\r\n\r\n:no space\rid: 2-0\ndata: b\n\n"
  const expected = [
    { comment: "connected" },
    { id: "1-0", event: "message", data: "a" },
    { comment: "replayed 1" },
    { comment: "no space" },
    { id: "2-0", event: "message", data: "b" },
  ]
  for (let i = 1; i < text.length; i++) {
    const messages = []
    for await (const message of readMessages(body([text.slice(0, i), text.slice(i)]))) messages.push(message)
    assert.deepEqual(messages, expected, `split at ${i}`)
  }
})
