import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"

/**
 * A Llama-shaped config large enough that decode is memory-bound on a CPU (about 160M
 * parameters, 640 MB in f32), written to a temporary directory for `--load-format dummy`.
 */
export const benchConfig = {
  architectures: ["LlamaForCausalLM"],
  model_type: "llama",
  hidden_size: 1024,
  intermediate_size: 2816,
  num_hidden_layers: 8,
  num_attention_heads: 16,
  num_key_value_heads: 8,
  vocab_size: 32000,
  max_position_embeddings: 4096,
  rms_norm_eps: 1e-5,
  rope_theta: 10000,
  tie_word_embeddings: false,
  torch_dtype: "float32",
  bos_token_id: 1,
  eos_token_id: 2,
  hidden_act: "silu"
}

/** The Llama-3-8B shape the GPU benchmarks run (bf16, random weights made on the device). */
export const llama3_8bConfig = {
  architectures: ["LlamaForCausalLM"], model_type: "llama", hidden_size: 4096, intermediate_size: 14336, num_hidden_layers: 32,
  num_attention_heads: 32, num_key_value_heads: 8, vocab_size: 128256, max_position_embeddings: 8192, rope_theta: 500000,
  rms_norm_eps: 1e-5, tie_word_embeddings: false, torch_dtype: "bfloat16", bos_token_id: 1, eos_token_id: 2, hidden_act: "silu"
}

export const writeBenchModel = (config: Record<string, unknown> = benchConfig): string => {
  const dir = mkdtempSync(join(tmpdir(), "tessera-bench-"))
  writeFileSync(join(dir, "config.json"), JSON.stringify(config, null, 2))
  return dir
}

/** bytes of weights one decode step reads: every layer and the lm_head (the embedding is gathered, not read whole) */
export const weightBytesPerToken = (c = benchConfig, bytesPerElement = 4): number => {
  const H = c.hidden_size
  const D = H / c.num_attention_heads
  const attention = H * (c.num_attention_heads + 2 * c.num_key_value_heads) * D + c.num_attention_heads * D * H
  const mlp = 3 * H * c.intermediate_size
  return (c.num_hidden_layers * (attention + mlp + 2 * H) + H + c.vocab_size * H) * bytesPerElement
}

/** bytes of K and V one decode step reads for a context of `tokens` */
export const kvBytesPerToken = (tokens: number, c = benchConfig, bytesPerElement = 4): number =>
  2 * c.num_hidden_layers * tokens * c.num_key_value_heads * (c.hidden_size / c.num_attention_heads) * bytesPerElement
