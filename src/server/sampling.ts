import { Effect, Schema } from "effect"
import { SamplingParams } from "../sampling/SamplingParams.ts"
import { BadRequest } from "./errors.ts"
import type { SamplingFields } from "./openaiSchemas.ts"
import { describeParseError } from "./requestBody.ts"

const samplingKeys = Object.keys(SamplingParams.from.fields) as ReadonlyArray<keyof SamplingParams>

/**
 * The request's SamplingParams: its sampling fields, with what each endpoint decides itself
 * (the max_tokens default, what `logprobs` means), checked once more as a whole so that the
 * cross-field rules (min_tokens <= max_tokens) hold for the final values.
 */
export const samplingParams = (
  fields: SamplingFields,
  endpoint: { readonly maxTokens: number | undefined; readonly logprobs: number | undefined }
): Effect.Effect<SamplingParams, BadRequest> => {
  const picked = Object.fromEntries(samplingKeys.map((key) => [key, (fields as Partial<SamplingParams>)[key]]))
  const params = { ...picked, maxTokens: endpoint.maxTokens, logprobs: endpoint.logprobs }
  return Schema.validate(SamplingParams)(params).pipe(Effect.mapError(describeParseError))
}

/**
 * vLLM's context checks (serving_engine._validate_input), with its messages: the prompt must
 * leave room for one token, and an explicit max_tokens must fit beside the prompt.
 */
export const checkContext = (
  promptLength: number,
  maxTokens: number | undefined,
  maxModelLen: number,
  promptParam: string
): Effect.Effect<void, BadRequest> => {
  if (promptLength === 0) return new BadRequest({ message: "The prompt is empty.", param: promptParam })
  if (promptLength >= maxModelLen) {
    return new BadRequest({
      message: `This model's maximum context length is ${maxModelLen} tokens. However, your request has ${promptLength} input tokens. Please reduce the length of the input.`,
      param: promptParam,
      code: "context_length_exceeded"
    })
  }
  if (maxTokens !== undefined && promptLength + maxTokens > maxModelLen) {
    return new BadRequest({
      message: `'max_tokens' or 'max_completion_tokens' is too large: ${maxTokens}. This model's maximum context length is ${maxModelLen} tokens and your request has ${promptLength} input tokens (${maxTokens} > ${maxModelLen} - ${promptLength}).`,
      param: "max_tokens",
      code: "context_length_exceeded"
    })
  }
  return Effect.void
}
