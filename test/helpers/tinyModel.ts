import { writeFileSync } from "node:fs"
import { join } from "node:path"
import { parseModelConfig } from "../../src/model/config.ts"
import { expectedTensors } from "../../src/model/expectedTensors.ts"
import { bf16Bits, bitsTensor, type TensorData, writeSafetensors } from "./safetensorsWriter.ts"

/** A config.json for a tiny Llama: 2 layers, hidden 8, 2 heads (1 KV head), vocab 16. */
export const tinyLlamaConfig = (overrides: Record<string, unknown> = {}): Record<string, unknown> => ({
  architectures: ["LlamaForCausalLM"],
  hidden_size: 8,
  intermediate_size: 12,
  num_hidden_layers: 2,
  num_attention_heads: 2,
  num_key_value_heads: 1,
  vocab_size: 16,
  rms_norm_eps: 1e-5,
  max_position_embeddings: 64,
  rope_theta: 10000,
  torch_dtype: "bfloat16",
  bos_token_id: 1,
  eos_token_id: 2,
  ...overrides,
})

/**
 * Element `i` of tensor number `tensorIndex` holds tensorIndex + (i % 4) / 4: at most
 * 8 significant bits for up to 64 tensors, so exact in bfloat16.
 */
export const tinyValue = (tensorIndex: number, i: number): number => tensorIndex + (i % 4) / 4

export interface TinyModelOptions {
  readonly omit?: readonly string[]
  readonly shapeOverrides?: Readonly<Record<string, readonly number[]>>
  /** Split the tensors over this many shards with an index; default one model.safetensors. */
  readonly shards?: number
}

/** Writes config.json and BF16 weights matching `rawConfig` into `dir`. */
export function writeTinyModel(dir: string, rawConfig: Record<string, unknown>, options: TinyModelOptions = {}): void {
  writeFileSync(join(dir, "config.json"), JSON.stringify(rawConfig))
  const tensors: [string, TensorData][] = expectedTensors(parseModelConfig(rawConfig))
    .filter((t) => !options.omit?.includes(t.name))
    .map((t, index) => {
      const shape = options.shapeOverrides?.[t.name] ?? t.shape
      const count = shape.reduce((a, b) => a * b, 1)
      const bits = Array.from({ length: count }, (_, i) => bf16Bits(tinyValue(index, i)))
      return [t.name, bitsTensor("BF16", shape, bits)]
    })
  const shards = options.shards ?? 1
  if (shards === 1) {
    writeSafetensors(join(dir, "model.safetensors"), Object.fromEntries(tensors))
    return
  }
  const weightMap: Record<string, string> = {}
  const perShard = Math.ceil(tensors.length / shards)
  for (let s = 0; s < shards; s++) {
    const file = `model-${String(s + 1).padStart(5, "0")}-of-${String(shards).padStart(5, "0")}.safetensors`
    const part = tensors.slice(s * perShard, (s + 1) * perShard)
    for (const [name] of part) weightMap[name] = file
    writeSafetensors(join(dir, file), Object.fromEntries(part))
  }
  writeFileSync(join(dir, "model.safetensors.index.json"), JSON.stringify({ metadata: {}, weight_map: weightMap }))
}
