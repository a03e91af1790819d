import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { sendCompletion } from "../bench/serve/client.ts"
import { randomPrompts } from "../bench/serve/prompts.ts"
import { formatTable, type ServeResult } from "../bench/serve/report.ts"
import { arrivalGaps, runLoad } from "../bench/serve/run.ts"
import { percentile, summarize } from "../bench/serve/summary.ts"

/**
 * The benchmark's client against a small real HTTP server that streams OpenAI completion
 * chunks over SSE with known delays, so every measured time has a known lower bound.
 */

const firstTokenDelayMs = 80
const tokenDelayMs = 25
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

interface ReceivedBody {
  model: string
  prompt: string
  max_tokens: number
  ignore_eos: boolean
  stream: boolean
  stream_options: { include_usage: boolean }
  temperature: number
}

const server = {
  inFlight: 0,
  peakInFlight: 0,
  bodies: [] as Array<ReceivedBody>,
  instance: undefined as ReturnType<typeof Bun.serve> | undefined,
  get url() {
    return `http://127.0.0.1:${this.instance!.port}`
  }
}

/** Prompt markers steer the fake server: FAIL answers 500, NOUSAGE omits usage, SPLIT cuts events in two. */
const completionStream = (body: ReceivedBody): ReadableStream<Uint8Array> => {
  const encoder = new TextEncoder()
  const event = (data: unknown) => `data: ${typeof data === "string" ? data : JSON.stringify(data)}\n\n`
  return new ReadableStream({
    async start(controller) {
      server.inFlight++
      server.peakInFlight = Math.max(server.peakInFlight, server.inFlight)
      try {
        await sleep(firstTokenDelayMs)
        for (let i = 0; i < body.max_tokens; i++) {
          if (i > 0) await sleep(tokenDelayMs)
          const chunk = event({ id: "cmpl-1", object: "text_completion", choices: [{ index: 0, text: ` t${i}`, finish_reason: null }] })
          if (body.prompt.includes("SPLIT")) {
            // one event across two network writes: the client must wait for its blank line
            controller.enqueue(encoder.encode(chunk.slice(0, 10)))
            await sleep(5)
            controller.enqueue(encoder.encode(chunk.slice(10)))
          } else {
            controller.enqueue(encoder.encode(chunk))
          }
        }
        if (!body.prompt.includes("NOUSAGE")) {
          const promptTokens = body.prompt.split(" ").length
          controller.enqueue(
            encoder.encode(event({ choices: [], usage: { prompt_tokens: promptTokens, completion_tokens: body.max_tokens } }))
          )
        }
        controller.enqueue(encoder.encode(event("[DONE]")))
        controller.close()
      } finally {
        server.inFlight--
      }
    }
  })
}

beforeAll(() => {
  server.instance = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch: async (request) => {
      const path = new URL(request.url).pathname
      if (path === "/v1/models") return Response.json({ object: "list", data: [{ id: "tiny-test", object: "model" }] })
      if (path !== "/v1/completions" || request.method !== "POST") return new Response("not found", { status: 404 })
      const body = (await request.json()) as ReceivedBody
      server.bodies.push(body)
      if (body.prompt.includes("FAIL")) return new Response("engine exploded", { status: 500 })
      return new Response(completionStream(body), { headers: { "content-type": "text/event-stream" } })
    }
  })
})
afterAll(() => server.instance?.stop(true))

const completionsUrl = () => `${server.url}/v1/completions`
const request = (prompt: string, maxTokens = 4) =>
  sendCompletion({ url: completionsUrl(), model: "tiny-test", prompt, maxTokens, timeoutSeconds: 30 })

describe("serving benchmark client", () => {
  it("sends vLLM's benchmark request and times the stream", async () => {
    const result = await request("hello there world", 4)
    expect(server.bodies.at(-1)).toMatchObject({
      model: "tiny-test",
      prompt: "hello there world",
      max_tokens: 4,
      ignore_eos: true,
      stream: true,
      stream_options: { include_usage: true },
      temperature: 0
    })
    if (!result.ok) throw new Error(result.error)
    expect(result.text).toBe(" t0 t1 t2 t3")
    expect([result.outputTokens, result.outputTokensFromUsage, result.promptTokens]).toEqual([4, true, 3])
    expect(result.ttftSeconds).toBeGreaterThanOrEqual(firstTokenDelayMs / 1000)
    expect(result.itlSeconds).toHaveLength(3)
    // A chunk cannot arrive before the server sends it, so the end-to-end bound is exact; one
    // gap may shrink if a stalled event loop delivers two chunks at once, so the gaps are
    // checked by their median. 2 ms allow for timer granularity.
    expect(result.latencySeconds).toBeGreaterThanOrEqual((firstTokenDelayMs + 3 * tokenDelayMs - 2) / 1000)
    const sorted = [...result.itlSeconds].sort((a, b) => a - b)
    expect(sorted[1]).toBeGreaterThanOrEqual((tokenDelayMs - 2) / 1000)
    const sumOfParts = result.ttftSeconds + result.itlSeconds.reduce((a, b) => a + b, 0)
    expect(result.latencySeconds).toBeCloseTo(sumOfParts, 6)
  })

  it("reassembles events split across reads, and counts chunks when the server sends no usage", async () => {
    const result = await request("SPLIT NOUSAGE", 3)
    if (!result.ok) throw new Error(result.error)
    expect([result.text, result.outputTokens, result.outputTokensFromUsage]).toEqual([" t0 t1 t2", 3, false])
    expect(result.promptTokens).toBeUndefined()
  })

  it("reports an HTTP error as a failed request", async () => {
    const result = await request("please FAIL")
    expect(result.ok).toBe(false)
    if (!result.ok) expect(result.error).toContain("HTTP 500")
  })
})

describe("serving benchmark load and metrics", () => {
  it("bounds concurrency and computes vLLM's metrics from the measured requests", async () => {
    server.peakInFlight = 0
    const prompts = [...randomPrompts(5, 6, 1), "this one will FAIL"]
    const run = await runLoad({
      url: completionsUrl(),
      model: "tiny-test",
      prompts,
      outputLen: 4,
      requestRate: Infinity,
      maxConcurrency: 2,
      seed: 0,
      timeoutSeconds: 30
    })
    expect(run.results).toHaveLength(6)
    expect(run.peakConcurrency).toBe(2)
    expect(server.peakInFlight).toBeLessThanOrEqual(2)

    const metrics = summarize(run, prompts.map(() => 6))
    expect([metrics.completed, metrics.failed]).toEqual([5, 1])
    expect(metrics.errors[0]).toContain("HTTP 500")
    expect([metrics.totalInputTokens, metrics.totalOutputTokens]).toEqual([5 * 6, 5 * 4])
    expect(metrics.ttftMs.median).toBeGreaterThanOrEqual(firstTokenDelayMs)
    expect(metrics.itlMs.median).toBeGreaterThanOrEqual(tokenDelayMs - 2)
    // TPOT is (latency - TTFT) over the 3 tokens after the first: the mean ITL of a request
    expect(metrics.tpotMs.mean).toBeCloseTo(metrics.itlMs.mean, 0)
    expect(metrics.e2elMs.mean).toBeGreaterThanOrEqual(firstTokenDelayMs + 3 * (tokenDelayMs - 2))
    // 5 successes, two at a time, each at least 80 + 3 x 25 ms: at least three rounds
    expect(run.durationSeconds).toBeGreaterThanOrEqual((3 * (firstTokenDelayMs + 3 * tokenDelayMs)) / 1000 - 0.01)
    expect(metrics.requestThroughput).toBeCloseTo(5 / run.durationSeconds, 6)
    expect(metrics.outputThroughput).toBeCloseTo(20 / run.durationSeconds, 6)

    const table = formatTable(metrics, { requestRate: Infinity, maxConcurrency: 2 })
    for (const heading of ["Serving Benchmark Result", "Time to First Token", "Inter-token Latency", "Mean TPOT (ms):"]) {
      expect(table).toContain(heading)
    }
    expect(table).toMatch(/Successful requests:\s+5\n/)
  })

  it("spaces arrivals as a seeded Poisson process", async () => {
    const gaps = arrivalGaps(4000, 20, 7)
    const mean = gaps.reduce((a, b) => a + b, 0) / gaps.length
    expect(mean).toBeCloseTo(1 / 20, 2)
    expect(arrivalGaps(10, 20, 7)).toEqual(gaps.slice(0, 10))
    expect(arrivalGaps(3, Infinity, 7)).toEqual([0, 0, 0])

    const run = await runLoad({
      url: completionsUrl(),
      model: "tiny-test",
      prompts: randomPrompts(4, 3, 2),
      outputLen: 1,
      requestRate: 20,
      seed: 3,
      timeoutSeconds: 30
    })
    const offered = arrivalGaps(4, 20, 3).slice(0, 3).reduce((a, b) => a + b, 0)
    expect(run.durationSeconds).toBeGreaterThanOrEqual(offered + firstTokenDelayMs / 1000)
  })

  it("takes percentiles as numpy does", () => {
    expect(percentile([1, 2, 3, 4], 50)).toBe(2.5)
    expect(percentile([0, 10], 99)).toBeCloseTo(9.9)
    expect(percentile([], 99)).toBe(0)
  })

  it("draws distinct, reproducible random prompts of the asked length", () => {
    const prompts = randomPrompts(3, 50, 9)
    expect(new Set(prompts).size).toBe(3)
    for (const prompt of prompts) expect(prompt.split(" ")).toHaveLength(50)
    expect(randomPrompts(3, 50, 9)).toEqual(prompts)
  })
})

describe("bench:serve command", () => {
  it("runs against the server and writes the result JSON and the plot", async () => {
    const dir = await mkdtemp(join(tmpdir(), "bench-serve-"))
    try {
      const resultFile = join(dir, "result.json")
      const plot = join(dir, "latency.svg")
      const args = ["--url", server.url, "--request-rate", "inf", "--request-rate", "40", "--num-prompts", "3"]
      args.push("--input-len", "8", "--output-len", "3", "--result-file", resultFile, "--plot", plot)
      const child = Bun.spawn([process.execPath, "bench/serve.ts", ...args], { stdout: "pipe", stderr: "pipe" })
      const [stdout, stderr, code] = await Promise.all([
        new Response(child.stdout).text(),
        new Response(child.stderr).text(),
        child.exited
      ])
      expect(code, stderr).toBe(0)
      expect(stdout.match(/Serving Benchmark Result/g)).toHaveLength(2)
      expect(stderr).toContain("3/3") // progress, on stderr

      const result = (await Bun.file(resultFile).json()) as ServeResult
      expect(result.url).toBe(`${server.url}/v1/completions`)
      expect(result.command).toBe(`bun run bench:serve ${args.join(" ")}`)
      expect(Date.parse(result.date)).not.toBeNaN()
      expect(result.commit === null || /^[0-9a-f]{40}$/.test(result.commit)).toBe(true)
      expect(result.parameters).toMatchObject({ model: "tiny-test", numPrompts: 3, inputLen: 8, outputLen: 3 })
      expect(result.runs.map((r) => [r.requestRate, r.metrics.completed, r.metrics.totalOutputTokens])).toEqual([
        ["inf", 3, 9],
        [40, 3, 9]
      ])
      const svg = await Bun.file(plot).text()
      expect(svg).toContain("<svg")
      expect(svg.match(/<polyline/g)).toHaveLength(6)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})
