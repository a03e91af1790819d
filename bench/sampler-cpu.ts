/**
 * The CPU sampler's cost a token (src/sampling/sampler.ts): temperature alone, top-k, top-p and
 * both, over a peaked row (an LLM's usual next-token distribution: a few likely tokens over a
 * Gaussian tail) and a flat one (top-p then keeps most of the vocabulary), at the vocabulary
 * sizes of the fixture models and Llama 3. The GPU sampler's counterpart is
 * gpu-sampler-check.ts's timing.
 *
 *   bun bench/sampler-cpu.ts      (writes results/sampler-cpu.json)
 */
import { recordResults, time } from "./lib/results.ts"
import { Sampler } from "../src/sampling/sampler.ts"
import { decodeSamplingParamsSync } from "../src/sampling/SamplingParams.ts"
import { makeSamplingState } from "../src/sampling/samplingState.ts"

const row = (V: number, shape: "peaked" | "flat"): Float32Array => {
  const logits = new Float32Array(V)
  let x = 12345
  for (let i = 0; i < V; i++) {
    x = (x * 1103515245 + 12345) % 2147483648
    const u = x / 2147483648
    logits[i] = shape === "flat" ? (u - 0.5) * 2 : (u - 0.5) * 8
  }
  if (shape === "peaked") for (let j = 0; j < 8; j++) logits[(j * 7919) % V] = 14 - j
  return logits
}

const settings = [
  { name: "temperature 0.8", top_p: 1, top_k: -1 },
  { name: "top-k 50", top_p: 1, top_k: 50 },
  { name: "top-p 0.9", top_p: 0.9, top_k: -1 },
  { name: "top-k 1000, top-p 0.95", top_p: 0.95, top_k: 1000 }
]
const results: Array<{ vocab: number; shape: string; setting: string; ms: number }> = []
console.log("ms a token (median of 20)")
console.log(`${"vocab".padStart(7)}  ${"row".padEnd(7)}${settings.map((s) => s.name.padStart(24)).join("")}`)
for (const V of [32000, 151936, 128256]) {
  const sampler = new Sampler(V)
  for (const shape of ["peaked", "flat"] as const) {
    const logits = row(V, shape)
    const cells = settings.map((s) => {
      const params = decodeSamplingParamsSync({ temperature: 0.8, top_p: s.top_p, top_k: s.top_k, seed: 1 })
      const state = makeSamplingState(params, { promptTokenIds: [], eosTokenIds: [], seed: 1, sampleIndex: 0 })
      let position = 0
      const { ms } = time(() => sampler.sample(logits, 0, state, position++), 20)
      results.push({ vocab: V, shape, setting: s.name, ms })
      return ms.toFixed(2).padStart(24)
    })
    console.log(`${String(V).padStart(7)}  ${shape.padEnd(7)}${cells.join("")}`)
  }
}
console.log(`wrote ${recordResults("sampler-cpu.json", "bun bench/sampler-cpu.ts", results)}`)
