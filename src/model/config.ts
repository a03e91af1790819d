import { join } from "node:path"
import { Schema } from "effect"
import { loadError } from "./errors.ts"
import { decodeOrThrow, readJsonFile } from "./jsonFile.ts"

/**
 * config.json, decoded and normalized. Transformers has written this file in several
 * shapes over the years (rope_theta + rope_scaling with `type` or `rope_type`, or
 * rope_parameters; torch_dtype or dtype); everything downstream sees one.
 */

export const ARCHITECTURES = ["LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM"] as const
export type Architecture = (typeof ARCHITECTURES)[number]

export type RopeScaling =
  | { readonly type: "none" }
  | {
      readonly type: "llama3"
      readonly factor: number
      readonly lowFreqFactor: number
      readonly highFreqFactor: number
      readonly originalMaxPositionEmbeddings: number
    }
  | { readonly type: "linear"; readonly factor: number }

export type ModelDtype = "bfloat16" | "float16" | "float32"

export interface ModelConfig {
  readonly architecture: Architecture
  readonly hiddenSize: number
  readonly intermediateSize: number
  readonly numLayers: number
  readonly numHeads: number
  readonly numKvHeads: number
  readonly headDim: number
  readonly vocabSize: number
  readonly rmsNormEps: number
  readonly maxPositionEmbeddings: number
  readonly tieWordEmbeddings: boolean
  /** q_proj, k_proj and v_proj carry biases. */
  readonly attentionBias: boolean
  /** o_proj carries a bias (Llama and Qwen3 with attention_bias; never Qwen2 or Mistral). */
  readonly outputBias: boolean
  /** RMSNorm over each head of q and k before RoPE (Qwen3). */
  readonly qkNorm: boolean
  readonly rope: { readonly theta: number; readonly scaling: RopeScaling }
  readonly dtype: ModelDtype
  readonly bosTokenId: number | null
  readonly eosTokenIds: readonly number[]
}

const PositiveInt = Schema.Int.pipe(Schema.positive())
const TokenId = Schema.Int.pipe(Schema.nonNegative())
const optionalNullable = <S extends Schema.Schema.Any>(s: S) => Schema.optional(Schema.NullOr(s))

// Old configs put these keys in rope_scaling (next to a top-level rope_theta), new ones
// in rope_parameters (with rope_theta inside).
const RopeParameters = Schema.Struct({
  rope_type: Schema.optional(Schema.String),
  type: Schema.optional(Schema.String),
  rope_theta: Schema.optional(Schema.Number.pipe(Schema.positive())),
  factor: Schema.optional(Schema.Number.pipe(Schema.positive())),
  low_freq_factor: Schema.optional(Schema.Number.pipe(Schema.positive())),
  high_freq_factor: Schema.optional(Schema.Number.pipe(Schema.positive())),
  original_max_position_embeddings: Schema.optional(PositiveInt),
})

const RawConfig = Schema.Struct({
  architectures: Schema.NonEmptyArray(Schema.String),
  hidden_size: PositiveInt,
  intermediate_size: PositiveInt,
  num_hidden_layers: PositiveInt,
  num_attention_heads: PositiveInt,
  num_key_value_heads: optionalNullable(PositiveInt),
  head_dim: optionalNullable(PositiveInt),
  vocab_size: PositiveInt,
  rms_norm_eps: Schema.Number.pipe(Schema.positive()),
  max_position_embeddings: PositiveInt,
  tie_word_embeddings: Schema.optional(Schema.Boolean),
  attention_bias: Schema.optional(Schema.Boolean),
  mlp_bias: Schema.optional(Schema.Boolean),
  hidden_act: Schema.optional(Schema.String),
  rope_theta: optionalNullable(Schema.Number.pipe(Schema.positive())),
  rope_scaling: optionalNullable(RopeParameters),
  rope_parameters: optionalNullable(RopeParameters),
  torch_dtype: optionalNullable(Schema.String),
  dtype: optionalNullable(Schema.String),
  bos_token_id: optionalNullable(TokenId),
  eos_token_id: optionalNullable(Schema.Union(TokenId, Schema.Array(TokenId))),
})
type RawConfig = typeof RawConfig.Type

/** Reads and normalizes `<dir>/config.json`. Throws ModelLoadError naming the file and field. */
export function readModelConfig(dir: string): ModelConfig {
  const path = join(dir, "config.json")
  return parseModelConfig(readJsonFile(path), path)
}

/** Decodes an already-parsed config.json; `path` is only used in error messages. */
export function parseModelConfig(json: unknown, path = "config.json"): ModelConfig {
  const raw = decodeOrThrow(RawConfig, json, path)
  const fail = (field: string, problem: string) => loadError(path, `field "${field}": ${problem}`)

  const architecture = raw.architectures[0]
  if (!(ARCHITECTURES as readonly string[]).includes(architecture)) {
    throw fail("architectures", `unsupported architecture "${architecture}" (supported: ${ARCHITECTURES.join(", ")})`)
  }
  if (raw.mlp_bias === true) throw fail("mlp_bias", "MLP biases are not supported")
  // The MLP kernels implement SwiGLU; another activation would load and compute garbage.
  if (raw.hidden_act !== undefined && raw.hidden_act !== "silu") {
    throw fail("hidden_act", `unsupported activation "${raw.hidden_act}" (supported: silu)`)
  }

  const numHeads = raw.num_attention_heads
  const numKvHeads = raw.num_key_value_heads ?? numHeads
  if (numHeads % numKvHeads !== 0) {
    throw fail("num_key_value_heads", `${numKvHeads} does not divide num_attention_heads ${numHeads}`)
  }
  if (raw.head_dim == null && raw.hidden_size % numHeads !== 0) {
    throw fail("head_dim", `missing, and hidden_size ${raw.hidden_size} is not a multiple of num_attention_heads ${numHeads}`)
  }
  const headDim = raw.head_dim ?? raw.hidden_size / numHeads
  if (headDim % 2 !== 0) throw fail("head_dim", `${headDim} is odd; rotary embeddings rotate pairs`)

  const bias = biases(architecture as Architecture, raw.attention_bias ?? false)
  const eos = raw.eos_token_id
  return {
    architecture: architecture as Architecture,
    hiddenSize: raw.hidden_size,
    intermediateSize: raw.intermediate_size,
    numLayers: raw.num_hidden_layers,
    numHeads,
    numKvHeads,
    headDim,
    vocabSize: raw.vocab_size,
    rmsNormEps: raw.rms_norm_eps,
    maxPositionEmbeddings: raw.max_position_embeddings,
    // The transformers default for all four architectures.
    tieWordEmbeddings: raw.tie_word_embeddings ?? false,
    attentionBias: bias.qkv,
    outputBias: bias.output,
    qkNorm: architecture === "Qwen3ForCausalLM",
    rope: normalizeRope(raw, fail),
    dtype: normalizeDtype(raw, fail),
    bosTokenId: raw.bos_token_id ?? null,
    eosTokenIds: eos == null ? [] : typeof eos === "number" ? [eos] : [...eos],
  }
}

/** Which attention projections have biases, as each architecture's modeling file builds them. */
function biases(architecture: Architecture, attentionBias: boolean): { qkv: boolean; output: boolean } {
  switch (architecture) {
    case "Qwen2ForCausalLM":
      return { qkv: true, output: false }
    case "MistralForCausalLM":
      return { qkv: false, output: false }
    case "LlamaForCausalLM":
    case "Qwen3ForCausalLM":
      return { qkv: attentionBias, output: attentionBias }
  }
}

function normalizeRope(raw: RawConfig, fail: (field: string, problem: string) => Error): ModelConfig["rope"] {
  const field = raw.rope_parameters != null ? "rope_parameters" : "rope_scaling"
  const params = raw.rope_parameters ?? raw.rope_scaling ?? {}
  // The transformers default for all four architectures.
  const theta = params.rope_theta ?? raw.rope_theta ?? 10000
  const type = params.rope_type ?? params.type ?? "default"
  const need = (key: keyof typeof params): number => {
    const value = params[key]
    if (typeof value !== "number") throw fail(`${field}.${key}`, `is missing (needed by rope type "${type}")`)
    return value
  }
  switch (type) {
    case "default":
      return { theta, scaling: { type: "none" } }
    case "linear":
      return { theta, scaling: { type: "linear", factor: need("factor") } }
    case "llama3":
      return {
        theta,
        scaling: {
          type: "llama3",
          factor: need("factor"),
          lowFreqFactor: need("low_freq_factor"),
          highFreqFactor: need("high_freq_factor"),
          originalMaxPositionEmbeddings: need("original_max_position_embeddings"),
        },
      }
    default:
      throw fail(`${field}.rope_type`, `unsupported rope type "${type}" (supported: default, linear, llama3)`)
  }
}

function normalizeDtype(raw: RawConfig, fail: (field: string, problem: string) => Error): ModelDtype {
  const field = raw.dtype != null ? "dtype" : "torch_dtype"
  // transformers loads in float32 when the config names no dtype.
  const dtype = raw.dtype ?? raw.torch_dtype ?? "float32"
  if (dtype === "bfloat16" || dtype === "float16" || dtype === "float32") return dtype
  throw fail(field, `unsupported dtype "${dtype}" (supported: bfloat16, float16, float32)`)
}
