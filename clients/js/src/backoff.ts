// Reconnection delays: doubling from `initialDelay` up to `maxDelay`, each between half and
// all of its step ("equal jitter"), so a fleet of clients cut off at once does not come back
// in step.

export interface Backoff {
  initialDelay: number // milliseconds
  maxDelay: number
}

export const RECONNECT: Backoff = { initialDelay: 250, maxDelay: 10_000 }

export function backoffDelay(attempt: number, backoff: Backoff, random = Math.random): number {
  const step = Math.min(backoff.maxDelay, backoff.initialDelay * 2 ** Math.max(0, attempt))
  return Math.round(step / 2 + (random() * step) / 2)
}

/** Resolves after `ms`, or at once when `signal` aborts. */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve()
    const done = () => {
      clearTimeout(timer)
      signal.removeEventListener("abort", done)
      resolve()
    }
    const timer = setTimeout(done, ms)
    signal.addEventListener("abort", done, { once: true })
  })
}
