import { Effect, Either, Option, Stream } from "effect"
import type { ChatMessage as TemplateMessage } from "../tokenizer/chatTemplate.ts"
import { now } from "./engineMonitor.ts"
import { BadRequest, Unsupported } from "./errors.ts"
import { choiceDeltas, collectChoices, startGenerations, usageOf } from "./generation.ts"
import { chatLogprobs } from "./logprobsFormat.ts"
import { checkModel, ModelCatalog } from "./models.ts"
import { ChatCompletionRequest, type ChatMessage } from "./openaiSchemas.ts"
import { requestId, type Reply } from "./reply.ts"
import { decodeJsonBody } from "./requestBody.ts"
import { checkContext, samplingParams } from "./sampling.ts"

/** POST /v1/chat/completions: messages rendered with the model's chat template, then generated. */

const checkSupported = (request: ChatCompletionRequest) => {
  if (request.tools != null && request.tools.length > 0) {
    return new Unsupported({ message: "tools (function calling) are not supported.", param: "tools" })
  }
  if (request.tool_choice != null && request.tool_choice !== "none" && request.tool_choice !== "auto") {
    return new Unsupported({ message: "tool_choice other than none or auto is not supported.", param: "tool_choice" })
  }
  if (request.response_format != null && request.response_format.type !== "text") {
    return new Unsupported({ message: `response_format ${request.response_format.type} (guided decoding) is not supported.`, param: "response_format" })
  }
  if (request.top_logprobs != null && !request.logprobs) {
    return new BadRequest({ message: "top_logprobs requires logprobs to be true.", param: "top_logprobs" })
  }
  return Effect.void
}

/**
 * Text parts joined by newlines into one string, as vLLM's "string" content format gives
 * templates (most, Qwen's and Llama's among them, expect a string).
 */
const templateMessages = (messages: ReadonlyArray<ChatMessage>): Effect.Effect<TemplateMessage[], Unsupported> =>
  Effect.forEach(messages, (message, i) => {
    const content = message.content
    if (content == null || typeof content === "string") return Effect.succeed({ ...message, content: content ?? "" })
    const texts: string[] = []
    for (const part of content) {
      if (!("text" in part)) {
        return new Unsupported({ message: `content parts of type "${part.type}" are not supported by this model.`, param: `messages.${i}.content` })
      }
      texts.push(part.text)
    }
    return Effect.succeed({ ...message, content: texts.join("\n") })
  })

export const chatCompletions = Effect.gen(function* () {
  const arrival = now()
  const request = yield* decodeJsonBody(ChatCompletionRequest)
  yield* checkModel(request.model)
  yield* checkSupported(request)
  const catalog = yield* ModelCatalog
  const maxTokens = request.max_completion_tokens ?? request.maxTokens
  const params = yield* samplingParams(request, { maxTokens, logprobs: request.logprobs ? (request.top_logprobs ?? 0) : undefined })
  if (Either.isLeft(catalog.chatTemplate)) return yield* new BadRequest({ message: catalog.chatTemplate.left, param: "messages" })
  const template = catalog.chatTemplate.right
  const messages = yield* templateMessages(request.messages)
  const prompt = yield* Effect.try({
    try: () => template.apply(messages, { addGenerationPrompt: request.add_generation_prompt, extra: request.chat_template_kwargs ?? {} }),
    catch: (e) => new BadRequest({ message: e instanceof Error ? e.message : String(e), param: "messages" })
  })
  yield* checkContext(prompt.length, maxTokens, catalog.maxModelLen, "messages")

  const id = requestId("chatcmpl")
  const created = Math.floor(Date.now() / 1000)
  const generations = yield* startGenerations(id, [prompt], params, arrival)
  const head = { id, created, model: catalog.name } as const
  const logprobsOf = request.logprobs ? chatLogprobs : () => null

  if (!request.stream) {
    const choices = yield* collectChoices(generations, params.n)
    return {
      _tag: "Json",
      body: {
        ...head,
        object: "chat.completion",
        choices: choices.map((c) => ({
          index: c.index,
          message: { role: "assistant", content: c.text },
          logprobs: logprobsOf(c.logprobs, catalog.tokenTexts),
          finish_reason: c.finishReason ?? null,
          stop_reason: c.stopReason ?? null
        })),
        usage: usageOf(generations, choices.reduce((sum, c) => sum + c.tokenIds.length, 0))
      }
    } satisfies Reply
  }

  const includeUsage = request.stream_options?.include_usage ?? false
  const chunk = (choice: object) => ({ ...head, object: "chat.completion.chunk", choices: [choice], ...(includeUsage && { usage: null }) })
  // the assistant's role first, for every choice, as OpenAI and vLLM send it before any text
  const roles = Stream.fromIterable(
    Array.from({ length: params.n }, (_, index) => chunk({ index, delta: { role: "assistant", content: "" }, logprobs: null, finish_reason: null }))
  )
  let completionTokens = 0
  const deltas = choiceDeltas(generations, params.n).pipe(
    Stream.filterMap(({ choice, delta }) => {
      completionTokens += delta.tokenIds.length
      const logprobs = request.logprobs ? chatLogprobs(delta.logprobs ?? [], catalog.tokenTexts) : null
      if (delta.text === "" && delta.finishReason === undefined && (logprobs?.content.length ?? 0) === 0) return Option.none()
      return Option.some(
        chunk({
          index: choice,
          delta: delta.text === "" ? {} : { content: delta.text },
          logprobs,
          finish_reason: delta.finishReason ?? null,
          stop_reason: delta.stopReason ?? null
        })
      )
    })
  )
  const usage = Stream.suspend(() =>
    includeUsage ? Stream.succeed({ ...head, object: "chat.completion.chunk", choices: [], usage: usageOf(generations, completionTokens) }) : Stream.empty
  )
  return { _tag: "Events", chunks: Stream.concat(Stream.concat(roles, deltas), usage) } satisfies Reply
})
