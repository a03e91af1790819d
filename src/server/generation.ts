import { Effect, Stream } from "effect"
import { Engine, type CompletionDelta } from "../engine/Engine.ts"
import { Metrics } from "../metrics/serverMetrics.ts"
import type { TokenLogprobs } from "../sampling/logprobs.ts"
import type { SamplingParams } from "../sampling/SamplingParams.ts"
import type { FinishReason } from "../sampling/stopChecker.ts"
import { EngineMonitor } from "./engineMonitor.ts"
import { BadRequest, EngineFailure, QueueFull } from "./errors.ts"
import { observeRequest } from "./requestMetrics.ts"

/**
 * The server's side of the engine: one engine request per prompt, all started before the
 * response begins (so a full queue is a 429, not a broken stream), each stream observed for
 * the metrics. Interrupting a stream (the client left) aborts its engine request, which
 * frees its KV blocks at the next step boundary.
 */

export interface Generation {
  readonly promptTokenIds: ReadonlyArray<number>
  readonly deltas: Stream.Stream<CompletionDelta, EngineFailure>
}

/** a delta placed among the response's choices: prompt p's completion i is choice p * n + i, as in vLLM */
export interface ChoiceDelta {
  readonly choice: number
  readonly prompt: number
  readonly delta: CompletionDelta
}

export interface Choice {
  readonly index: number
  readonly prompt: number
  text: string
  readonly tokenIds: number[]
  readonly logprobs: TokenLogprobs[]
  finishReason: FinishReason | undefined
  stopReason: string | number | undefined
}

export const startGenerations = (
  requestId: string,
  prompts: ReadonlyArray<ReadonlyArray<number>>,
  params: SamplingParams,
  arrival: number
): Effect.Effect<ReadonlyArray<Generation>, QueueFull | BadRequest, Engine | Metrics | EngineMonitor> =>
  Effect.gen(function* () {
    const engine = yield* Engine
    const metrics = yield* Metrics
    const monitor = yield* EngineMonitor
    const started: Array<{ readonly requestId: string; readonly onEnd: () => void }> = []
    const start = (promptTokenIds: ReadonlyArray<number>, index: number) =>
      Effect.gen(function* () {
        const id = prompts.length === 1 ? requestId : `${requestId}-${index}`
        const handle = yield* engine.generate({ promptTokenIds, params, requestId: id }).pipe(
          Effect.catchTags({
            QueueFullError: (e) => new QueueFull({ capacity: e.capacity }),
            InvalidRequestError: (e) => new BadRequest({ message: e.message, ...(e.param !== undefined && { param: e.param }) })
          })
        )
        const observer = observeRequest(metrics, monitor, {
          requestId: id,
          promptLength: promptTokenIds.length,
          n: params.n,
          maxTokens: params.maxTokens,
          arrival
        })
        started.push({ requestId: id, onEnd: () => observer.onEnd("abort") })
        // anything else that ends the stream early (the client left, the socket broke) is an abort
        let engineFailed = false
        const deltas = handle.stream.pipe(
          Stream.tap((delta) => Effect.sync(() => observer.onDelta(delta))),
          Stream.mapError((e) => {
            engineFailed = true
            return new EngineFailure({ message: `The engine failed: ${e.message}` })
          }),
          Stream.ensuring(Effect.sync(() => observer.onEnd(engineFailed ? "error" : "abort")))
        )
        return { promptTokenIds, deltas } satisfies Generation
      })
    // a later prompt that fails leaves the earlier ones unconsumed: end them here
    return yield* Effect.forEach(prompts, start).pipe(
      Effect.onError(() => Effect.forEach(started, (s) => Effect.zipRight(engine.abort(s.requestId), Effect.sync(s.onEnd))))
    )
  })

export const choiceDeltas = (generations: ReadonlyArray<Generation>, n: number): Stream.Stream<ChoiceDelta, EngineFailure> => {
  const placed = generations.map((g, prompt) =>
    Stream.map(g.deltas, (delta): ChoiceDelta => ({ choice: prompt * n + delta.index, prompt, delta }))
  )
  return placed.length === 1 ? placed[0] : Stream.mergeAll(placed, { concurrency: "unbounded" })
}

/** runs every generation to its end: the choices, in index order */
export const collectChoices = (generations: ReadonlyArray<Generation>, n: number): Effect.Effect<ReadonlyArray<Choice>, EngineFailure> => {
  const choices: Choice[] = generations.flatMap((_, prompt) =>
    Array.from({ length: n }, (_, i) => ({
      index: prompt * n + i,
      prompt,
      text: "",
      tokenIds: [],
      logprobs: [],
      finishReason: undefined,
      stopReason: undefined
    }))
  )
  return Stream.runForEach(choiceDeltas(generations, n), ({ choice, delta }) =>
    Effect.sync(() => {
      const c = choices[choice]
      c.text += delta.text
      c.tokenIds.push(...delta.tokenIds)
      if (delta.logprobs) c.logprobs.push(...delta.logprobs)
      if (delta.finishReason !== undefined) c.finishReason = delta.finishReason
      if (delta.stopReason !== undefined) c.stopReason = delta.stopReason
    })
  ).pipe(Effect.as(choices))
}

export interface Usage {
  readonly prompt_tokens: number
  readonly completion_tokens: number
  readonly total_tokens: number
}

/** each prompt counts once however many completions it has, as OpenAI and vLLM count it */
export const usageOf = (generations: ReadonlyArray<Generation>, completionTokens: number): Usage => {
  const promptTokens = generations.reduce((sum, g) => sum + g.promptTokenIds.length, 0)
  return { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens }
}
