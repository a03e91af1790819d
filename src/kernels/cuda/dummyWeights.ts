/**
 * `--load-format dummy` on the CUDA provider: the same random weights as
 * src/model/dummyWeights.ts (same names, shapes, per-tensor seed and stateless hash of the
 * element index), made on the device by tsr_fill_uniform when the loader writes them, instead
 * of 8 billion values computed in JavaScript and copied over PCIe. The loader's host staging
 * buffer is only marked, never filled.
 */
import { dummyWeights, hashName } from "../../model/dummyWeights.ts"
import type { ModelConfig } from "../../model/config.ts"
import type { WeightSource } from "../../model/weights.ts"
import type { CudaMemory } from "./memory.ts"

export const deviceDummyWeights = (config: ModelConfig, memory: CudaMemory, scale = 0.02): WeightSource => {
  const host = dummyWeights(config, scale)
  return {
    ...host,
    readInto: (name, dst, rows, cols) => {
      const shape = host.info(name).shape
      const width = shape.length > 1 ? shape[1] : 1
      const [r0, r1] = rows ?? [0, shape[0]]
      const [c0, c1] = cols ?? [0, width]
      if (dst.length !== (r1 - r0) * (c1 - c0)) throw new Error(`dummy weights: "${name}" slice does not fit its destination`)
      const isNorm = name.endsWith("norm.weight")
      memory.deferFill(dst, {
        rows: r1 - r0,
        cols: c1 - c0,
        width,
        first: r0 * width + c0,
        seed: hashName(name),
        offset: isNorm ? 1 : 0,
        scale: isNorm ? 0 : scale
      })
    }
  }
}
