import hyperid from "hyperid"
import { Context, Data, Effect, Exit, Layer, Mailbox, Queue, Stream } from "effect"
import { BlockManager } from "../effects/BlockManager.ts"
import { ExecutorService } from "../effects/ExecutorService.ts"
import { Scheduler, type SchedulerConfigError } from "../effects/Scheduler.ts"
import type { Detokenizer } from "../sampling/detokenizer.ts"
import { randomSeed } from "../sampling/philox.ts"
import type { SamplingParams } from "../sampling/SamplingParams.ts"
import { EngineStepError, OutputProcessor, type CompletionDelta, type EngineRequest } from "./outputProcessor.ts"

export { EngineStepError, type CompletionDelta } from "./outputProcessor.ts"

/** The intake queue is full: the server answers 429. */
export class QueueFullError extends Data.TaggedError("QueueFullError")<{ readonly capacity: number }> {}

/**
 * The request cannot run on this model (empty or too long prompt, token ids outside the
 * vocabulary); `param` names the request field at fault, where there is one.
 */
export class InvalidRequestError extends Data.TaggedError("InvalidRequestError")<{ readonly message: string; readonly param?: string }> {}

export interface EngineConfig {
  readonly maxNumSeqs: number
  readonly maxNumBatchedTokens: number
  readonly maxModelLen: number
  readonly enableChunkedPrefill: boolean
  readonly enablePrefixCaching: boolean
  /** requests accepted but not yet handed to the scheduler; beyond it, QueueFullError */
  readonly maxQueuedRequests: number
  /** from the model's generation config */
  readonly eosTokenIds: ReadonlyArray<number>
  readonly detokenizer: Detokenizer
  /** called after every step with what it computed (metrics) */
  readonly onStep?: (stats: StepStats) => void
}

/** What one engine step computed, for metrics (vLLM's IterationStats). */
export interface StepStats {
  /** prompt tokens computed in this step (prefill chunks, including recomputation after preemption) */
  readonly promptTokens: number
  /** tokens sampled */
  readonly generationTokens: number
  readonly preemptions: number
  /** prompt tokens looked up in the prefix cache, and of those found, since the previous step */
  readonly prefixCacheQueries: number
  readonly prefixCacheHits: number
}

export interface GenerateRequest {
  readonly promptTokenIds: ReadonlyArray<number>
  readonly params: SamplingParams
  /** default: a fresh hyperid */
  readonly requestId?: string
}

export interface GenerateHandle {
  readonly requestId: string
  /** deltas until every completion has a finish reason; interrupting it aborts the request */
  readonly stream: Stream.Stream<CompletionDelta, EngineStepError>
}

export interface EngineService {
  readonly generate: (request: GenerateRequest) => Effect.Effect<GenerateHandle, QueueFullError | InvalidRequestError>
  /** frees the request's blocks at the next step boundary; its stream ends with finish reason "abort" */
  readonly abort: (requestId: string) => Effect.Effect<void>
}

/**
 * The engine loop: schedule -> execute -> sample -> update -> emit, one iteration per step,
 * as a fiber of the layer's scope. Requests come in through a bounded queue; each gets a
 * stream of deltas.
 */
export class Engine extends Context.Tag("Tessera/Engine")<Engine, EngineService>() {
  static readonly layer = (config: EngineConfig): Layer.Layer<Engine, never, Scheduler | ExecutorService> =>
    Layer.scoped(Engine, makeEngine(config))

  /** Engine, Scheduler and BlockManager over an executor; all three are exposed, for stats and metrics. */
  static readonly live = (
    config: EngineConfig,
  ): Layer.Layer<Engine | Scheduler | BlockManager, SchedulerConfigError, ExecutorService> =>
    Engine.layer(config).pipe(
      Layer.provideMerge(Scheduler.layer(config)),
      Layer.provideMerge(BlockManager.layerFromExecutor({ enablePrefixCaching: config.enablePrefixCaching })),
    )
}

/** ends a request that never reached the scheduler: every completion finishes with "abort" */
const endAborted = (request: EngineRequest): void => {
  for (let index = 0; index < request.params.n; index++)
    request.mailbox.unsafeOffer({ index, text: "", tokenIds: [], finishReason: "abort" })
  request.mailbox.unsafeDone(Exit.void)
}

const makeEngine = (config: EngineConfig) =>
  Effect.gen(function* () {
    const { core } = yield* Scheduler
    const executor = yield* ExecutorService
    const V = executor.vocabSize
    /** accepted and not finished: in `intake`, or tracked by `processor` */
    const live = new Map<string, EngineRequest>()
    const pendingAborts = new Set<string>()
    const processor = new OutputProcessor({ ...config, vocabSize: V, onRequestDone: (id) => live.delete(id) })
    const intake = yield* Queue.dropping<EngineRequest>(config.maxQueuedRequests)
    const nextId = hyperid({ urlSafe: true })
    const prefixSeen = { queries: 0, hits: 0 }

    const validate = ({ promptTokenIds: prompt, params }: GenerateRequest): InvalidRequestError | undefined => {
      const invalid = (message: string, param: string) => new InvalidRequestError({ message, param })
      if (prompt.length === 0) return invalid("the prompt is empty", "prompt")
      if (prompt.length >= config.maxModelLen)
        return invalid(`the prompt has ${prompt.length} tokens; the context is ${config.maxModelLen}`, "prompt")
      if (prompt.some((t) => !Number.isInteger(t) || t < 0 || t >= V)) return invalid("prompt token ids outside the vocabulary", "prompt")
      if (params.stopTokenIds.some((t) => t >= V)) return invalid("stop_token_ids outside the vocabulary", "stop_token_ids")
      if (Object.keys(params.logitBias).some((t) => Number(t) >= V)) return invalid("logit_bias token ids outside the vocabulary", "logit_bias")
      return undefined
    }

    const admit = (request: EngineRequest): void => {
      if (request.aborted) {
        live.delete(request.requestId)
        return endAborted(request)
      }
      processor.add(request, core.addRequest(request.requestId, request.promptTokenIds, request.params.n))
    }

    const failStep = (cause: { readonly message: string }) =>
      Effect.sync(() => {
        const error = new EngineStepError({ message: cause.message, cause })
        for (const id of processor.failAll(error)) core.finishRequest(id)
      })

    const step = Effect.gen(function* () {
      for (const requestId of pendingAborts) for (const id of processor.abort(requestId)) core.finishRequest(id)
      pendingAborts.clear()
      // hand over only what the next batches can use, so the backlog stays in the bounded intake
      while (core.numWaiting < config.maxNumSeqs) {
        const next = yield* Queue.poll(intake)
        if (next._tag === "None") break
        admit(next.value)
      }
      if (!core.hasUnfinishedRequests) {
        processor.flush()
        return admit(yield* Queue.take(intake))
      }
      const output = core.schedule()
      if (output.scheduled.length === 0) {
        processor.flush()
        return yield* Effect.yieldNow()
      }
      // greedy rows take the executor's argmax, sampled ones its draw where it can; the logits
      // leave the device only when a row needs them
      const plan = { ...output.plan, ...processor.stepNeeds(output, executor.samplesOnDevice === true) }
      // A throw or defect inside the executor (a device fault surfacing in a kernel call) fails
      // this step's requests like an ExecutorError does, instead of ending the loop. The previous
      // step's deltas go out once this one is with the device (or after it, where the executor
      // says nothing), so that the requests' streams take them meanwhile.
      const step = yield* Effect.either(
        Effect.suspend(() => executor.execute(plan, processor.flush)).pipe(
          Effect.catchAllDefect((defect) => Effect.fail({ message: `executor: ${defect instanceof Error ? defect.message : String(defect)}` }))
        )
      )
      processor.flush()
      if (step._tag === "Left") return yield* failStep(step.left)
      const { sampledTokenIds, finished } = processor.processStep(output, step.right)
      // an executor that computes on this thread leaves no time to overlap: deliver them now
      if (executor.launchesAsync !== true) processor.flush()
      // decodes compute one token each: the last sampled one, which is not a prompt token
      const decodes = output.plan.seqs.reduce((n, seq, i) => n + (seq.numComputedTokens >= output.scheduled[i].promptLength ? 1 : 0), 0)
      core.update(output, sampledTokenIds)
      if (config.onStep) {
        const stats = core.stats()
        config.onStep({
          promptTokens: output.numScheduledTokens - decodes,
          generationTokens: sampledTokenIds.length,
          preemptions: output.preempted.length,
          prefixCacheQueries: stats.prefixCacheQueriedTokens - prefixSeen.queries,
          prefixCacheHits: stats.prefixCacheHitTokens - prefixSeen.hits
        })
        prefixSeen.queries = stats.prefixCacheQueriedTokens
        prefixSeen.hits = stats.prefixCacheHitTokens
      }
      for (const id of finished) core.finishRequest(id)
      // executors may resolve synchronously; let the server's fibers run between steps
      yield* Effect.yieldNow()
    })

    // added before the loop is forked, so it runs after the loop has been interrupted
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        processor.flush()
        live.forEach(endAborted)
      })
    )
    yield* Effect.forkScoped(Effect.forever(step))

    const abort = (requestId: string) =>
      Effect.sync(() => {
        const request = live.get(requestId)
        if (request === undefined || request.aborted) return
        request.aborted = true
        pendingAborts.add(requestId)
      })

    const generate = Effect.fn("Engine.generate")(function* (request: GenerateRequest) {
      const invalid = validate(request)
      if (invalid !== undefined) return yield* invalid
      const requestId = request.requestId ?? nextId()
      if (live.has(requestId)) return yield* new InvalidRequestError({ message: `request ${requestId} is already running` })
      const mailbox = yield* Mailbox.make<CompletionDelta, EngineStepError>()
      const accepted: EngineRequest = {
        requestId,
        promptTokenIds: request.promptTokenIds,
        params: request.params,
        seed: request.params.seed ?? randomSeed(),
        mailbox,
        aborted: false,
      }
      // tracked before the loop can see it, so a request that finishes at once is not left behind
      live.set(requestId, accepted)
      if (!(yield* Queue.offer(intake, accepted))) {
        live.delete(requestId)
        return yield* new QueueFullError({ capacity: config.maxQueuedRequests })
      }
      const stream = Mailbox.toStream(mailbox).pipe(Stream.ensuring(abort(requestId)))
      return { requestId, stream } satisfies GenerateHandle
    })

    return { generate, abort } satisfies EngineService
  })
