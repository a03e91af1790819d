import { Effect, Option, Stream } from "effect"
import { ServedModel } from "../engine/servedModel.ts"
import type { TextTokenizer } from "../tokenizer/tokenizer.ts"
import { now } from "./engineMonitor.ts"
import { Unsupported } from "./errors.ts"
import { choiceDeltas, collectChoices, startGenerations, usageOf } from "./generation.ts"
import { completionLogprobs } from "./logprobsFormat.ts"
import { checkModel, ModelCatalog } from "./models.ts"
import { CompletionRequest } from "./openaiSchemas.ts"
import { requestId, type Reply } from "./reply.ts"
import { decodeJsonBody } from "./requestBody.ts"
import { checkContext, samplingParams } from "./sampling.ts"

/** POST /v1/completions: OpenAI's legacy completions, with vLLM's sampling extensions. */

/** OpenAI's default for this endpoint (chat has none: up to the context) */
const defaultMaxTokens = 16

/** text prompts are tokenized with the model's special tokens (BOS where it wants one), as vLLM does */
const tokenizePrompts = (prompt: CompletionRequest["prompt"], tokenizer: TextTokenizer): ReadonlyArray<ReadonlyArray<number>> => {
  if (typeof prompt === "string") return [tokenizer.encode(prompt)]
  if (typeof prompt[0] === "number") return [prompt as ReadonlyArray<number>]
  return (prompt as ReadonlyArray<string | ReadonlyArray<number>>).map((p) => (typeof p === "string" ? tokenizer.encode(p) : p))
}

const checkSupported = (request: CompletionRequest) => {
  if (request.suffix != null && request.suffix !== "") {
    return new Unsupported({ message: "suffix (insertion) is not supported.", param: "suffix" })
  }
  if (request.best_of != null && request.best_of !== request.n) {
    return new Unsupported({ message: "best_of different from n is not supported; use n.", param: "best_of" })
  }
  if (request.echo && request.logprobs != null) {
    return new Unsupported({ message: "echo with logprobs needs prompt logprobs, which are not computed.", param: "echo" })
  }
  return Effect.void
}

export const completions = Effect.gen(function* () {
  const arrival = now()
  const request = yield* decodeJsonBody(CompletionRequest)
  yield* checkModel(request.model)
  yield* checkSupported(request)
  const { tokenizer } = yield* ServedModel
  const catalog = yield* ModelCatalog
  const maxTokens = request.maxTokens ?? defaultMaxTokens
  const params = yield* samplingParams(request, { maxTokens, logprobs: request.logprobs })
  const prompts = tokenizePrompts(request.prompt, tokenizer)
  yield* Effect.forEach(prompts, (p) => checkContext(p.length, maxTokens, catalog.maxModelLen, "prompt"), { discard: true })

  const id = requestId("cmpl")
  const created = Math.floor(Date.now() / 1000)
  const generations = yield* startGenerations(id, prompts, params, arrival)
  const echoes = prompts.map((p, i) => {
    if (!request.echo) return ""
    const raw = typeof request.prompt === "string" ? request.prompt : request.prompt[i]
    return typeof raw === "string" ? raw : tokenizer.decode(p as number[])
  })
  const wantsLogprobs = request.logprobs != null
  const head = { id, object: "text_completion", created, model: catalog.name } as const

  if (!request.stream) {
    const choices = yield* collectChoices(generations, params.n)
    return {
      _tag: "Json",
      body: {
        ...head,
        choices: choices.map((c) => ({
          index: c.index,
          text: echoes[c.prompt] + c.text,
          logprobs: wantsLogprobs ? completionLogprobs(c.logprobs, catalog.tokenTexts, 0).logprobs : null,
          finish_reason: c.finishReason ?? null,
          stop_reason: c.stopReason ?? null
        })),
        usage: usageOf(generations, choices.reduce((sum, c) => sum + c.tokenIds.length, 0))
      }
    } satisfies Reply
  }

  const includeUsage = request.stream_options?.include_usage ?? false
  const offsets = new Map<number, number>()
  let completionTokens = 0
  const chunks = choiceDeltas(generations, params.n).pipe(
    Stream.filterMap(({ choice, prompt, delta }) => {
      completionTokens += delta.tokenIds.length
      const first = !offsets.has(choice)
      const text = (first ? echoes[prompt] : "") + delta.text
      const logprobs = wantsLogprobs ? completionLogprobs(delta.logprobs ?? [], catalog.tokenTexts, offsets.get(choice) ?? 0) : undefined
      // a token still completing a UTF-8 character prints nothing yet: no chunk, unless it carries logprobs
      if (text === "" && delta.finishReason === undefined && (logprobs?.logprobs.tokens.length ?? 0) === 0) return Option.none()
      offsets.set(choice, logprobs?.nextOffset ?? 0)
      return Option.some({
        ...head,
        choices: [
          {
            index: choice,
            text,
            logprobs: logprobs?.logprobs ?? null,
            finish_reason: delta.finishReason ?? null,
            stop_reason: delta.stopReason ?? null
          }
        ],
        ...(includeUsage && { usage: null })
      })
    }),
    Stream.concat(
      includeUsage ? Stream.suspend(() => Stream.succeed({ ...head, choices: [], usage: usageOf(generations, completionTokens) })) : Stream.empty
    )
  )
  return { _tag: "Events", chunks } satisfies Reply
})
