import { Schema } from "effect"
import { SamplingParams } from "../sampling/SamplingParams.ts"

/**
 * The request bodies of /v1/completions and /v1/chat/completions as OpenAI and vLLM define
 * them. The sampling fields are SamplingParams' own (same wire names, same ranges, one
 * definition); fields neither OpenAI client nor vLLM would reject are accepted and ignored,
 * as vLLM does, so newer clients keep working.
 */

const nullable = <S extends Schema.Schema.Any>(schema: S) => Schema.optionalWith(schema, { nullable: true })
const flag = (fallback: boolean) => Schema.optionalWith(Schema.Boolean, { nullable: true, default: () => fallback })

const { logprobs: completionLogprobs, ...samplingFields } = SamplingParams.from.fields

const StreamOptions = Schema.Struct({ include_usage: flag(false) })

const common = {
  ...samplingFields,
  /** absent: the served model, as vLLM allows */
  model: nullable(Schema.String),
  stream: flag(false),
  stream_options: nullable(StreamOptions),
  user: nullable(Schema.String)
}

const TokenIds = Schema.NonEmptyArray(Schema.NonNegativeInt)

/** one prompt or a batch of them, as text or token ids */
export const Prompt = Schema.Union(Schema.String, Schema.NonEmptyArray(Schema.String), TokenIds, Schema.NonEmptyArray(TokenIds)).annotations({
  message: () => ({
    message: "expected a string, or a non-empty array of strings, of token ids (non-negative integers) or of token-id arrays",
    override: true
  })
})

export const CompletionRequest = Schema.Struct({
  ...common,
  prompt: Prompt,
  /** number of top alternatives per token, 0..20 (SamplingParams' range) */
  logprobs: completionLogprobs,
  echo: flag(false),
  suffix: nullable(Schema.String),
  best_of: nullable(Schema.Int)
})
export type CompletionRequest = typeof CompletionRequest.Type

const TextPart = Schema.Struct({ type: Schema.Literal("text"), text: Schema.String })
/** images, audio, files: recognised so that the answer is "unsupported" rather than "malformed" */
const OtherPart = Schema.Struct({ type: Schema.String.pipe(Schema.filter((t) => t !== "text")) })
export const ContentPart = Schema.Union(TextPart, OtherPart)

export const ChatMessage = Schema.Struct(
  {
    role: Schema.Literal("system", "developer", "user", "assistant", "tool", "function"),
    content: Schema.optionalWith(Schema.Union(Schema.String, Schema.Array(ContentPart)), { nullable: true })
  },
  // name, tool_calls, tool_call_id, reasoning_content...: passed to the chat template as given
  Schema.Record({ key: Schema.String, value: Schema.Unknown })
).annotations({ identifier: "ChatMessage" })
export type ChatMessage = typeof ChatMessage.Type

export const ChatCompletionRequest = Schema.Struct({
  ...common,
  messages: Schema.Array(ChatMessage).pipe(Schema.minItems(1, { message: () => "expected at least one message" })),
  logprobs: flag(false),
  top_logprobs: nullable(Schema.Int.pipe(Schema.between(0, 20))),
  /** OpenAI's newer name for max_tokens; wins when both are given */
  max_completion_tokens: nullable(Schema.Int.pipe(Schema.greaterThanOrEqualTo(1))),
  tools: nullable(Schema.Array(Schema.Unknown)),
  tool_choice: nullable(Schema.Unknown),
  response_format: nullable(Schema.Struct({ type: Schema.String })),
  /** vLLM's extensions for the template */
  add_generation_prompt: flag(true),
  chat_template_kwargs: nullable(Schema.Record({ key: Schema.String, value: Schema.Unknown }))
})
export type ChatCompletionRequest = typeof ChatCompletionRequest.Type

/** the decoded sampling fields of either request */
export type SamplingFields = Schema.Struct.Type<typeof samplingFields>
