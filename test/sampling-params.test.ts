import { Either, Schema } from "effect"
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { SamplingParams } from "../src/sampling/SamplingParams.ts"

const decode = Schema.decodeUnknownEither(SamplingParams)

describe("SamplingParams", () => {
  it("defaults follow OpenAI and vLLM", () => {
    expect(Either.getOrThrow(decode({}))).toEqual({
      n: 1,
      temperature: 1,
      topP: 1,
      topK: -1,
      minP: 0,
      presencePenalty: 0,
      frequencyPenalty: 0,
      repetitionPenalty: 1,
      stop: [],
      stopTokenIds: [],
      minTokens: 0,
      logitBias: {},
      ignoreEos: false,
    })
  })

  it("reads wire names, a single stop string, and null as absent", () => {
    const p = Either.getOrThrow(
      decode({ top_p: 0.5, top_k: 40, stop: "###", max_tokens: 7, seed: null, logprobs: 3, logit_bias: { "5": -100 } }),
    )
    expect(p).toMatchObject({ topP: 0.5, topK: 40, stop: ["###"], maxTokens: 7, logprobs: 3, logitBias: { "5": -100 } })
    expect(p.seed).toBeUndefined()
  })

  it.each([
    ["temperature < 0", { temperature: -0.1 }],
    ["top_p = 0", { top_p: 0 }],
    ["top_p > 1", { top_p: 1.01 }],
    ["top_k = 0", { top_k: 0 }],
    ["top_k = -2", { top_k: -2 }],
    ["min_p > 1", { min_p: 1.5 }],
    ["presence_penalty > 2", { presence_penalty: 2.5 }],
    ["frequency_penalty < -2", { frequency_penalty: -3 }],
    ["repetition_penalty = 0", { repetition_penalty: 0 }],
    ["logprobs > 20", { logprobs: 21 }],
    ["max_tokens = 0", { max_tokens: 0 }],
    ["min_tokens > max_tokens", { min_tokens: 5, max_tokens: 4 }],
    ["empty stop string", { stop: [""] }],
    ["negative stop token", { stop_token_ids: [-1] }],
    ["logit_bias key not a token id", { logit_bias: { a: 1 } }],
    ["logit_bias over 100", { logit_bias: { "3": 101 } }],
    ["n = 0", { n: 0 }],
    ["fractional seed", { seed: 1.5 }],
  ])("rejects %s", (_, raw) => {
    expect(Either.isLeft(decode(raw))).toBe(true)
  })

  it("accepts every in-range combination", () => {
    fc.assert(
      fc.property(
        fc.record(
          {
            temperature: fc.double({ min: 0, max: 5, noNaN: true }),
            top_p: fc.double({ min: Number.EPSILON, max: 1, noNaN: true }),
            top_k: fc.oneof(fc.constant(-1), fc.integer({ min: 1, max: 1000 })),
            min_p: fc.double({ min: 0, max: 1, noNaN: true }),
            presence_penalty: fc.double({ min: -2, max: 2, noNaN: true }),
            frequency_penalty: fc.double({ min: -2, max: 2, noNaN: true }),
            repetition_penalty: fc.double({ min: 0.01, max: 10, noNaN: true }),
            seed: fc.maxSafeInteger(),
            logprobs: fc.integer({ min: 0, max: 20 }),
            max_tokens: fc.integer({ min: 1, max: 100 }),
            stop: fc.array(fc.string({ minLength: 1 }), { maxLength: 4 }),
          },
          { requiredKeys: [] },
        ),
        (raw) => {
          expect(Either.isRight(decode(raw))).toBe(true)
        },
      ),
      { numRuns: 300 },
    )
  })
})
