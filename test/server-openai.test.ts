import OpenAI from "openai"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { generateJson, startServer, type RunningServer } from "./helpers/server.ts"

/**
 * The official OpenAI client against `bun run serve` on the embedded model: what it gets
 * must be exactly what `bun run generate --json` prints for the same prompt and sampling,
 * streamed or not, through both endpoints.
 */

let server: RunningServer
let client: OpenAI
const prompt = "Once upon a time"
const maxTokens = 24

beforeAll(async () => {
  server = await startServer()
  client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "unused", maxRetries: 0 })
})
afterAll(() => server?.kill())

const reference = {
  greedy: () => generateJson(["--prompt", prompt, "--max-tokens", String(maxTokens), "--temperature", "0"]),
  chat: () => generateJson(["--prompt", prompt, "--chat", "--max-tokens", String(maxTokens), "--temperature", "0"]),
  seeded: () => generateJson(["--prompt", prompt, "--max-tokens", String(maxTokens), "--temperature", "0.9", "--seed", "1234"])
}

describe("the OpenAI client on /v1/completions", () => {
  it("gets generate's greedy text, streamed and not, with usage", async () => {
    const expected = await reference.greedy()
    const completion = await client.completions.create({ model: "qwen3", prompt, max_tokens: maxTokens, temperature: 0 })
    expect(completion.object).toBe("text_completion")
    expect(completion.id).toMatch(/^cmpl-[0-9a-f]{32}$/)
    expect(completion.choices[0].text).toBe(expected.text)
    expect(completion.usage).toEqual({
      prompt_tokens: expected.prompt_ids.length,
      completion_tokens: expected.output_ids.length,
      total_tokens: expected.prompt_ids.length + expected.output_ids.length
    })

    const stream = await client.completions.create({
      model: "qwen3",
      prompt,
      max_tokens: maxTokens,
      temperature: 0,
      stream: true,
      stream_options: { include_usage: true }
    })
    let text = ""
    let finish: string | null = null
    let usage: OpenAI.CompletionUsage | null | undefined
    for await (const chunk of stream) {
      text += chunk.choices[0]?.text ?? ""
      finish = chunk.choices[0]?.finish_reason ?? finish
      if (chunk.usage) usage = chunk.usage
    }
    expect(text).toBe(expected.text)
    expect(finish).toBe(completion.choices[0].finish_reason)
    expect(usage).toEqual(completion.usage)
  })

  it("accepts a prompt of token ids", async () => {
    const expected = await reference.greedy()
    const completion = await client.completions.create({ model: "qwen3", prompt: expected.prompt_ids, max_tokens: maxTokens, temperature: 0 })
    expect(completion.choices[0].text).toBe(expected.text)
  })

  it("returns n seeded samples, the first equal to generate's with that seed, streamed or not", async () => {
    const expected = await reference.seeded()
    const request = { model: "qwen3", prompt, max_tokens: maxTokens, temperature: 0.9, seed: 1234, n: 3 }
    const completion = await client.completions.create(request)
    const texts = completion.choices.sort((a, b) => a.index - b.index).map((c) => c.text)
    expect(texts).toHaveLength(3)
    expect(texts[0]).toBe(expected.text)
    // the other samples draw other random numbers (with this seed, different text)
    expect(new Set(texts).size).toBeGreaterThan(1)

    const streamed = ["", "", ""]
    for await (const chunk of await client.completions.create({ ...request, stream: true })) {
      for (const choice of chunk.choices) streamed[choice.index] += choice.text
    }
    expect(streamed).toEqual(texts)
  })

  it("answers a batch of prompts with n choices each, indexed prompt-major as vLLM does", async () => {
    const other = "The end"
    const single = async (p: string) => (await client.completions.create({ model: "qwen3", prompt: p, max_tokens: 6, temperature: 0 })).choices[0].text
    const batch = await client.completions.create({ model: "qwen3", prompt: [prompt, other], max_tokens: 6, temperature: 0, n: 2 })
    const texts = batch.choices.sort((a, b) => a.index - b.index).map((c) => c.text)
    const [a, b] = [await single(prompt), await single(other)]
    expect(texts).toEqual([a, a, b, b])
    expect(batch.usage!.completion_tokens).toBe(4 * 6)
  })

  it("echoes the prompt before the completion when asked", async () => {
    const plain = await client.completions.create({ model: "qwen3", prompt, max_tokens: 5, temperature: 0 })
    const echoed = await client.completions.create({ model: "qwen3", prompt, max_tokens: 5, temperature: 0, echo: true })
    expect(echoed.choices[0].text).toBe(prompt + plain.choices[0].text)
  })

  it("returns logprobs in the legacy shape", async () => {
    const completion = await client.completions.create({ model: "qwen3", prompt, max_tokens: 5, temperature: 0, logprobs: 3 })
    const logprobs = completion.choices[0].logprobs!
    expect(logprobs.tokens).toHaveLength(5)
    expect(logprobs.token_logprobs!.every((lp) => lp <= 0)).toBe(true)
    expect(logprobs.text_offset![0]).toBe(0)
    for (const [i, top] of logprobs.top_logprobs!.entries()) {
      // the 3 most likely and the sampled one; greedy picks the most likely, so it is among them
      expect(Object.keys(top).length).toBeLessThanOrEqual(4)
      expect(Math.max(...Object.values(top))).toBeCloseTo(logprobs.token_logprobs![i], 5)
    }
    expect(logprobs.tokens!.join("")).toBe(completion.choices[0].text)
  })
})

describe("the OpenAI client on /v1/chat/completions", () => {
  it("gets generate --chat's greedy text, streamed and not", async () => {
    const expected = await reference.chat()
    const messages = [{ role: "user" as const, content: prompt }]
    const completion = await client.chat.completions.create({ model: "qwen3", messages, max_completion_tokens: maxTokens, temperature: 0 })
    expect(completion.object).toBe("chat.completion")
    expect(completion.id).toMatch(/^chatcmpl-/)
    expect(completion.choices[0].message).toMatchObject({ role: "assistant", content: expected.text })
    expect(completion.usage?.prompt_tokens).toBe(expected.prompt_ids.length)
    expect(completion.usage?.completion_tokens).toBe(expected.output_ids.length)

    let text = ""
    let role: string | undefined
    for await (const chunk of await client.chat.completions.create({ model: "qwen3", messages, max_tokens: maxTokens, temperature: 0, stream: true })) {
      expect(chunk.object).toBe("chat.completion.chunk")
      role ??= chunk.choices[0]?.delta.role
      text += chunk.choices[0]?.delta.content ?? ""
    }
    expect(role).toBe("assistant")
    expect(text).toBe(expected.text)
  })

  it("renders content given as text parts like the same content as a string", async () => {
    const asString = await client.chat.completions.create({ model: "qwen3", messages: [{ role: "user", content: "a\nb" }], max_tokens: 8, temperature: 0 })
    const asParts = await client.chat.completions.create({
      model: "qwen3",
      messages: [{ role: "user", content: [{ type: "text", text: "a" }, { type: "text", text: "b" }] }],
      max_tokens: 8,
      temperature: 0
    })
    expect(asParts.usage).toEqual(asString.usage)
    expect(asParts.choices[0].message.content).toBe(asString.choices[0].message.content)
  })

  it("returns chat logprobs with top alternatives and bytes", async () => {
    const completion = await client.chat.completions.create({
      model: "qwen3",
      messages: [{ role: "user", content: prompt }],
      max_tokens: 4,
      temperature: 0,
      logprobs: true,
      top_logprobs: 2,
      ignore_eos: true
    } as OpenAI.ChatCompletionCreateParamsNonStreaming)
    const content = completion.choices[0].logprobs!.content!
    expect(content).toHaveLength(4)
    for (const token of content) {
      expect(token.top_logprobs).toHaveLength(2)
      expect(token.bytes).toEqual(Array.from(new TextEncoder().encode(token.token)))
      expect(token.logprob).toBeCloseTo(token.top_logprobs[0].logprob, 5)
    }
  })

  it("stops at a stop string and says which one", async () => {
    const expected = await reference.chat()
    const stop = expected.text.slice(3, 5)
    const completion = await client.chat.completions.create({ model: "qwen3", messages: [{ role: "user", content: prompt }], max_tokens: maxTokens, temperature: 0, stop })
    const choice = completion.choices[0] as OpenAI.ChatCompletion.Choice & { stop_reason?: string }
    expect(choice.finish_reason).toBe("stop")
    expect(choice.stop_reason).toBe(stop)
    expect(choice.message.content).toBe(expected.text.slice(0, expected.text.indexOf(stop)))
  })

  it("lists the served model with its context length", async () => {
    const models = await client.models.list()
    expect(models.data).toHaveLength(1)
    expect(models.data[0]).toMatchObject({ id: "qwen3", object: "model", max_model_len: 256 })
    expect((await client.models.retrieve("qwen3")).id).toBe("qwen3")
  })
})
