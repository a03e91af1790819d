import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { computeLogprobs } from "../src/sampling/logprobs.ts"
import { philoxUniform } from "../src/sampling/philox.ts"
import { Sampler } from "../src/sampling/sampler.ts"
import { decodeSamplingParamsSync, type SamplingParams } from "../src/sampling/SamplingParams.ts"
import { makeSamplingState, recordOutputToken, type SequenceSamplingState } from "../src/sampling/samplingState.ts"

/**
 * The sampler against straightforward float64 implementations: dense arrays, a full sort,
 * normalized probabilities, no pruning. Inputs whose result hangs on a rounding-level tie
 * (a probability within 1e-9 of a min-p or top-p boundary) are skipped with fc.pre: there
 * the two orders of floating-point operations may legitimately disagree.
 */

const EOS = 0
const NEAR = 1e-9

interface Case {
  readonly logits: Float32Array
  readonly params: SamplingParams
  readonly prompt: number[]
  readonly outputs: number[]
}

const caseArb = (greedy: boolean): fc.Arbitrary<Case> =>
  fc
    .record({
      V: fc.constantFrom(2, 7, 83, 300),
      // quarter steps make ties common, so tie-breaking is exercised
      quarters: fc.boolean(),
      seed: fc.integer(),
    })
    .chain(({ V, quarters }) =>
      fc.record({
        logits: fc
          .array(quarters ? fc.integer({ min: -40, max: 40 }).map((q) => q / 4) : fc.float({ min: -12, max: 12, noNaN: true }), {
            minLength: V,
            maxLength: V,
          })
          .map((xs) => Float32Array.from(xs)),
        params: fc
          .record({
            temperature: greedy ? fc.constant(0) : fc.double({ min: 0.05, max: 3, noNaN: true }),
            top_p: fc.oneof(fc.constant(1), fc.double({ min: 0.01, max: 1, noNaN: true })),
            top_k: fc.oneof(fc.constant(-1), fc.integer({ min: 1, max: V + 2 })),
            min_p: fc.oneof(fc.constant(0), fc.double({ min: 0, max: 1, noNaN: true })),
            presence_penalty: fc.double({ min: -2, max: 2, noNaN: true }),
            frequency_penalty: fc.double({ min: -2, max: 2, noNaN: true }),
            repetition_penalty: fc.oneof(fc.constant(1), fc.double({ min: 0.5, max: 2, noNaN: true })),
            min_tokens: fc.integer({ min: 0, max: 3 }),
            stop_token_ids: fc.array(fc.integer({ min: 0, max: V - 1 }), { maxLength: 2 }),
            logit_bias: fc.dictionary(fc.integer({ min: 0, max: V - 1 }).map(String), fc.double({ min: -100, max: 100, noNaN: true }), {
              maxKeys: 3,
            }),
          })
          .map((raw) => decodeSamplingParamsSync(raw)),
        prompt: fc.array(fc.integer({ min: 0, max: V - 1 }), { minLength: 1, maxLength: 6 }),
        outputs: fc.array(fc.integer({ min: 0, max: V - 1 }), { maxLength: 6 }),
      }),
    )

const stateOf = (c: Case, seed = 1234, sampleIndex = 0): SequenceSamplingState => {
  const state = makeSamplingState(c.params, { promptTokenIds: c.prompt, eosTokenIds: [EOS], seed, sampleIndex })
  for (const t of c.outputs) recordOutputToken(state, t)
  return state
}

/** logits after bias, min_tokens masking and penalties, the vLLM v1 way, in float64 */
const referenceProcessed = (c: Case): number[] => {
  const x = Array.from(c.logits, Number)
  for (const [id, bias] of Object.entries(c.params.logitBias)) x[Number(id)] += bias
  if (c.outputs.length < c.params.minTokens) for (const id of [EOS, ...c.params.stopTokenIds]) x[id] = -Infinity
  const rp = c.params.repetitionPenalty
  if (rp !== 1) for (const id of new Set([...c.prompt, ...c.outputs])) x[id] = x[id] > 0 ? x[id] / rp : x[id] * rp
  const counts = new Map<number, number>()
  for (const t of c.outputs) counts.set(t, (counts.get(t) ?? 0) + 1)
  for (const [id, n] of counts) x[id] -= c.params.frequencyPenalty * n + c.params.presencePenalty
  return x
}

/** temperature -> min-p -> top-k -> top-p over the dense, fully sorted distribution */
const referenceDistribution = (c: Case): Map<number, number> => {
  const x = referenceProcessed(c)
  const T = c.params.temperature
  const max = Math.max(...x)
  const e = x.map((v) => Math.exp((v - max) / T))
  const sum = e.reduce((a, b) => a + b, 0)
  // e rides along so ties are judged before normalization rounds distinct values together
  let p = e.map((v, id) => ({ id, e: v, p: v / sum }))
  const pmax = Math.max(...p.map((q) => q.p))
  for (const q of p) fc.pre(Math.abs(q.p - c.params.minP * pmax) > NEAR * pmax)
  p = p.filter((q) => q.p > 0 && q.p >= c.params.minP * pmax)
  p.sort((a, b) => b.e - a.e || a.id - b.id)
  if (c.params.topK > 0) p = p.slice(0, c.params.topK)
  if (c.params.topP < 1) {
    const mass = p.reduce((a, q) => a + q.p, 0)
    let cumulative = 0
    let keep = 0
    for (; keep < p.length; ) {
      cumulative += p[keep++].p / mass
      fc.pre(Math.abs(cumulative - c.params.topP) > NEAR)
      if (cumulative >= c.params.topP) break
    }
    p = p.slice(0, keep)
  }
  const mass = p.reduce((a, q) => a + q.p, 0)
  return new Map(p.map((q) => [q.id, q.p / mass]))
}

describe("sampler against float64 references", () => {
  it("greedy picks the argmax of the processed logits (lowest id on ties)", () => {
    fc.assert(
      fc.property(caseArb(true), (c) => {
        const x = referenceProcessed(c)
        const expected = x.indexOf(Math.max(...x))
        const sampler = new Sampler(c.logits.length)
        expect(sampler.sample(c.logits, 0, stateOf(c), 10)).toBe(expected)
      }),
      { numRuns: 300 },
    )
  })

  it("temperature, min-p, top-k, top-p and penalties keep the reference's tokens with its probabilities", () => {
    fc.assert(
      fc.property(caseArb(false), (c) => {
        const expected = referenceDistribution(c)
        const { ids, probs } = new Sampler(c.logits.length).distribution(c.logits, 0, stateOf(c))
        // id order is the draw's order: part of the contract a GPU port must match
        expect([...ids]).toEqual([...expected.keys()].sort((a, b) => a - b))
        ids.forEach((id, j) => expect(probs[j]).toBeCloseTo(expected.get(id)!, 9))
      }),
      { numRuns: 400 },
    )
  })

  it("a draw is the inverse CDF of the distribution at the Philox uniform of (seed, position, sample index)", () => {
    fc.assert(
      fc.property(caseArb(false), fc.integer({ min: 0, max: 1 << 20 }), fc.integer({ min: 0, max: 3 }), (c, position, index) => {
        const sampler = new Sampler(c.logits.length)
        const state = stateOf(c, 99, index)
        const { ids, probs } = sampler.distribution(c.logits, 0, state)
        const u = philoxUniform(state.seedLo, state.seedHi, position, index, new Uint32Array(4))
        let cumulative = 0
        let expected = ids[ids.length - 1]
        for (let j = 0; j < ids.length; j++) {
          cumulative += probs[j]
          fc.pre(Math.abs(cumulative - u) > NEAR)
          if (cumulative > u) {
            expected = ids[j]
            break
          }
        }
        expect(sampler.sample(c.logits, 0, state, position)).toBe(expected)
      }),
      { numRuns: 300 },
    )
  })

  it("boundaries are inclusive: top-p keeps the smallest prefix reaching p, min-p keeps tokens at p * p_max", () => {
    const flat = Float32Array.from([0, 0, 0, 0])
    const kept = (raw: Record<string, unknown>, logits = flat) => {
      const c: Case = { logits, params: decodeSamplingParamsSync(raw), prompt: [1], outputs: [] }
      return Array.from(new Sampler(logits.length).distribution(logits, 0, stateOf(c)).ids)
    }
    // four equal tokens: 0.25 + 0.25 reaches 0.5 exactly, as vLLM's mask (cumsum <= 1 - p) drops the rest
    expect(kept({ top_p: 0.5 })).toEqual([0, 1])
    expect(kept({ min_p: 1 }, Float32Array.from([0, 0, -1]))).toEqual([0, 1])
  })

  it("draws follow the distribution (chi-square over 4000 positions)", () => {
    const logits = Float32Array.from([2, 1, 0.5, 0, -1, 3])
    const c: Case = { logits, params: decodeSamplingParamsSync({ temperature: 0.8 }), prompt: [1], outputs: [] }
    const sampler = new Sampler(logits.length)
    const state = stateOf(c, 7)
    const { ids, probs } = sampler.distribution(logits, 0, state)
    const counts = new Map<number, number>()
    const N = 4000
    for (let pos = 0; pos < N; pos++) {
      const t = sampler.sample(logits, 0, state, pos)
      counts.set(t, (counts.get(t) ?? 0) + 1)
    }
    let chi2 = 0
    ids.forEach((id, j) => (chi2 += ((counts.get(id) ?? 0) - N * probs[j]) ** 2 / (N * probs[j])))
    // 5 degrees of freedom: P(chi2 > 20.5) < 0.001
    expect(chi2).toBeLessThan(20.5)
  })

  it("the same (seed, position) gives the same token whatever else the sampler did in between", () => {
    const V = 50
    const logits = Float32Array.from({ length: 3 * V }, (_, i) => Math.sin(i * 12.9898) * 4)
    const c: Case = { logits, params: decodeSamplingParamsSync({ temperature: 1.3, top_p: 0.9 }), prompt: [1], outputs: [] }
    const alone = new Sampler(V)
    const busy = new Sampler(V)
    for (let pos = 0; pos < 200; pos++) {
      const expected = alone.sample(logits, 1, stateOf(c, 5), pos)
      busy.sample(logits, 0, stateOf(c, 6), pos + 1)
      expect(busy.sample(logits, 1, stateOf(c, 5), pos)).toBe(expected)
      busy.sample(logits, 2, stateOf(c, 5, 1), pos)
    }
  })
})

describe("logprobs against a float64 log-softmax", () => {
  it("sampled token, rank and top alternatives", () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: -20, max: 20 }).map((q) => q / 2), { minLength: 2, maxLength: 120 }),
        fc.nat(),
        fc.integer({ min: 0, max: 20 }),
        (xs, pick, numTop) => {
          const logits = Float32Array.from(xs)
          const token = pick % xs.length
          const max = Math.max(...xs)
          const lse = max + Math.log(xs.reduce((a, x) => a + Math.exp(x - max), 0))
          const order = xs.map((x, id) => ({ id, x })).sort((a, b) => b.x - a.x || a.id - b.id)
          const got = computeLogprobs(logits, 0, xs.length, token, numTop, new Int32Array(20))
          expect(got.logprob).toBeCloseTo(xs[token] - lse, 12)
          expect(got.rank).toBe(1 + xs.filter((x) => x > xs[token]).length)
          expect(got.top.map((t) => t.tokenId)).toEqual(order.slice(0, numTop).map((o) => o.id))
          got.top.forEach((t) => expect(t.logprob).toBeCloseTo(xs[t.tokenId] - lse, 12))
        },
      ),
      { numRuns: 300 },
    )
  })
})
