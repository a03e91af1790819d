import OpenAI from "openai"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { keyMatches } from "../src/server/auth.ts"
import { postJson, sampleValue, scrape, sseEvents, startServer, waitFor, type RunningServer } from "./helpers/server.ts"

/**
 * What happens around requests: clients that leave, metrics, API keys, and shutdown. Each
 * runs against a real `bun run serve` process.
 */

const model = { model_name: "qwen3", engine: "0" }
/** n sequences of 240 tokens: about a second of work on the embedded model, long enough to catch mid-flight */
const long = { prompt: "a long one", max_tokens: 240, ignore_eos: true, n: 32 }

const engineState = async (url: string) => {
  const { samples } = await scrape(url)
  return {
    running: sampleValue(samples, "vllm:num_requests_running", model),
    kvCacheUsage: sampleValue(samples, "vllm:kv_cache_usage_perc", model),
    aborted: sampleValue(samples, "vllm:request_success_total", { ...model, finished_reason: "abort" }),
    generated: sampleValue(samples, "vllm:request_generation_tokens", model, "sum")
  }
}

describe("a client that disconnects", () => {
  let server: RunningServer
  beforeAll(async () => {
    server = await startServer()
  })
  afterAll(() => server?.kill())

  const expectFreedAfterAbort = async (start: (signal: AbortSignal) => Promise<unknown>) => {
    const before = await engineState(server.url)
    expect([before.running, before.kvCacheUsage]).toEqual([0, 0])
    const controller = new AbortController()
    const request = start(controller.signal).catch((e: unknown) => e)
    await waitFor(async () => (await engineState(server.url)).running > 0, 5000, "the request to run")
    const during = await engineState(server.url)
    expect(during.kvCacheUsage).toBeGreaterThan(0)
    controller.abort()
    await request
    await waitFor(async () => {
      const s = await engineState(server.url)
      return s.running === 0 && s.kvCacheUsage === 0
    }, 5000, "running 0 and KV cache usage 0")
    const after = await engineState(server.url)
    // every sequence ended as aborted, well before its 240 tokens
    expect(after.aborted - before.aborted).toBe(long.n)
    expect(after.generated - before.generated).toBeLessThan(long.n * long.max_tokens)
  }

  it("aborts its streaming request and frees its KV blocks", async () => {
    await expectFreedAfterAbort(async (signal) => {
      const response = await fetch(`${server.url}/v1/completions`, { method: "POST", body: JSON.stringify({ ...long, stream: true }), signal })
      const reader = response.body!.getReader()
      for (;;) if ((await reader.read()).done) break
    })
  })

  it("aborts its non-streaming request and frees its KV blocks", async () => {
    await expectFreedAfterAbort((signal) => fetch(`${server.url}/v1/completions`, { method: "POST", body: JSON.stringify(long), signal }))
  })

  it("leaves the server serving", async () => {
    const response = await postJson(`${server.url}/v1/completions`, { prompt: "after", max_tokens: 3 })
    expect(response.status).toBe(200)
  })
})

describe("/metrics, /health and /ready", () => {
  let server: RunningServer
  beforeAll(async () => {
    server = await startServer()
  })
  afterAll(() => server?.kill())

  it("exposes vLLM's families in Prometheus text that a parser reads whole, counting the requests served", async () => {
    const before = await scrape(server.url)
    const count = (s: typeof before, family: string) => sampleValue(s.samples, family, model, "count")
    await Promise.all(
      Array.from({ length: 3 }, () => postJson(`${server.url}/v1/completions`, { prompt: "count me", max_tokens: 4, ignore_eos: true }).then((r) => r.text()))
    )
    await postJson(`${server.url}/v1/chat/completions`, { messages: [{ role: "user", content: "and me" }], max_tokens: 4, ignore_eos: true, stream: true }).then((r) => r.text())
    const after = await scrape(server.url)
    expect(after.types.get("vllm:num_requests_running")).toBe("GAUGE")
    expect(after.types.get("vllm:request_success_total")).toBe("COUNTER")
    expect(after.types.get("vllm:time_to_first_token_seconds")).toBe("HISTOGRAM")
    for (const family of ["vllm:time_to_first_token_seconds", "vllm:e2e_request_latency_seconds", "vllm:request_queue_time_seconds", "vllm:request_generation_tokens"]) {
      expect(count(after, family) - count(before, family), family).toBe(4)
    }
    // 3 tokens after the first in each of the 4 requests
    expect(count(after, "vllm:inter_token_latency_seconds") - count(before, "vllm:inter_token_latency_seconds")).toBe(12)
    // the engine's per-step counters: 4 requests x 4 generated tokens, and at least their prompts
    const counter = (s: typeof before, family: string) => sampleValue(s.samples, family, model)
    expect(counter(after, "vllm:generation_tokens_total") - counter(before, "vllm:generation_tokens_total")).toBe(16)
    expect(counter(after, "vllm:prompt_tokens_total") - counter(before, "vllm:prompt_tokens_total")).toBeGreaterThan(4)
    expect(counter(after, "vllm:prefix_cache_queries_total") - counter(before, "vllm:prefix_cache_queries_total")).toBeGreaterThan(0)
    const length = { ...model, finished_reason: "length" }
    expect(sampleValue(after.samples, "vllm:request_success_total", length) - sampleValue(before.samples, "vllm:request_success_total", length)).toBe(4)
  })

  it("answers /health and /ready with 200 once warmed up", async () => {
    expect((await fetch(`${server.url}/health`)).status).toBe(200)
    const ready = await fetch(`${server.url}/ready`)
    expect(ready.status).toBe(200)
    expect(await ready.json()).toEqual({ status: "ready" })
  })
})

describe("--api-key", () => {
  const key = "s3cret-key"
  let server: RunningServer
  beforeAll(async () => {
    server = await startServer(["--api-key", key])
  })
  afterAll(() => server?.kill())

  it("refuses /v1/* without the right bearer token, with 401 invalid_api_key", async () => {
    for (const headers of [{} as Record<string, string>, { authorization: "Bearer wrong" }, { authorization: `Bearer ${key}x` }, { authorization: key }, { authorization: "Bearer " }]) {
      const response = await fetch(`${server.url}/v1/models`, { headers })
      expect(response.status).toBe(401)
      expect(((await response.json()) as { error: { code: string } }).error.code).toBe("invalid_api_key")
    }
    // before routing, so unknown /v1 paths do not reveal which routes exist
    expect((await fetch(`${server.url}/v1/secret-route`)).status).toBe(401)
    const completion = await postJson(`${server.url}/v1/completions`, { prompt: "x", max_tokens: 2 }, { authorization: "Bearer nope" })
    expect(completion.status).toBe(401)
  })

  it("serves the right key, through the OpenAI client too", async () => {
    expect((await fetch(`${server.url}/v1/models`, { headers: { authorization: `Bearer ${key}` } })).status).toBe(200)
    const client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: key, maxRetries: 0 })
    const completion = await client.completions.create({ model: "qwen3", prompt: "x", max_tokens: 2 })
    expect(completion.choices).toHaveLength(1)
    const refused = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "wrong", maxRetries: 0 })
    await expect(refused.models.list()).rejects.toBeInstanceOf(OpenAI.AuthenticationError)
  })

  it("keeps /health, /ready and /metrics open", async () => {
    for (const path of ["/health", "/ready", "/metrics"]) expect((await fetch(`${server.url}${path}`)).status, path).toBe(200)
  })

  it("compares keys whatever their lengths", () => {
    expect(keyMatches("abc", "Bearer abc")).toBe(true)
    expect(keyMatches("abc", "bearer abc")).toBe(true)
    expect(keyMatches("abc", "Bearer abcd")).toBe(false)
    expect(keyMatches("abc", "Bearer ab")).toBe(false)
    expect(keyMatches("abc", undefined)).toBe(false)
    expect(keyMatches("abc", "Basic abc")).toBe(false)
  })
})

describe("SIGTERM", () => {
  it("finishes the in-flight request, refuses new ones with 503, and exits 0", async () => {
    const server = await startServer()
    try {
      const response = await fetch(`${server.url}/v1/completions`, { method: "POST", body: JSON.stringify({ ...long, stream: true }) })
      const reader = response.body!.getReader()
      const decoder = new TextDecoder()
      let body = decoder.decode((await reader.read()).value)
      server.signal("SIGTERM")
      await waitFor(async () => (await fetch(`${server.url}/ready`)).status === 503, 5000, "/ready to report draining")
      const refused = await postJson(`${server.url}/v1/completions`, { prompt: "too late", max_tokens: 2 })
      expect(refused.status).toBe(503)
      expect(((await refused.json()) as { error: { code: string } }).error.code).toBe("service_unavailable")
      expect((await fetch(`${server.url}/health`)).status).toBe(200)

      for (;;) {
        const { done, value } = await reader.read()
        if (done) break
        body += decoder.decode(value)
      }
      const events = sseEvents(body)
      expect(events.at(-1)).toBe("[DONE]")
      const finished = events.slice(0, -1).flatMap((e) => (JSON.parse(e) as { choices: Array<{ finish_reason: string | null }> }).choices)
      expect(finished.filter((c) => c.finish_reason === "length")).toHaveLength(long.n)
      expect(await server.exited).toBe(0)
      expect(server.output()).toContain("drained, exiting")
    } finally {
      await server.kill()
    }
  })

  it("exits 0 at --drain-timeout even if a request is still running", async () => {
    const server = await startServer(["--drain-timeout", "0.3"])
    try {
      const response = await fetch(`${server.url}/v1/completions`, { method: "POST", body: JSON.stringify({ ...long, n: 64, stream: true }) })
      const reader = response.body!.getReader()
      await reader.read()
      // keep reading, as a live client does: the connection stays open until the server ends it
      const rest = (async () => {
        for (;;) if ((await reader.read().catch(() => ({ done: true }))).done) return
      })()
      const signalled = performance.now()
      server.signal("SIGTERM")
      expect(await server.exited).toBe(0)
      expect(performance.now() - signalled).toBeLessThan(3000)
      expect(server.output()).toContain("drain cut short")
      await rest
    } finally {
      await server.kill()
    }
  })
})
