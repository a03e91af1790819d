import { describe, expect, it } from "vitest"
import type { DeviceMemory } from "../src/kernels/provider.ts"
import { WeightLoader } from "../src/layers/shard.ts"
import { openModelDir } from "../src/model/weights.ts"
import { fixturePath } from "./helpers/fixtures.ts"
import { bf16Bits } from "./helpers/safetensorsWriter.ts"

/**
 * The loader's bf16 path (a bf16 checkpoint to bf16 device storage, the stored bits as they
 * are) against its f32 path (each value converted to f32 on the host, rounded to bf16 by the
 * device), on the bf16 fixture checkpoint: every slice the layers load, bit for bit.
 */

/** device memory holding bf16 in a host array; `direct` offers writeBf16Bits */
const bf16Memory = (direct: boolean) => {
  const cells = new Uint16Array(1 << 22)
  let next = 0
  const writes = { bits: 0, floats: 0 }
  const memory: DeviceMemory = {
    floatBytes: 2,
    alloc: (bytes) => {
      const ptr = next
      next += Math.ceil(bytes / 64) * 64
      return ptr
    },
    free: () => {},
    write: (ptr, src) => {
      writes.floats++
      // rounded to nearest even, as the CUDA provider's f32 -> bf16 copy
      src.forEach((x, i) => (cells[ptr / 2 + i] = bf16Bits(x)))
    },
    read: () => {
      throw new Error("not read in this test")
    },
    get usedBytes() {
      return next
    },
    ...(direct && {
      writeBf16Bits: (ptr: number, bits: Uint16Array) => {
        writes.bits++
        cells.set(bits, ptr / 2)
      }
    })
  }
  return { memory, cells, writes }
}

describe("WeightLoader on bf16 storage", () => {
  const { weights, config } = openModelDir(fixturePath("llama3"))
  const layer = "model.layers.0"
  const H = config.hiddenSize
  const D = config.headDim
  const kv = config.numKvHeads * D

  /** what each loader call of a column-parallel qkv, a row-parallel o_proj half and a norm gives */
  const loadAll = (loader: WeightLoader) => [
    loader.rows(
      [
        { name: `${layer}.self_attn.q_proj.weight`, rows: [D, 3 * D] },
        { name: `${layer}.self_attn.k_proj.weight`, rows: [0, kv] },
        { name: `${layer}.self_attn.v_proj.weight`, rows: [kv - D, kv] }
      ],
      H
    ),
    loader.columns(`${layer}.self_attn.o_proj.weight`, H, [H / 2, H]),
    loader.columns(`${layer}.mlp.down_proj.weight`, H, [1, 7]),
    loader.whole(`${layer}.input_layernorm.weight`),
    loader.whole("model.embed_tokens.weight")
  ]

  it("uploads the stored bits of every slice, equal to converting them through f32", () => {
    expect(weights.info(`${layer}.self_attn.q_proj.weight`).dtype).toBe("BF16")
    const direct = bf16Memory(true)
    const converted = bf16Memory(false)
    const a = loadAll(new WeightLoader(weights, direct.memory))
    const b = loadAll(new WeightLoader(weights, converted.memory))
    expect(a).toEqual(b)
    expect(direct.writes).toEqual({ bits: 7, floats: 0 })
    expect(converted.writes.bits).toBe(0)
    expect(direct.memory.usedBytes).toBe(converted.memory.usedBytes)
    expect(Array.from(direct.cells.subarray(0, direct.memory.usedBytes / 2))).toEqual(Array.from(converted.cells.subarray(0, converted.memory.usedBytes / 2)))
  })

  it("reports slices out of range with the tensor's name", () => {
    const loader = new WeightLoader(weights, bf16Memory(true).memory)
    expect(() => loader.columns(`${layer}.self_attn.o_proj.weight`, H, [0, H + 1])).toThrow(/o_proj.*column range/)
  })
})
