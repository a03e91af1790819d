import type { ModelConfig } from "./config.ts"

/**
 * The tensors a checkpoint of each supported architecture holds, by their Hugging Face
 * names and shapes ([out_features, in_features] for linear weights, as nn.Linear stores
 * them). All four architectures share Llama's layout; they differ only in biases,
 * Qwen3's per-head q/k norms, and whether lm_head is tied to the embedding.
 */

export interface ExpectedTensor {
  readonly name: string
  readonly shape: readonly number[]
}

export const layerPrefix = (layer: number): string => `model.layers.${layer}`

/** The tensors of one decoder layer. */
export function expectedLayerTensors(config: ModelConfig, layer: number): ExpectedTensor[] {
  const { hiddenSize: h, intermediateSize: i, numHeads, numKvHeads, headDim: d } = config
  const p = layerPrefix(layer)
  const q = numHeads * d
  const kv = numKvHeads * d
  const tensors: ExpectedTensor[] = [
    { name: `${p}.input_layernorm.weight`, shape: [h] },
    { name: `${p}.self_attn.q_proj.weight`, shape: [q, h] },
    { name: `${p}.self_attn.k_proj.weight`, shape: [kv, h] },
    { name: `${p}.self_attn.v_proj.weight`, shape: [kv, h] },
    { name: `${p}.self_attn.o_proj.weight`, shape: [h, q] },
  ]
  if (config.attentionBias) {
    tensors.push(
      { name: `${p}.self_attn.q_proj.bias`, shape: [q] },
      { name: `${p}.self_attn.k_proj.bias`, shape: [kv] },
      { name: `${p}.self_attn.v_proj.bias`, shape: [kv] },
    )
  }
  if (config.outputBias) tensors.push({ name: `${p}.self_attn.o_proj.bias`, shape: [h] })
  if (config.qkNorm) {
    tensors.push(
      { name: `${p}.self_attn.q_norm.weight`, shape: [d] },
      { name: `${p}.self_attn.k_norm.weight`, shape: [d] },
    )
  }
  tensors.push(
    { name: `${p}.post_attention_layernorm.weight`, shape: [h] },
    { name: `${p}.mlp.gate_proj.weight`, shape: [i, h] },
    { name: `${p}.mlp.up_proj.weight`, shape: [i, h] },
    { name: `${p}.mlp.down_proj.weight`, shape: [h, i] },
  )
  return tensors
}

/** Every tensor the model needs, in forward order. */
export function expectedTensors(config: ModelConfig): ExpectedTensor[] {
  const tensors: ExpectedTensor[] = [
    { name: "model.embed_tokens.weight", shape: [config.vocabSize, config.hiddenSize] },
  ]
  for (let layer = 0; layer < config.numLayers; layer++) tensors.push(...expectedLayerTensors(config, layer))
  tensors.push({ name: "model.norm.weight", shape: [config.hiddenSize] })
  if (!config.tieWordEmbeddings) tensors.push({ name: "lm_head.weight", shape: [config.vocabSize, config.hiddenSize] })
  return tensors
}

/** elements of every weight the config needs (the lm_head counted only when untied) */
export const parameterCount = (config: ModelConfig): number =>
  expectedTensors(config).reduce((n, t) => n + t.shape.reduce((a, b) => a * b, 1), 0)
