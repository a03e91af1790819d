import type { StepPlan } from "../stages/stepPlan.ts"
import type { BlockId } from "./blockPool.ts"
import type { KVCacheManager } from "./kvCacheManager.ts"
import { childRequestId, Request, type RequestId } from "./request.ts"
import { buildStepPlan } from "./stepPlanBuilder.ts"

export interface SchedulerConfig {
  /** most sequences in one batch */
  readonly maxNumSeqs: number
  /** most tokens computed in one step (the chunked-prefill budget) */
  readonly maxNumBatchedTokens: number
  /** the longest sequence; requests must finish by it (the engine's StopChecker does) */
  readonly maxModelLen: number
  /** split prompts longer than the remaining budget over several steps */
  readonly enableChunkedPrefill: boolean
}

/** The id a sampled request holds between `advance` and `resolve`: never a vocabulary id. */
export const placeholderToken = -1

/** Where `advance` left each sampled row's placeholder (undefined: the request was not running). */
export type Placeholders = Array<{ readonly request: Request; readonly index: number } | undefined>

/** vLLM's SchedulerOutput: the plan plus what the engine needs to interpret its logits. */
export interface SchedulerOutput {
  readonly plan: StepPlan
  /** in `plan.seqs` order */
  readonly scheduled: ReadonlyArray<Request>
  /** the request of each row of `plan.sampleRows`, in order */
  readonly sampled: ReadonlyArray<Request>
  /** preempted in this step, to recompute later */
  readonly preempted: ReadonlyArray<RequestId>
  readonly numScheduledTokens: number
}

export interface SchedulerStats {
  readonly numWaiting: number
  readonly numRunning: number
  readonly kvCacheUsage: number
  readonly numPreemptions: number
  readonly prefixCacheQueriedTokens: number
  readonly prefixCacheHitTokens: number
}

/**
 * Continuous batching, FCFS, in vLLM v1's shape. Every request has tokens and
 * numComputedTokens; a step gives running requests their remaining tokens first (a decode
 * is 1 token, a partly computed prompt its next chunk), then admits waiting requests while
 * sequences, tokens and blocks last. When blocks run out the most recently admitted running
 * request is preempted: its blocks are freed and it is recomputed later from its tokens,
 * so its output continues unchanged. The oldest running request is never the victim while
 * another runs, and alone it always fits (maxModelLen <= cache), so every request finishes.
 */
export class SchedulerCore {
  private readonly waiting: Request[] = []
  private readonly running: Request[] = []
  private readonly requests = new Map<RequestId, Request>()
  private arrivals = 0
  private numPreemptions = 0
  private prefixCacheQueriedTokens = 0
  private prefixCacheHitTokens = 0

  constructor(
    readonly config: SchedulerConfig,
    readonly kvCache: KVCacheManager,
  ) {
    const capacity = kvCache.config.numBlocks * kvCache.blockSize
    if (config.maxModelLen > capacity)
      throw new RangeError(
        `maxModelLen ${config.maxModelLen} exceeds the KV cache (${capacity} tokens): a request that long could never run`,
      )
    if (!config.enableChunkedPrefill && config.maxNumBatchedTokens < config.maxModelLen)
      throw new RangeError(
        `without chunked prefill maxNumBatchedTokens (${config.maxNumBatchedTokens}) must cover maxModelLen (${config.maxModelLen})`,
      )
    if (config.maxNumBatchedTokens < 1 || config.maxNumSeqs < 1) throw new RangeError("empty batch limits")
  }

  /**
   * Queues a request of `n` samples; returns the ids of its sequences. Sample 0 computes
   * the prompt, the others are forked from it once it has. Precondition (the engine checks):
   * 0 < prompt length < maxModelLen.
   */
  addRequest(requestId: string, promptTokenIds: ArrayLike<number>, n = 1): RequestId[] {
    const arrival = this.arrivals++
    const siblings: Request[] = []
    for (let i = 1; i < n; i++) siblings.push(new Request(childRequestId(requestId, i, n), promptTokenIds, arrival))
    const primary = new Request(childRequestId(requestId, 0, n), promptTokenIds, arrival, siblings)
    this.waiting.push(primary)
    for (const r of [primary, ...siblings]) this.requests.set(r.requestId, r)
    return [primary.requestId, ...siblings.map((r) => r.requestId)]
  }

  getRequest(requestId: RequestId): Request | undefined {
    return this.requests.get(requestId)
  }

  get numWaiting(): number {
    return this.waiting.length
  }

  get hasUnfinishedRequests(): boolean {
    return this.requests.size > 0
  }

  /** Ends a request (finished or aborted) wherever it is, freeing its blocks at once. */
  finishRequest(requestId: RequestId): void {
    const request = this.requests.get(requestId)
    if (request === undefined) return
    this.requests.delete(requestId)
    request.status = "finished"
    removeFrom(this.running, request)
    removeFrom(this.waiting, request)
    if (request.forkParent !== undefined) removeFrom(request.forkParent.pendingForks, request)
    // siblings not forked yet fall back to computing the prompt themselves
    for (const sibling of request.pendingForks.reverse()) {
      sibling.forkParent = undefined
      this.waiting.unshift(sibling)
    }
    request.pendingForks = []
    this.kvCache.free(requestId)
  }

  schedule(): SchedulerOutput {
    let budget = this.config.maxNumBatchedTokens
    const scheduled: Request[] = []
    const counts: number[] = []
    const preempted: RequestId[] = []
    for (let i = 0; i < this.running.length && budget > 0; ) {
      const request = this.running[i]
      const numNew = Math.min(request.numTokens - request.numComputedTokens, budget)
      let fits = true
      while (!this.kvCache.allocateSlots(request, numNew)) {
        const victim = this.running.pop()!
        this.preempt(victim)
        preempted.push(victim.requestId)
        if (victim === request) {
          fits = false
          break
        }
      }
      if (!fits) break
      scheduled.push(request)
      counts.push(numNew)
      budget -= numNew
      i++
    }
    // as in vLLM, a step that had to preempt admits nobody: blocks are short
    while (preempted.length === 0 && this.waiting.length > 0 && budget > 0 && this.running.length < this.config.maxNumSeqs) {
      const request = this.waiting[0]
      const hits: BlockId[] = this.kvCache.getComputedBlocks(request)
      const numComputed = hits.length * this.kvCache.blockSize
      const numRemaining = request.numTokens - numComputed
      if (!this.config.enableChunkedPrefill && numRemaining > budget) break
      const numNew = Math.min(numRemaining, budget)
      if (!this.kvCache.allocateSlots(request, numNew, hits)) break
      this.prefixCacheQueriedTokens += request.numTokens
      this.prefixCacheHitTokens += numComputed
      this.waiting.shift()
      request.numComputedTokens = numComputed
      request.status = "running"
      this.running.push(request)
      scheduled.push(request)
      counts.push(numNew)
      budget -= numNew
    }
    const { plan, sampled } = buildStepPlan(scheduled, counts, this.kvCache)
    return { plan, scheduled, sampled, preempted, numScheduledTokens: this.config.maxNumBatchedTokens - budget }
  }

  /**
   * Advances the scheduled requests past a step: their scheduled tokens are now in the KV
   * cache, and each sampled one gains the token sampled for it (`sampledTokenIds[r]` for
   * `output.sampled[r]`). Requests finished since `schedule` are skipped.
   */
  update(output: SchedulerOutput, sampledTokenIds: ArrayLike<number>): void {
    this.resolve(this.advance(output), sampledTokenIds)
  }

  /**
   * `update` before its tokens are known (asynchronous scheduling): the scheduled tokens are in
   * the KV cache, and each sampled request gains `placeholderToken` where its token will go, so
   * the next step can be scheduled (its input id taken on the device) while this one computes.
   * `resolve` writes the tokens in; until then no full block holds a placeholder (it sits past
   * the computed tokens), so nothing is cached or hashed with it.
   */
  advance(output: SchedulerOutput): Placeholders {
    const placeholders: Placeholders = []
    for (let s = 0; s < output.scheduled.length; s++) {
      const request = output.scheduled[s]
      const seq = output.plan.seqs[s]
      if (seq.sample) placeholders.push(undefined)
      if (request.status !== "running") continue
      request.numComputedTokens += seq.numScheduledTokens
      this.kvCache.cacheFullBlocks(request, request.numComputedTokens)
      if (!seq.sample) continue
      placeholders[placeholders.length - 1] = { request, index: request.numTokens }
      request.appendOutputToken(placeholderToken)
      if (request.pendingForks.length > 0) this.forkSiblings(request)
    }
    return placeholders
  }

  /** Writes each sampled row's token where `advance` left its placeholder (preempted requests too). */
  resolve(placeholders: Placeholders, sampledTokenIds: ArrayLike<number>): void {
    placeholders.forEach((placeholder, row) => {
      if (placeholder !== undefined) placeholder.request.tokenIds[placeholder.index] = sampledTokenIds[row]
    })
  }

  stats(): SchedulerStats {
    return {
      numWaiting: this.waiting.length,
      numRunning: this.running.length,
      kvCacheUsage: this.kvCache.usage,
      numPreemptions: this.numPreemptions,
      prefixCacheQueriedTokens: this.prefixCacheQueriedTokens,
      prefixCacheHitTokens: this.prefixCacheHitTokens,
    }
  }

  /** waiting and running requests in queue order; for tests */
  queues(): { readonly waiting: ReadonlyArray<Request>; readonly running: ReadonlyArray<Request> } {
    return { waiting: this.waiting, running: this.running }
  }

  private preempt(request: Request): void {
    this.kvCache.free(request.requestId)
    request.numComputedTokens = 0
    request.status = "preempted"
    request.numPreemptions++
    this.numPreemptions++
    this.waiting.unshift(request)
  }

  /**
   * The primary's prompt is computed: siblings take its full prompt blocks and compute only
   * the last partial block (at least the last prompt token, whose logits they sample). Those
   * that do not fit in the batch wait and recompute (or hit the prefix cache) later.
   */
  private forkSiblings(primary: Request): void {
    const numShared = Math.floor((primary.promptLength - 1) / this.kvCache.blockSize)
    const siblings = primary.pendingForks
    primary.pendingForks = []
    const deferred: Request[] = []
    for (const sibling of siblings) {
      sibling.forkParent = undefined
      if (this.running.length >= this.config.maxNumSeqs) {
        deferred.push(sibling)
        continue
      }
      this.kvCache.fork(primary, sibling, numShared)
      sibling.numComputedTokens = numShared * this.kvCache.blockSize
      sibling.status = "running"
      this.running.push(sibling)
    }
    this.waiting.unshift(...deferred)
  }
}

const removeFrom = <A>(list: A[], item: A): void => {
  const at = list.indexOf(item)
  if (at !== -1) list.splice(at, 1)
}
