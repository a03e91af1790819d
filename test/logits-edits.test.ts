import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { applyLogitsEdits, logitsEdits } from "../src/sampling/logitsEdits.ts"
import { Sampler } from "../src/sampling/sampler.ts"
import { decodeSamplingParamsSync } from "../src/sampling/SamplingParams.ts"
import { makeSamplingState, recordOutputToken } from "../src/sampling/samplingState.ts"

/**
 * The edits a device sampler applies (src/sampling/logitsEdits.ts: applyLogitsEdits, which
 * cuda/sampler.cu's apply_edits follows) against the CPU sampler's own logits processors: a
 * row edited that way must give the distribution the CPU sampler builds from the same request
 * (temperature 1, nothing pruned): the same ids kept and the same probabilities.
 */

const V = 50
const requestArb = fc.record({
  logits: fc.array(fc.float({ min: -8, max: 8, noNaN: true }), { minLength: V, maxLength: V }),
  bias: fc.dictionary(fc.integer({ min: 0, max: V - 1 }).map(String), fc.constantFrom(-100, -2.5, 0.75, 4)),
  presence: fc.constantFrom(0, 0.5, -1.25),
  frequency: fc.constantFrom(0, 0.3, -0.7),
  repetition: fc.constantFrom(1, 1.2, 0.8),
  minTokens: fc.integer({ min: 0, max: 6 }),
  stops: fc.array(fc.integer({ min: 0, max: V - 1 }), { maxLength: 3 }),
  prompt: fc.array(fc.integer({ min: 0, max: V - 1 }), { maxLength: 20 }),
  outputs: fc.array(fc.integer({ min: 0, max: 9 }), { maxLength: 12 })
})

describe("logits edits", () => {
  it("edited as the device does, a row gives the CPU sampler's distribution", () => {
    fc.assert(
      fc.property(requestArb, (r) => {
        const params = decodeSamplingParamsSync({
          temperature: 1, logit_bias: r.bias, presence_penalty: r.presence, frequency_penalty: r.frequency,
          repetition_penalty: r.repetition, min_tokens: r.minTokens, stop_token_ids: r.stops
        })
        const state = makeSamplingState(params, { promptTokenIds: r.prompt, eosTokenIds: [1], seed: 7, sampleIndex: 0 })
        r.outputs.forEach((id) => recordOutputToken(state, id))
        const logits = Float32Array.from(r.logits)
        const expected = new Sampler(V).distribution(logits, 0, state)

        const w = Float64Array.from(logits)
        const edits = logitsEdits([state], 1)
        if (edits !== undefined) applyLogitsEdits(w, edits, 0)
        const max = Math.max(...w)
        if (max === Number.NEGATIVE_INFINITY) return expect(expected.ids.length).toBe(1)
        const e = Array.from(w, (x) => Math.exp((x - max) / 1))
        const ids = e.flatMap((p, id) => (p > 0 ? [id] : []))
        const total = ids.reduce((sum, id) => sum + e[id], 0)
        expect(Array.from(expected.ids)).toEqual(ids)
        ids.forEach((id, i) => expect(expected.probs[i]).toBeCloseTo(e[id] / total, 14))
      }),
      { numRuns: 300 }
    )
  })

  it("encodes nothing for rows without processors, and keeps each phase's ids distinct", () => {
    const plain = makeSamplingState(decodeSamplingParamsSync({ temperature: 0.7 }), { promptTokenIds: [3, 3], eosTokenIds: [1], seed: 1, sampleIndex: 0 })
    expect(logitsEdits([plain, undefined], 2)).toBeUndefined()
    const busy = makeSamplingState(decodeSamplingParamsSync({ temperature: 0.7, repetition_penalty: 1.5, frequency_penalty: 0.5, min_tokens: 2 }), {
      promptTokenIds: [3, 3, 4],
      eosTokenIds: [1],
      seed: 1,
      sampleIndex: 0
    })
    recordOutputToken(busy, 4)
    const edits = logitsEdits([undefined, busy], 2)!
    // row 0: no edits; row 1: no bias, the EOS mask (1 output < min 2), repetition over {3, 4}, frequency on 4
    expect(Array.from(edits.offsets)).toEqual([0, 0, 0, 0, 0, 0, 1, 3, 4])
    expect(Array.from(edits.ids)).toEqual([1, 3, 4, 4])
    expect(Array.from(edits.values)).toEqual([0, 1.5, 1.5, 0.5])
  })
})
