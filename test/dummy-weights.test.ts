import { describe, expect, it } from "vitest"
import { dummyWeights } from "../src/model/dummyWeights.ts"
import { openDummyModelDir } from "../src/model/weights.ts"
import { fixturePath } from "./helpers/fixtures.ts"

describe("--load-format dummy", () => {
  const { config } = openDummyModelDir(fixturePath("llama3"))
  const weights = dummyWeights(config)

  it("has every tensor the config needs, with its shape", () => {
    expect(weights.names()).toContain("model.layers.1.mlp.down_proj.weight")
    expect(weights.info("model.layers.0.self_attn.k_proj.weight").shape).toEqual([config.numKvHeads * config.headDim, config.hiddenSize])
  })

  it("gives a shard the same values the whole tensor holds", () => {
    const name = "model.layers.0.mlp.down_proj.weight"
    const [rows, cols] = weights.info(name).shape
    const whole = new Float32Array(rows * cols)
    weights.readInto(name, whole)
    const block = new Float32Array(3 * 5)
    weights.readInto(name, block, [2, 5], [7, 12])
    for (let r = 0; r < 3; r++) for (let c = 0; c < 5; c++) expect(block[r * 5 + c]).toBe(whole[(r + 2) * cols + c + 7])
    expect(whole.some((v) => v !== 0)).toBe(true)
    expect(whole.every((v) => Math.abs(v) <= 0.02)).toBe(true)
  })

  it("norm weights are ones, so activations stay in range", () => {
    const norm = new Float32Array(config.hiddenSize)
    weights.readInto("model.norm.weight", norm)
    expect(norm.every((v) => v === 1)).toBe(true)
  })
})
