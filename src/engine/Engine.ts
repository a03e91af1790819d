import hyperid from "hyperid"
import { Context, Data, Effect, type Either, Exit, Layer, Mailbox, Queue, Stream } from "effect"
import { BlockManager } from "../effects/BlockManager.ts"
import { ExecutorService } from "../effects/ExecutorService.ts"
import { Scheduler, type SchedulerConfigError } from "../effects/Scheduler.ts"
import type { Detokenizer } from "../sampling/detokenizer.ts"
import { randomSeed } from "../sampling/philox.ts"
import type { SamplingParams } from "../sampling/SamplingParams.ts"
import type { StepPlan } from "../stages/stepPlan.ts"
import type { StepOutput } from "./executor.ts"
import { EngineStepError, OutputProcessor, type CompletionDelta, type EngineRequest } from "./outputProcessor.ts"
import type { Request } from "./request.ts"
import { placeholderToken, type Placeholders, type SchedulerOutput } from "./scheduler.ts"

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
  /**
   * plan and launch each step before the one before it is done, its ids taken on the device
   * (vLLM's async scheduling), where the executor can (Executor.launch) and every row's token
   * stays on the device; otherwise, and by default, a step is planned once the last one is done
   */
  readonly asyncScheduling?: boolean
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

/** A step with the executor: its schedule, its plan and the wait for its output. */
interface LaunchedStep {
  readonly output: SchedulerOutput
  readonly plan: StepPlan
  readonly wait: Effect.Effect<StepOutput, { readonly message: string }>
  /** where its sample rows' tokens are on the device (OutputProcessor.deviceTokenSources), when the next step launches before it is done */
  sources?: Int32Array
  /** its placeholders in the scheduler (SchedulerCore.advance), when the next step launches before it is done */
  placeholders?: Placeholders
}

/**
 * StepPlan.previousTokens of a step scheduled while `previous` computes: each input id that is
 * one of previous's placeholders is taken from where previous leaves that row's token.
 */
const tokensFromDevice = (output: SchedulerOutput, sources: Int32Array, placeholders: Placeholders): Int32Array | undefined => {
  const rowOf = new Map<Request, { readonly row: number; readonly index: number }>()
  placeholders.forEach((p, row) => p && rowOf.set(p.request, { row, index: p.index }))
  const { plan } = output
  const from = new Int32Array(plan.tokenIds.length).fill(-1)
  let any = false
  for (let t = 0; t < from.length; t++) {
    if (plan.tokenIds[t] !== placeholderToken) continue
    const placeholder = rowOf.get(output.scheduled[plan.queryToSeq[t]])
    if (placeholder === undefined || placeholder.index !== plan.positions[t]) throw new Error(`token ${t} of the step is a placeholder of no step in flight`)
    from[t] = sources[placeholder.row]
    any = true
  }
  return any ? from : undefined
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

    const samplesOnDevice = executor.samplesOnDevice === true
    const launchAhead = config.asyncScheduling === true && executor.launch !== undefined

    /** a throw or defect inside the executor (a device fault surfacing in a kernel call) fails like an ExecutorError does */
    const failOnDefect = <A, E>(effect: Effect.Effect<A, E>) =>
      effect.pipe(Effect.catchAllDefect((defect) => Effect.fail({ message: `executor: ${defect instanceof Error ? defect.message : String(defect)}` })))

    /**
     * Launches a scheduled step and hands back its wait. The deltas made so far go out once it is
     * with the device, so the requests' streams take them meanwhile. After `previous` (still in
     * flight), the ids the host does not have yet are taken on the device from its tokens.
     */
    const launch = (output: SchedulerOutput, previous?: LaunchedStep) =>
      failOnDefect(Effect.gen(function* () {
        // greedy rows take the executor's argmax, sampled ones its draw where it can; the logits
        // leave the device only when a row needs them
        const needs = processor.stepNeeds(output, samplesOnDevice)
        const previousTokens = previous?.sources && tokensFromDevice(output, previous.sources, previous.placeholders!)
        const plan: StepPlan = { ...output.plan, ...needs, ...(previousTokens && { previousTokens }) }
        if (!executor.launch) {
          // computed when waited for, flushing as it launches, as Executor.execute does
          return { output, plan, wait: failOnDefect(Effect.suspend(() => executor.execute(plan, processor.flush))) } satisfies LaunchedStep
        }
        const wait = yield* Effect.suspend(() => executor.launch!(plan))
        processor.flush()
        return { output, plan, wait: failOnDefect(wait) } satisfies LaunchedStep
      }))

    /** the step launched and not yet processed: with asynchronous scheduling, the next one is launched before it is waited for */
    let inFlight: LaunchedStep | undefined

    const step = Effect.gen(function* () {
      for (const requestId of pendingAborts) for (const id of processor.abort(requestId)) core.finishRequest(id)
      pendingAborts.clear()
      // hand over only what the next batches can use, so the backlog stays in the bounded intake
      while (core.numWaiting < config.maxNumSeqs) {
        const next = yield* Queue.poll(intake)
        if (next._tag === "None") break
        admit(next.value)
      }
      if (inFlight === undefined) {
        if (!core.hasUnfinishedRequests) {
          processor.flush()
          return admit(yield* Queue.take(intake))
        }
        const output = core.schedule()
        if (output.scheduled.length === 0) {
          processor.flush()
          return yield* Effect.yieldNow()
        }
        const launched = yield* Effect.either(launch(output))
        if (launched._tag === "Left") return yield* failStep(launched.left)
        inFlight = launched.right
      }
      const current = inFlight
      inFlight = undefined
      // Asynchronous scheduling: where every token of this step will be on the device, the next
      // step is scheduled (this one's tokens as placeholders) and launched before this one is
      // waited for, its ids taken from this one's tokens there, so the device never waits for the
      // host between steps. A request that finishes in this step has computed one token too many
      // in the next, which is dropped.
      let next: Either.Either<LaunchedStep, { readonly message: string }> | undefined
      if (launchAhead) {
        current.sources = processor.deviceTokenSources(current.output, samplesOnDevice, current.plan.hostLogits !== false)
        if (current.sources) {
          current.placeholders = core.advance(current.output)
          const output = core.schedule()
          if (output.scheduled.length > 0) next = yield* Effect.either(launch(output, current))
        }
      }
      const result = yield* Effect.either(current.wait)
      if (result._tag === "Left") {
        // the next step's wait is taken too, so the executor is idle before the requests end
        if (next?._tag === "Right") yield* Effect.either(next.right.wait)
        processor.flush()
        return yield* failStep(result.left)
      }
      const { output } = current
      const { sampledTokenIds, finished } = processor.processStep(output, result.right)
      if (current.placeholders) core.resolve(current.placeholders, sampledTokenIds)
      else core.update(output, sampledTokenIds)
      // an executor that computes on this thread leaves no time to overlap, nor does one whose next
      // step launches only after this: deliver them now (else as the next step launches)
      if (executor.launchesAsync !== true || next !== undefined) processor.flush()
      // decodes compute one token each: the last sampled one, which is not a prompt token
      const decodes = output.plan.seqs.reduce((n, seq, i) => n + (seq.numComputedTokens >= output.scheduled[i].promptLength ? 1 : 0), 0)
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
      if (next?._tag === "Left") return yield* failStep(next.left)
      inFlight = next?.right
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
