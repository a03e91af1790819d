import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { rssBytes, sampleValue, scrape, sseEvents, startServer, waitFor, type RunningServer } from "./helpers/server.ts"

/**
 * A bounded load test on loopback: 200 concurrent streaming requests, all answered in full,
 * and the server's memory back near where it was, so per-request state does not leak.
 */

const concurrency = 200
const maxTokens = 8
/**
 * RSS may stay above its baseline by this much after the load: the allocator keeps some of
 * the pages the 200 requests touched. A leak of the requests' state (deltas, SSE buffers,
 * fibers) over three rounds of 200 grows well past it.
 */
const rssMarginBytes = 48 * 1024 * 1024

let server: RunningServer
beforeAll(async () => {
  server = await startServer()
})
afterAll(() => server?.kill())

const streamOne = async (i: number): Promise<{ text: string; tokens: number }> => {
  const response = await fetch(`${server.url}/v1/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ prompt: `request number ${i}`, max_tokens: maxTokens, ignore_eos: true, temperature: 0, stream: true, stream_options: { include_usage: true } })
  })
  const body = await response.text()
  if (response.status !== 200) throw new Error(`HTTP ${response.status}: ${body}`)
  const events = sseEvents(body)
  if (events.at(-1) !== "[DONE]") throw new Error(`no [DONE]: ${body.slice(-200)}`)
  const chunks = events.slice(0, -1).map((e) => JSON.parse(e) as { choices: Array<{ text: string }>; usage: { completion_tokens: number } | null; error?: unknown })
  if (chunks.some((c) => c.error)) throw new Error(`in-band error: ${body}`)
  return { text: chunks.map((c) => c.choices[0]?.text ?? "").join(""), tokens: chunks.at(-1)!.usage!.completion_tokens }
}

const round = () => Promise.all(Array.from({ length: concurrency }, (_, i) => streamOne(i)))

const settledRss = async () => {
  await waitFor(async () => sampleValue((await scrape(server.url)).samples, "vllm:num_requests_running", { model_name: "qwen3", engine: "0" }) === 0, 10_000, "idle")
  // the server collects garbage after 1 s idle (src/server/idleCollector.ts)
  await new Promise((resolve) => setTimeout(resolve, 1600))
  return rssBytes(server.pid)
}

describe(`${concurrency} concurrent streams`, () => {
  it("all complete without error, and RSS returns near its baseline", async () => {
    // the first round grows the heap and the allocator's pools to their working size
    const first = await round()
    const baseline = await settledRss()
    let peak = baseline
    for (let r = 0; r < 3; r++) {
      const sampler = setInterval(() => (peak = Math.max(peak, rssBytes(server.pid))), 50)
      const results = await round().finally(() => clearInterval(sampler))
      expect(results.every((r) => r.tokens === maxTokens)).toBe(true)
      // greedy: each prompt's text is the same in every round, however the batch was formed
      expect(results.map((r) => r.text)).toEqual(first.map((r) => r.text))
    }
    const after = await settledRss()
    const mib = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`
    console.log(`server RSS: baseline ${mib(baseline)}, peak ${mib(peak)}, after ${mib(after)} (margin ${mib(rssMarginBytes)})`)
    expect(after - baseline).toBeLessThan(rssMarginBytes)
    expect((await fetch(`${server.url}/ready`)).status).toBe(200)
  }, 120_000)
})
