/**
 * The decoder layer's two ways of feeding the residual stream give the same logits, bit for bit:
 * a projection's output added by the next norm (what a step past the provider's `fusedRows`
 * takes), or added by the projection itself with the next norm and projection as one composite
 * kernel (a decode-sized step on the GPU). Here on the WASM provider, whose composites are their
 * sequences, told it fuses: the CPU's f32 sums are the same either way, so any mix-up of the
 * residual's pending state (a delta added twice, or not at all) changes the logits.
 */
import { Effect } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { contiguousPlan } from "../src/engine/contiguousPlan.ts"
import { logitsOf } from "../src/engine/executor.ts"
import { loadModelExecutor, type ModelExecutor } from "../src/engine/modelExecutor.ts"
import { createWasmProvider, type WasmKernelProvider } from "../src/kernels/wasm/provider.ts"
import { fixtureNames, fixturePath } from "./helpers/fixtures.ts"

const names = fixtureNames()
const blockSize = 16

describe.skipIf(names.length === 0)("the decoder layer with the projections adding into the residual stream", () => {
  let wasm: WasmKernelProvider
  beforeAll(async () => {
    wasm = await createWasmProvider({ threads: 1 })
  })
  afterAll(() => wasm?.close())

  it.each(names)("%s: the same logits, prefill and decode", async (name) => {
    const steps = async (executor: ModelExecutor): Promise<Float32Array[]> => {
      const prompt = [1, 5, 9, 13, 17, 21]
      const blocks = 2
      const outputs: Float32Array[] = []
      let tokens = prompt
      let computed = 0
      for (let step = 0; step < 4; step++) {
        const plan = contiguousPlan([tokens], [computed], blockSize, blocks)
        const logits = logitsOf(await Effect.runPromise(executor.execute(plan)))
        outputs.push(logits.slice())
        computed += tokens.length
        tokens = [3 + step]
      }
      return outputs
    }
    const options = { maxNumSeqs: 2, maxModelLen: 64 }
    const plain = await loadModelExecutor(fixturePath(name), { ...options, provider: wasm })
    const fused = await loadModelExecutor(fixturePath(name), { ...options, provider: { ...wasm, fusedRows: 8 } })
    try {
      const [a, b] = [await steps(plain), await steps(fused)]
      expect(b.length).toBe(a.length)
      a.forEach((logits, step) => expect(Buffer.from(b[step].buffer).equals(Buffer.from(logits.buffer)), `step ${step}`).toBe(true))
    } finally {
      await Effect.runPromise(plain.close())
      await Effect.runPromise(fused.close())
    }
  })
})
