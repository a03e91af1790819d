import { Schema } from "effect"

/**
 * Per-request sampling parameters. The encoded side uses the wire names of the OpenAI and
 * vLLM APIs (`top_p`, `max_tokens`, ...); the decoded side is camelCase. Ranges follow
 * vLLM's `SamplingParams._verify_args` and OpenAI's documented bounds.
 */

const Finite = Schema.Number.pipe(Schema.finite())

/** `stop` may be one string or a list; both decode to a list. Empty strings would match everywhere. */
const StopStrings = Schema.transform(
  Schema.Union(Schema.String, Schema.Array(Schema.String)),
  Schema.Array(Schema.NonEmptyString),
  {
    strict: true,
    decode: (s) => (typeof s === "string" ? [s] : s),
    encode: (s) => s,
  },
)

/** OpenAI's logit_bias: token id (as a decimal string key) -> bias in [-100, 100] */
const LogitBias = Schema.Record({ key: Schema.String, value: Finite.pipe(Schema.between(-100, 100)) }).pipe(
  // checked on the whole record: a refined key schema would silently drop bad keys
  Schema.filter((bias) => Object.keys(bias).every((k) => /^\d+$/.test(k)) || "logit_bias keys must be token ids"),
)

export const SamplingParams = Schema.Struct({
  /** completions returned per prompt; they share the prompt's KV blocks */
  n: Schema.optionalWith(Schema.Int.pipe(Schema.between(1, 128)), { default: () => 1, nullable: true }),
  /** 0 means greedy */
  temperature: Schema.optionalWith(Finite.pipe(Schema.greaterThanOrEqualTo(0)), {
    default: () => 1,
    nullable: true,
  }),
  topP: Schema.optionalWith(Finite.pipe(Schema.greaterThan(0), Schema.lessThanOrEqualTo(1)), {
    default: () => 1,
    nullable: true,
  }).pipe(Schema.fromKey("top_p")),
  /** -1 disables top-k */
  topK: Schema.optionalWith(
    Schema.Int.pipe(Schema.filter((k) => k === -1 || k >= 1, { message: () => "top_k must be -1 (disabled) or >= 1" })),
    { default: () => -1, nullable: true },
  ).pipe(Schema.fromKey("top_k")),
  minP: Schema.optionalWith(Finite.pipe(Schema.between(0, 1)), { default: () => 0, nullable: true }).pipe(
    Schema.fromKey("min_p"),
  ),
  presencePenalty: Schema.optionalWith(Finite.pipe(Schema.between(-2, 2)), { default: () => 0, nullable: true }).pipe(
    Schema.fromKey("presence_penalty"),
  ),
  frequencyPenalty: Schema.optionalWith(Finite.pipe(Schema.between(-2, 2)), { default: () => 0, nullable: true }).pipe(
    Schema.fromKey("frequency_penalty"),
  ),
  /** multiplicative, over prompt and output tokens (CTRL paper); 1 disables it */
  repetitionPenalty: Schema.optionalWith(Finite.pipe(Schema.greaterThan(0)), {
    default: () => 1,
    nullable: true,
  }).pipe(Schema.fromKey("repetition_penalty")),
  /** absent: the engine draws one at arrival, so the request stays reproducible after preemption */
  seed: Schema.optionalWith(Schema.Int.pipe(Schema.between(Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER)), {
    nullable: true,
  }),
  stop: Schema.optionalWith(StopStrings, { default: () => [], nullable: true }),
  stopTokenIds: Schema.optionalWith(Schema.Array(Schema.NonNegativeInt), { default: () => [], nullable: true }).pipe(
    Schema.fromKey("stop_token_ids"),
  ),
  /** absent: until the model's context length */
  maxTokens: Schema.optionalWith(Schema.Int.pipe(Schema.greaterThanOrEqualTo(1)), { nullable: true }).pipe(
    Schema.fromKey("max_tokens"),
  ),
  /** EOS and stop_token_ids are masked out until this many tokens exist (stop strings are not) */
  minTokens: Schema.optionalWith(Schema.NonNegativeInt, { default: () => 0, nullable: true }).pipe(
    Schema.fromKey("min_tokens"),
  ),
  /** number of top alternatives returned with each token; absent: no logprobs */
  logprobs: Schema.optionalWith(Schema.Int.pipe(Schema.between(0, 20)), { nullable: true }),
  logitBias: Schema.optionalWith(LogitBias, { default: () => ({}), nullable: true }).pipe(
    Schema.fromKey("logit_bias"),
  ),
  ignoreEos: Schema.optionalWith(Schema.Boolean, { default: () => false, nullable: true }).pipe(
    Schema.fromKey("ignore_eos"),
  ),
}).pipe(
  Schema.filter((p) => p.maxTokens === undefined || p.minTokens <= p.maxTokens || "min_tokens must not exceed max_tokens"),
)

export type SamplingParams = typeof SamplingParams.Type
export type SamplingParamsEncoded = typeof SamplingParams.Encoded

export const decodeSamplingParams = Schema.decodeUnknown(SamplingParams)
export const decodeSamplingParamsSync = Schema.decodeUnknownSync(SamplingParams)

/** temperatures below this are treated as greedy, as in vLLM (_SAMPLING_EPS) */
export const GREEDY_TEMPERATURE_EPS = 1e-5

export const isGreedy = (p: SamplingParams): boolean => p.temperature < GREEDY_TEMPERATURE_EPS
