import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { postJson, startServer, type RunningServer } from "./helpers/server.ts"

/**
 * Every way a request can be wrong, over raw HTTP: the status, OpenAI's error body, and a
 * normal request answered right after, so no bad request leaves the server worse off.
 */

let server: RunningServer
const bodyLimit = 4096

beforeAll(async () => {
  // a small body limit and queue, so 413 and 429 are cheap to reach
  server = await startServer(["--max-request-body-bytes", String(bodyLimit), "--max-num-seqs", "1", "--max-waiting-requests", "1"])
})
afterAll(() => server?.kill())

const completions = () => `${server.url}/v1/completions`
const chat = () => `${server.url}/v1/chat/completions`

const expectError = async (response: Response, status: number, expected: { code?: string | null; param?: string | null; message?: RegExp } = {}) => {
  const text = await response.text()
  expect(response.status, text).toBe(status)
  expect(response.headers.get("content-type")).toContain("application/json")
  const body = JSON.parse(text) as { error: Record<string, unknown> }
  expect(Object.keys(body)).toEqual(["error"])
  expect(Object.keys(body.error).sort()).toEqual(["code", "message", "param", "type"])
  expect(body.error.message).toEqual(expect.any(String))
  expect((body.error.message as string).length).toBeGreaterThan(0)
  if (expected.code !== undefined) expect(body.error.code).toBe(expected.code)
  if (expected.param !== undefined) expect(body.error.param).toBe(expected.param)
  if (expected.message) expect(body.error.message).toMatch(expected.message)
  // and the server goes on serving
  const ok = await postJson(completions(), { prompt: "still there?", max_tokens: 2 })
  expect(ok.status).toBe(200)
  expect(((await ok.json()) as { choices: unknown[] }).choices).toHaveLength(1)
  return body.error
}

const raw = (url: string, body: RequestInit["body"], headers: Record<string, string> = {}) =>
  fetch(url, { method: "POST", headers: { "content-type": "application/json", ...headers }, body })

describe("malformed requests", () => {
  it("400 for a body that is not JSON, not an object, or not UTF-8", async () => {
    await expectError(await raw(completions(), "{not json"), 400, { message: /not valid JSON/ })
    await expectError(await fetch(completions(), { method: "POST" }), 400, { message: /empty/ })
    await expectError(await raw(completions(), "[1, 2]"), 400, { message: /JSON object/ })
    await expectError(await raw(completions(), new Uint8Array([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d])), 400, { message: /UTF-8/ })
  })

  it("400 naming the field for missing fields and wrong types", async () => {
    await expectError(await postJson(completions(), { max_tokens: 3 }), 400, { param: "prompt", message: /missing/ })
    await expectError(await postJson(completions(), { prompt: 42 }), 400, { param: "prompt" })
    await expectError(await postJson(completions(), { prompt: "x", temperature: "hot" }), 400, { param: "temperature" })
    await expectError(await postJson(completions(), { prompt: "x", stream: "yes" }), 400, { param: "stream" })
    expect(String((await expectError(await postJson(chat(), { messages: [] }), 400)).param)).toMatch(/^messages/)
    await expectError(await postJson(chat(), { messages: [{ role: "wizard", content: "hi" }] }), 400, { param: "messages.0.role" })
  })
})

describe("values out of range", () => {
  const cases: ReadonlyArray<[string, Record<string, unknown>]> = [
    ["top_p", { top_p: 1.5 }],
    ["temperature", { temperature: -0.1 }],
    ["n", { n: 0 }],
    ["max_tokens", { max_tokens: -1 }],
    ["presence_penalty", { presence_penalty: 2.5 }],
    ["frequency_penalty", { frequency_penalty: -3 }],
    ["repetition_penalty", { repetition_penalty: 0 }],
    ["top_k", { top_k: 0 }],
    ["min_p", { min_p: 1.5 }],
    ["logprobs", { logprobs: 21 }],
    ["logit_bias", { logit_bias: { "12": 101 } }],
    ["stop", { stop: [""] }],
    ["seed", { seed: 1.5 }]
  ]
  for (const [param, values] of cases) {
    it(`400 for ${param} ${JSON.stringify(Object.values(values)[0])}`, async () => {
      const error = await expectError(await postJson(completions(), { prompt: "x", ...values }), 400)
      expect(String(error.param)).toMatch(new RegExp(`^${param}`))
    })
  }

  it("400 for min_tokens above max_tokens, and for top_logprobs without logprobs", async () => {
    await expectError(await postJson(completions(), { prompt: "x", max_tokens: 2, min_tokens: 5 }), 400, { message: /min_tokens/ })
    await expectError(await postJson(chat(), { messages: [{ role: "user", content: "x" }], top_logprobs: 2 }), 400, { param: "top_logprobs" })
  })
})

describe("prompts the model cannot take", () => {
  it("400 for an empty prompt", async () => {
    await expectError(await postJson(completions(), { prompt: "" }), 400, { param: "prompt", message: /empty/ })
  })

  it("400 naming logit_bias for a token id outside the vocabulary", async () => {
    await expectError(await postJson(completions(), { prompt: "x", logit_bias: { "10000000": 1 } }), 400, { param: "logit_bias", message: /vocabulary/ })
  })

  it("400 context_length_exceeded for a prompt longer than max_model_len, with vLLM's message", async () => {
    const error = await expectError(await postJson(completions(), { prompt: "word ".repeat(300) }), 400, { code: "context_length_exceeded" })
    expect(error.message).toMatch(/maximum context length is 256 tokens\. However, your request has \d+ input tokens/)
  })

  it("400 when max_tokens does not fit beside the prompt", async () => {
    const error = await expectError(await postJson(completions(), { prompt: "hello", max_tokens: 300 }), 400, { param: "max_tokens", code: "context_length_exceeded" })
    expect(error.message).toMatch(/'max_tokens' or 'max_completion_tokens' is too large: 300/)
    await expectError(await postJson(chat(), { messages: [{ role: "user", content: "hi" }], max_completion_tokens: 1000 }), 400, { code: "context_length_exceeded" })
  })

  it("400 for token ids outside the vocabulary", async () => {
    await expectError(await postJson(completions(), { prompt: [1, 2, 100000] }), 400, { message: /vocabulary/ })
  })
})

describe("what the server does not do", () => {
  it("404 model_not_found for another model", async () => {
    await expectError(await postJson(completions(), { model: "gpt-4", prompt: "x" }), 404, { code: "model_not_found", param: "model" })
    await expectError(await fetch(`${server.url}/v1/models/gpt-4`), 404, { code: "model_not_found" })
  })

  it("422 for well-formed requests of unsupported features", async () => {
    const user = [{ role: "user", content: "x" }]
    await expectError(await postJson(chat(), { messages: user, tools: [{ type: "function", function: { name: "f" } }] }), 422, { param: "tools" })
    await expectError(await postJson(chat(), { messages: user, response_format: { type: "json_object" } }), 422, { param: "response_format" })
    const image = [{ role: "user", content: [{ type: "image_url", image_url: { url: "data:," } }] }]
    await expectError(await postJson(chat(), { messages: image }), 422, { param: "messages.0.content" })
    await expectError(await postJson(completions(), { prompt: "x", suffix: "y" }), 422, { param: "suffix" })
  })

  it("404 for an unknown route and 405 with Allow for a wrong method", async () => {
    await expectError(await fetch(`${server.url}/v1/embeddings`, { method: "POST", body: "{}" }), 404, { code: "not_found" })
    await expectError(await fetch(`${server.url}/nowhere`), 404)
    const wrong = await fetch(completions())
    expect(wrong.headers.get("allow")).toBe("POST")
    await expectError(wrong, 405, { code: "method_not_allowed" })
    await expectError(await fetch(`${server.url}/v1/models`, { method: "DELETE" }), 405)
  })
})

describe("limits", () => {
  it("413 for a body over --max-request-body-bytes, declared or streamed without a length", async () => {
    const big = JSON.stringify({ prompt: "x".repeat(bodyLimit) })
    await expectError(await raw(completions(), big), 413, { code: "request_too_large" })
    const chunked = new ReadableStream({
      start(controller) {
        for (let i = 0; i < 8; i++) controller.enqueue(new TextEncoder().encode(" ".repeat(1024)))
        controller.enqueue(new TextEncoder().encode("{}"))
        controller.close()
      }
    })
    await expectError(await raw(completions(), chunked), 413)
  })

  it("429 with Retry-After once the waiting queue is full, and serves the rest", async () => {
    // one running, one waiting in the scheduler, one in the engine's intake: the rest are refused
    const long = { prompt: "queue", max_tokens: 200, ignore_eos: true }
    const responses = await Promise.all(Array.from({ length: 8 }, () => postJson(completions(), long)))
    const statuses = responses.map((r) => r.status)
    expect(statuses.filter((s) => s === 200).length).toBeGreaterThanOrEqual(2)
    const refused = responses.filter((r) => r.status === 429)
    expect(refused.length).toBeGreaterThan(0)
    expect(refused[0].headers.get("retry-after")).toBe("1")
    for (const r of responses.filter((r) => r.status === 200)) expect(((await r.json()) as { usage: { completion_tokens: number } }).usage.completion_tokens).toBe(200)
    await expectError(refused[0], 429, { code: "rate_limit_exceeded" })
  })
})
