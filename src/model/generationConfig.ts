import { existsSync } from "node:fs"
import { join } from "node:path"
import { Schema } from "effect"
import { decodeOrThrow, readJsonFile } from "./jsonFile.ts"

/**
 * generation_config.json: the model's own stop tokens and default sampling settings.
 * Its eos_token_id often lists more stop tokens than config.json (Llama 3 instruct
 * adds <|eot_id|>), and, as in vLLM, its sampling values are the defaults a request
 * overrides.
 */
export interface GenerationConfig {
  readonly bosTokenId: number | undefined
  readonly eosTokenIds: readonly number[]
  readonly padTokenId: number | undefined
  readonly temperature: number | undefined
  readonly topP: number | undefined
  readonly topK: number | undefined
  readonly minP: number | undefined
  readonly repetitionPenalty: number | undefined
  readonly maxNewTokens: number | undefined
}

const TokenId = Schema.Int.pipe(Schema.nonNegative())
const optional = <S extends Schema.Schema.Any>(s: S) => Schema.optional(Schema.NullOr(s))

const RawGenerationConfig = Schema.Struct({
  bos_token_id: optional(TokenId),
  eos_token_id: optional(Schema.Union(TokenId, Schema.Array(TokenId))),
  pad_token_id: optional(TokenId),
  temperature: optional(Schema.Number.pipe(Schema.nonNegative())),
  top_p: optional(Schema.Number.pipe(Schema.between(0, 1))),
  top_k: optional(Schema.Int),
  min_p: optional(Schema.Number.pipe(Schema.between(0, 1))),
  repetition_penalty: optional(Schema.Number.pipe(Schema.positive())),
  max_new_tokens: optional(Schema.Int.pipe(Schema.positive())),
})

/** Reads `<dir>/generation_config.json`, or returns null when the model has none. */
export function readGenerationConfig(dir: string): GenerationConfig | null {
  const path = join(dir, "generation_config.json")
  if (!existsSync(path)) return null
  return parseGenerationConfig(readJsonFile(path), path)
}

export function parseGenerationConfig(json: unknown, path = "generation_config.json"): GenerationConfig {
  const raw = decodeOrThrow(RawGenerationConfig, json, path)
  const eos = raw.eos_token_id
  return {
    bosTokenId: raw.bos_token_id ?? undefined,
    eosTokenIds: eos == null ? [] : typeof eos === "number" ? [eos] : [...eos],
    padTokenId: raw.pad_token_id ?? undefined,
    temperature: raw.temperature ?? undefined,
    topP: raw.top_p ?? undefined,
    topK: raw.top_k ?? undefined,
    minP: raw.min_p ?? undefined,
    repetitionPenalty: raw.repetition_penalty ?? undefined,
    maxNewTokens: raw.max_new_tokens ?? undefined,
  }
}
