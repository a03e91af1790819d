import type { ModelConfig } from "./config.ts"
import { expectedTensors } from "./expectedTensors.ts"
import type { IndexRange } from "./safetensors.ts"
import type { TensorInfo, WeightSource } from "./weightSource.ts"

/**
 * Random weights of the right names and shapes for a config alone (`--load-format dummy`),
 * for benchmarks of large shapes without a checkpoint. As vLLM's dummy loader does, values
 * are small uniform noise, and norm weights are 1 so activations stay in range. Each tensor's
 * values depend only on its name and element index, so a shard reads the same numbers the
 * whole tensor holds.
 */
export const dummyWeights = (config: ModelConfig, scale = 0.02): WeightSource => {
  const shapes = new Map(expectedTensors(config).map((t) => [t.name, t.shape]))
  const info = (name: string): TensorInfo => {
    const shape = shapes.get(name)
    if (!shape) throw new Error(`dummy weights: no tensor "${name}" in a ${config.architecture}`)
    return { dtype: "F32", shape, file: "(dummy)" }
  }
  return {
    names: () => [...shapes.keys()],
    has: (name) => shapes.has(name),
    info,
    rawBytes: (name) => {
      throw new Error(`dummy weights: "${name}" has no stored bytes`)
    },
    readInto: (name: string, dst: Float32Array, rows?: IndexRange, cols?: IndexRange) => {
      const shape = info(name).shape
      const width = shape.length > 1 ? shape[1] : 1
      const [r0, r1] = rows ?? [0, shape[0]]
      const [c0, c1] = cols ?? [0, width]
      if (dst.length !== (r1 - r0) * (c1 - c0)) throw new Error(`dummy weights: "${name}" slice does not fit its destination`)
      const isNorm = name.endsWith("norm.weight")
      const seed = hashName(name)
      let i = 0
      for (let r = r0; r < r1; r++) {
        for (let c = c0; c < c1; c++) dst[i++] = isNorm ? 1 : (uniform(seed, r * width + c) * 2 - 1) * scale
      }
    },
    validate: () => {}
  }
}

/** the seed of a tensor's values: FNV-1a of its name (shared with the CUDA provider's device fill) */
export const hashName = (name: string): number => {
  let h = 0x811c9dc5
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193)
  return h >>> 0
}

/** a uniform in [0, 1) from (seed, index): a stateless integer hash (lowbias32) */
const uniform = (seed: number, index: number): number => {
  let x = (seed ^ Math.imul(index, 0x9e3779b9)) >>> 0
  x ^= x >>> 16
  x = Math.imul(x, 0x7feb352d)
  x ^= x >>> 15
  x = Math.imul(x, 0x846ca68b)
  x ^= x >>> 16
  return (x >>> 0) / 4294967296
}
