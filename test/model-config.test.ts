import { describe, expect, it } from "vitest"
import { type ModelConfig, parseModelConfig } from "../src/model/config.ts"
import { ModelLoadError } from "../src/model/errors.ts"
import { expectedTensors } from "../src/model/expectedTensors.ts"
import { parseGenerationConfig } from "../src/model/generationConfig.ts"
import { inverseFrequencies } from "../src/model/rope.ts"
import { tinyLlamaConfig } from "./helpers/tinyModel.ts"

const llama31Scaling = { factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 }

/** Shapes of a Llama 3.1 8B config.json without its rope keys. */
const llama8b = (rope: Record<string, unknown>) => ({
  architectures: ["LlamaForCausalLM"],
  hidden_size: 4096,
  intermediate_size: 14336,
  num_hidden_layers: 32,
  num_attention_heads: 32,
  num_key_value_heads: 8,
  vocab_size: 128256,
  rms_norm_eps: 1e-5,
  max_position_embeddings: 131072,
  bos_token_id: 128000,
  eos_token_id: [128001, 128008, 128009],
  ...rope,
})

const parseError = (json: unknown): ModelLoadError => {
  try {
    parseModelConfig(json, "/m/config.json")
  } catch (e) {
    if (e instanceof ModelLoadError) return e
    throw e
  }
  throw new Error("expected a ModelLoadError")
}

describe("config.json normalization", () => {
  it("old rope_theta + rope_scaling (either key for the type) and new rope_parameters agree", () => {
    const old = parseModelConfig(llama8b({ rope_theta: 500000, rope_scaling: { type: "llama3", ...llama31Scaling }, torch_dtype: "bfloat16" }))
    const mid = parseModelConfig(llama8b({ rope_theta: 500000, rope_scaling: { rope_type: "llama3", ...llama31Scaling }, torch_dtype: "bfloat16" }))
    const current = parseModelConfig(llama8b({ rope_parameters: { rope_type: "llama3", rope_theta: 500000, ...llama31Scaling }, dtype: "bfloat16" }))
    expect(mid).toEqual(old)
    expect(current).toEqual(old)
    expect(old.rope).toEqual({
      theta: 500000,
      scaling: { type: "llama3", factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 },
    })
    expect(old).toMatchObject({ numKvHeads: 8, headDim: 128, dtype: "bfloat16", bosTokenId: 128000, eosTokenIds: [128001, 128008, 128009] })
  })

  it("torch_dtype and dtype name the same thing; no dtype means float32", () => {
    expect(parseModelConfig(tinyLlamaConfig({ torch_dtype: "float16" })).dtype).toBe("float16")
    expect(parseModelConfig({ ...tinyLlamaConfig({ torch_dtype: undefined }), dtype: "float16" }).dtype).toBe("float16")
    expect(parseModelConfig(tinyLlamaConfig({ torch_dtype: undefined })).dtype).toBe("float32")
  })

  it("defaults: rope theta 10000 without scaling, KV heads = heads, single eos id as a list", () => {
    const config = parseModelConfig(tinyLlamaConfig({ rope_theta: undefined, num_key_value_heads: undefined, eos_token_id: 7 }))
    expect(config.rope).toEqual({ theta: 10000, scaling: { type: "none" } })
    expect(config.numKvHeads).toBe(2)
    expect(config.eosTokenIds).toEqual([7])
    expect(parseModelConfig(tinyLlamaConfig({ rope_scaling: { rope_type: "linear", factor: 4 } })).rope.scaling).toEqual({
      type: "linear",
      factor: 4,
    })
  })

  it("per-architecture biases and norms", () => {
    const qwen2 = parseModelConfig(tinyLlamaConfig({ architectures: ["Qwen2ForCausalLM"] }))
    expect([qwen2.attentionBias, qwen2.outputBias, qwen2.qkNorm]).toEqual([true, false, false])
    const qwen3 = parseModelConfig(tinyLlamaConfig({ architectures: ["Qwen3ForCausalLM"], head_dim: 16 }))
    expect([qwen3.attentionBias, qwen3.outputBias, qwen3.qkNorm, qwen3.headDim]).toEqual([false, false, true, 16])
    const llamaBias = parseModelConfig(tinyLlamaConfig({ attention_bias: true }))
    expect([llamaBias.attentionBias, llamaBias.outputBias]).toEqual([true, true])
    const mistral = parseModelConfig(tinyLlamaConfig({ architectures: ["MistralForCausalLM"], attention_bias: true }))
    expect([mistral.attentionBias, mistral.outputBias]).toEqual([false, false])
  })

  it("errors name config.json and the field", () => {
    const { hidden_size: _, ...withoutHidden } = tinyLlamaConfig()
    const missing = parseError(withoutHidden)
    expect(missing.message).toBe(`/m/config.json: field "hidden_size": is missing`)
    expect(parseError(tinyLlamaConfig({ architectures: ["GPT2LMHeadModel"] })).message).toContain(
      `field "architectures": unsupported architecture "GPT2LMHeadModel"`,
    )
    expect(parseError(tinyLlamaConfig({ rope_scaling: { rope_type: "yarn", factor: 4 } })).message).toContain(
      `field "rope_scaling.rope_type": unsupported rope type "yarn"`,
    )
    expect(parseError(llama8b({ rope_parameters: { rope_type: "llama3", rope_theta: 5e5, factor: 8 } })).message).toContain(
      `field "rope_parameters.low_freq_factor": is missing`,
    )
    expect(parseError(tinyLlamaConfig({ torch_dtype: "float8_e4m3fn" })).message).toContain(`field "torch_dtype": unsupported dtype`)
    expect(parseError(tinyLlamaConfig({ hidden_act: "gelu" })).message).toContain(`field "hidden_act": unsupported activation "gelu"`)
    expect(parseError(tinyLlamaConfig({ num_key_value_heads: 3 })).message).toContain(`field "num_key_value_heads"`)
    expect(parseError(tinyLlamaConfig({ eos_token_id: [2, "x"] })).message).toContain(`field "eos_token_id.1"`)
  })
})

describe("expected tensors", () => {
  const names = (config: ModelConfig) => expectedTensors(config).map((t) => t.name)

  it("Llama: 9 tensors per layer plus embedding, norm and lm_head; tied models drop lm_head", () => {
    const config = parseModelConfig(tinyLlamaConfig())
    expect(expectedTensors(config)).toHaveLength(2 + 2 * 9 + 1)
    const byName = new Map(expectedTensors(config).map((t) => [t.name, t.shape]))
    expect(byName.get("model.layers.0.self_attn.q_proj.weight")).toEqual([8, 8])
    expect(byName.get("model.layers.0.self_attn.k_proj.weight")).toEqual([4, 8])
    expect(byName.get("model.layers.0.self_attn.o_proj.weight")).toEqual([8, 8])
    expect(byName.get("model.layers.1.mlp.down_proj.weight")).toEqual([8, 12])
    expect(names(parseModelConfig(tinyLlamaConfig({ tie_word_embeddings: true })))).not.toContain("lm_head.weight")
  })

  it("Qwen2 adds q/k/v biases (no o_proj bias); Qwen3 adds per-head q/k norms of head_dim", () => {
    const qwen2 = names(parseModelConfig(tinyLlamaConfig({ architectures: ["Qwen2ForCausalLM"] })))
    expect(qwen2).toContain("model.layers.1.self_attn.v_proj.bias")
    expect(qwen2).not.toContain("model.layers.1.self_attn.o_proj.bias")
    const qwen3 = expectedTensors(parseModelConfig(tinyLlamaConfig({ architectures: ["Qwen3ForCausalLM"], head_dim: 16 })))
    const byName = new Map(qwen3.map((t) => [t.name, t.shape]))
    expect(byName.get("model.layers.0.self_attn.q_norm.weight")).toEqual([16])
    expect(byName.get("model.layers.0.self_attn.q_proj.weight")).toEqual([32, 8])
    expect(byName.get("model.layers.0.self_attn.o_proj.weight")).toEqual([8, 32])
  })
})

describe("RoPE inverse frequencies", () => {
  const headDim = 128
  /** float64 transformers formula, the reference. */
  const defaultReference = (theta: number) => Array.from({ length: headDim / 2 }, (_, i) => 1 / theta ** ((2 * i) / headDim))
  const llama3Reference = (theta: number, factor: number, low: number, high: number, old: number) =>
    defaultReference(theta).map((freq) => {
      const wavelen = (2 * Math.PI) / freq
      if (wavelen < old / high) return freq
      if (wavelen > old / low) return freq / factor
      const smooth = (old / wavelen - low) / (high - low)
      return ((1 - smooth) * freq) / factor + smooth * freq
    })
  const config = (rope: Record<string, unknown>) => parseModelConfig(llama8b(rope))

  // float32 rounds each operation to 2^-24 relative. theta^x (the exponents i/64 are
  // exact) then its reciprocal: 2 roundings, so 4 ulps is ample outside the blend band
  // (measured: 1.4). Inside it, `smooth` = (old/wavelen - low) / (high - low) picks up a
  // few roundings of old/wavelen <= high, an absolute error of about 3 * 2^-24 * 4/3, which
  // the blend multiplies by freq * (1 - 1/factor) against a result >= freq / factor, i.e.
  // by up to 7: about 28 ulps, plus the 4 above (measured: 5.4).
  const ulps4 = 4 * 2 ** -24
  const ulps32 = 32 * 2 ** -24
  const relativeError = (a: number, b: number) => Math.abs(a - b) / Math.abs(b)

  it("default RoPE matches 1 / theta^(2i/d) to float32 precision", () => {
    const inv = inverseFrequencies(config({ rope_theta: 500000 }))
    expect(inv).toHaveLength(64)
    const reference = defaultReference(500000)
    inv.forEach((v, i) => expect(relativeError(v, reference[i]!)).toBeLessThan(ulps4))
  })

  it("llama3 scaling matches a float64 reimplementation, and leaves each band as the formula says", () => {
    const scaled = inverseFrequencies(config({ rope_theta: 500000, rope_scaling: { rope_type: "llama3", ...llama31Scaling } }))
    const plain = inverseFrequencies(config({ rope_theta: 500000 }))
    const reference = llama3Reference(500000, 8, 1, 4, 8192)
    let blended = 0
    scaled.forEach((v, i) => {
      const wavelen = (2 * Math.PI) / plain[i]!
      if (wavelen < 2048) expect(v).toBe(plain[i]) // high frequencies untouched
      else if (wavelen > 8192) expect(v).toBe(plain[i]! / 8) // low frequencies slowed exactly by factor
      else {
        blended++
        expect(v).toBeLessThan(plain[i]!)
        expect(v).toBeGreaterThan(plain[i]! / 8)
      }
      const tolerance = wavelen >= 2048 && wavelen <= 8192 ? ulps32 : ulps4
      expect(relativeError(v, reference[i]!)).toBeLessThan(tolerance)
    })
    expect(blended).toBeGreaterThan(3)
  })

  it("linear scaling divides every frequency by the factor", () => {
    const scaled = inverseFrequencies(config({ rope_theta: 10000, rope_scaling: { type: "linear", factor: 4 } }))
    const plain = inverseFrequencies(config({ rope_theta: 10000 }))
    scaled.forEach((v, i) => expect(v).toBe(plain[i]! / 4))
  })
})

describe("generation_config.json", () => {
  it("accepts eos as a number or a list and keeps only what is set", () => {
    expect(parseGenerationConfig({ eos_token_id: 5, top_k: 20 })).toMatchObject({ eosTokenIds: [5], topK: 20, temperature: undefined })
    expect(parseGenerationConfig({ eos_token_id: [1, 2], bos_token_id: 0, do_sample: true }).eosTokenIds).toEqual([1, 2])
    expect(() => parseGenerationConfig({ top_p: 3 }, "/m/generation_config.json")).toThrow(
      `/m/generation_config.json: field "top_p"`,
    )
  })
})
