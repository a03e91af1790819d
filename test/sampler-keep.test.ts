import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { SUM_CHUNKS, Sampler } from "../src/sampling/sampler.ts"
import { decodeSamplingParamsSync } from "../src/sampling/SamplingParams.ts"
import { makeSamplingState } from "../src/sampling/samplingState.ts"

/**
 * Top-k and top-p keep the set their definition names, which the GPU sampler's bisection finds
 * too (cuda/sampler.cu): the shortest prefix, in (probability desc, id asc) order, with maxCount
 * members or a tree mass of topP x that of all the candidates. The tree mass of a set: the
 * candidate list (id order) in SUM_CHUNKS chunks of ceil(n / SUM_CHUNKS), each adding its members
 * in order, the chunk sums then added as a binary tree. Here that definition is computed
 * literally (every prefix from scratch) and compared with the sampler's kept ids.
 */
const treeMass = (ids: number[], values: Float64Array, member: (id: number) => boolean): number => {
  const size = Math.ceil(ids.length / SUM_CHUNKS)
  const sums = new Float64Array(SUM_CHUNKS)
  for (let k = 0; k < SUM_CHUNKS; k++) {
    for (let j = k * size; j < Math.min(ids.length, (k + 1) * size); j++) if (member(ids[j])) sums[k] += values[ids[j]]
  }
  for (let stride = SUM_CHUNKS >> 1; stride > 0; stride >>= 1) for (let t = 0; t < stride; t++) sums[t] += sums[t + stride]
  return sums[0]
}

const keep = (ids: number[], values: Float64Array, maxCount: number, topP: number): number[] => {
  const maxMass = topP < 1 ? topP * treeMass(ids, values, () => true) : Number.POSITIVE_INFINITY
  const order = [...ids].sort((a, b) => values[b] - values[a] || a - b)
  for (let L = 1; L <= order.length; L++) {
    const prefix = new Set(order.slice(0, L))
    if (L >= maxCount || treeMass(ids, values, (id) => prefix.has(id)) >= maxMass) return ids.filter((id) => prefix.has(id))
  }
  return ids
}

describe("top-k and top-p keep the set of their definition", () => {
  it("for quantized logits (many ties) and continuous ones", () => {
    fc.assert(
      fc.property(
        fc.constantFrom(7, 83, 300, 2100),
        fc.boolean(),
        fc.integer({ min: 1, max: 2 ** 30 }),
        fc.constantFrom(-1, 1, 2, 5, 40),
        fc.constantFrom(1, 0.99, 0.9, 0.5, 0.1),
        fc.constantFrom(0.5, 1, 2),
        (V, quantized, seed, topK, topP, temperature) => {
          let x = seed
          const logits = Float32Array.from({ length: V }, () => {
            x = (x * 1103515245 + 12345) % 2147483648
            const u = x / 2147483648
            return quantized ? Math.round(u * 8) / 2 : (u - 0.5) * 12
          })
          const state = makeSamplingState(decodeSamplingParamsSync({ temperature, top_p: topP, top_k: topK }), {
            promptTokenIds: [], eosTokenIds: [], seed: 1, sampleIndex: 0
          })
          const got = Array.from(new Sampler(V).distribution(logits, 0, state).ids)
          // the definition: probabilities exp((x - max) / T), then top-k, then top-p
          const max = Math.max(...logits)
          const values = Float64Array.from(logits, (l) => Math.exp((l - max) / temperature))
          let ids = Array.from({ length: V }, (_, i) => i).filter((i) => values[i] > 0)
          if (topK > 0 && topK < ids.length) ids = keep(ids, values, topK, 1)
          if (topP < 1) ids = keep(ids, values, Number.POSITIVE_INFINITY, topP)
          expect(got).toEqual(ids)
        }
      ),
      { numRuns: 150 }
    )
  })
})
