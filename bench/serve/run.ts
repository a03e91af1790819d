import { philoxUniform, seedKey } from "../../src/sampling/philox.ts"
import { sendCompletion, type RequestResult } from "./client.ts"

/**
 * Offers load the way vLLM's benchmark_serving does: requests arrive as a Poisson process
 * at `requestRate` per second (all at once for Infinity), and a request that arrives while
 * `maxConcurrency` are in flight waits for one to finish. The wait is the client's, not the
 * server's, so it is not part of the request's TTFT or latency.
 */

export interface LoadOptions {
  readonly url: string
  readonly model: string
  readonly prompts: ReadonlyArray<string>
  readonly outputLen: number
  readonly requestRate: number
  readonly maxConcurrency?: number
  readonly seed: number
  readonly timeoutSeconds: number
  /** called after every finished request */
  readonly onProgress?: (finished: number, total: number) => void
  /** the request sender; the streaming HTTP client unless a caller swaps it */
  readonly send?: typeof sendCompletion
}

export interface LoadRun {
  readonly results: ReadonlyArray<RequestResult>
  /** first arrival to last finish, seconds */
  readonly durationSeconds: number
  readonly peakConcurrency: number
}

/** Seconds between arrivals: exponential with mean 1/rate, from a seeded counter-based stream. */
export const arrivalGaps = (count: number, rate: number, seed: number): Array<number> => {
  if (rate === Infinity) return new Array<number>(count).fill(0)
  const [lo, hi] = seedKey(seed)
  const scratch = new Uint32Array(4)
  return Array.from({ length: count }, (_, i) => -Math.log(1 - philoxUniform(lo, hi, i, 0, scratch)) / rate)
}

/** A counting semaphore: `acquire` resolves once fewer than `limit` holders remain. */
const semaphore = (limit: number) => {
  let held = 0
  const waiting: Array<() => void> = []
  return {
    acquire: async () => {
      if (held >= limit) await new Promise<void>((resolve) => waiting.push(resolve))
      held++
    },
    release: () => {
      held--
      waiting.shift()?.()
    }
  }
}

const sleep = (seconds: number) => new Promise((resolve) => setTimeout(resolve, seconds * 1000))

export const runLoad = async (options: LoadOptions): Promise<LoadRun> => {
  const send = options.send ?? sendCompletion
  const total = options.prompts.length
  const gaps = arrivalGaps(total, options.requestRate, options.seed)
  const slots = semaphore(options.maxConcurrency ?? Infinity)
  let inFlight = 0
  let peakConcurrency = 0
  let finished = 0

  const issue = async (prompt: string): Promise<RequestResult> => {
    await slots.acquire()
    inFlight++
    peakConcurrency = Math.max(peakConcurrency, inFlight)
    try {
      return await send({
        url: options.url,
        model: options.model,
        prompt,
        maxTokens: options.outputLen,
        timeoutSeconds: options.timeoutSeconds
      })
    } finally {
      inFlight--
      slots.release()
      options.onProgress?.(++finished, total)
    }
  }

  const start = performance.now()
  const pending: Array<Promise<RequestResult>> = []
  for (let i = 0; i < total; i++) {
    pending.push(issue(options.prompts[i]))
    // the gap after the last arrival is drawn but not slept
    if (i + 1 < total && gaps[i] > 0) await sleep(gaps[i])
  }
  const results = await Promise.all(pending)
  return { results, durationSeconds: (performance.now() - start) / 1000, peakConcurrency }
}
