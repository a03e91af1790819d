import { Data, Exit, type Mailbox } from "effect"
import type { Detokenizer } from "../sampling/detokenizer.ts"
import { computeLogprobs, rowTokenLogprobs, type TokenLogprobs } from "../sampling/logprobs.ts"
import { Sampler } from "../sampling/sampler.ts"
import type { SamplingParams } from "../sampling/SamplingParams.ts"
import { logitsEdits } from "../sampling/logitsEdits.ts"
import { argmaxSuffices, historyFree, makeSamplingState, recordOutputToken, type SequenceSamplingState } from "../sampling/samplingState.ts"
import { StopChecker, type FinishReason } from "../sampling/stopChecker.ts"
import type { RequestId } from "./request.ts"
import { logitsOf, type StepOutput } from "./executor.ts"
import type { SchedulerOutput } from "./scheduler.ts"
import type { RowSampling } from "../stages/stepPlan.ts"

/** What one step adds to one completion of a request (vLLM's CompletionOutput in delta mode). */
export interface CompletionDelta {
  /** which of the request's n completions */
  readonly index: number
  readonly text: string
  readonly tokenIds: ReadonlyArray<number>
  readonly logprobs?: ReadonlyArray<TokenLogprobs>
  readonly finishReason?: FinishReason
  readonly stopReason?: string | number
}

/** A step failed in the executor; every request in flight ends with it. */
export class EngineStepError extends Data.TaggedError("EngineStepError")<{
  readonly message: string
  readonly cause?: unknown
}> {}

/** A request as the engine accepted it, before and after the scheduler admits it. */
export interface EngineRequest {
  readonly requestId: string
  readonly promptTokenIds: ReadonlyArray<number>
  readonly params: SamplingParams
  /** the user's seed, or one drawn at arrival */
  readonly seed: number
  readonly mailbox: Mailbox.Mailbox<CompletionDelta, EngineStepError>
  aborted: boolean
}

interface SequenceState {
  readonly request: EngineRequest
  readonly index: number
  readonly sampling: SequenceSamplingState
  readonly stop: StopChecker
  finished: boolean
}

interface TrackedRequest {
  readonly request: EngineRequest
  readonly sequenceIds: ReadonlyArray<RequestId>
  numUnfinished: number
}

export interface OutputProcessorConfig {
  readonly vocabSize: number
  readonly eosTokenIds: ReadonlyArray<number>
  readonly maxModelLen: number
  readonly detokenizer: Detokenizer
  /** called once per request when its last completion ends (finished, aborted or failed) */
  readonly onRequestDone: (requestId: string) => void
}

/**
 * Everything after the logits: sampling each row, then detokenizing, stop checks and
 * deltas for each sequence. It owns the per-sequence state that survives preemption
 * (penalty counts, detokenizer, stop matcher), so a recomputed sequence continues exactly.
 */
export class OutputProcessor {
  private readonly sequences = new Map<RequestId, SequenceState>()
  private readonly requests = new Map<string, TrackedRequest>()
  /** deltas and stream ends not yet handed to the requests' mailboxes, in order (`flush`) */
  private readonly outbox: Array<{ readonly mailbox: EngineRequest["mailbox"]; readonly delta?: CompletionDelta }> = []
  private readonly sampler: Sampler
  private readonly topScratch = new Int32Array(20)

  constructor(private readonly config: OutputProcessorConfig) {
    this.sampler = new Sampler(config.vocabSize)
  }

  get numRequests(): number {
    return this.requests.size
  }

  has(requestId: string): boolean {
    return this.requests.has(requestId)
  }

  /** Tracks an admitted request; `sequenceIds[i]` is the scheduler's id of completion i. */
  add(request: EngineRequest, sequenceIds: ReadonlyArray<RequestId>): void {
    sequenceIds.forEach((id, index) => {
      const options = { promptLength: request.promptTokenIds.length, ...this.config }
      this.sequences.set(id, {
        request,
        index,
        sampling: makeSamplingState(request.params, { ...options, seed: request.seed, sampleIndex: index, promptTokenIds: request.promptTokenIds }),
        stop: new StopChecker(request.params, this.config.detokenizer.begin(request.promptTokenIds), options),
        finished: false,
      })
    })
    this.requests.set(request.requestId, { request, sequenceIds, numUnfinished: sequenceIds.length })
  }

  /**
   * What this step asks of the executor beyond each row's argmax: the logits on the host (for
   * sampling, penalties, logit bias or logprobs where the executor cannot make them), the
   * sampling parameters of the rows it draws on the device, and the most top logprobs a row
   * asks for where the device makes them (for every row: its token is the argmax or the draw).
   */
  stepNeeds(
    output: SchedulerOutput,
    samplesOnDevice: boolean
  ): { readonly hostLogits: boolean; readonly sampling?: RowSampling; readonly logprobs?: number } {
    let hostLogits = false
    let logprobs: number | undefined
    const onDevice: Array<SequenceState | undefined> = []
    output.sampled.forEach(({ requestId }, row) => {
      const seq = this.sequences.get(requestId)
      if (seq === undefined || seq.finished) return
      const where = this.chooser(seq, samplesOnDevice)
      const numTop = seq.request.params.logprobs
      hostLogits ||= where === "host" || (numTop !== undefined && !samplesOnDevice)
      if (numTop !== undefined && samplesOnDevice) logprobs = Math.max(logprobs ?? 0, numTop)
      if (where === "device") onDevice[row] = seq
    })
    return { hostLogits, ...(onDevice.length > 0 && { sampling: rowSampling(output, onDevice) }), ...(logprobs !== undefined && { logprobs }) }
  }

  /**
   * For asynchronous scheduling: where each sample row's token of this step will be on the
   * device, as StepPlan.previousTokens encodes it (r: its argmax, -2 - r: the device's draw), or
   * undefined where the next step cannot be launched before this one's tokens reach the host: a
   * row sampled on the host (or its logprobs made there), or one whose next sampling reads the
   * tokens so far (historyFree). The tokens processStep takes from the step are these.
   */
  deviceTokenSources(output: SchedulerOutput, samplesOnDevice: boolean, hostLogits: boolean): Int32Array | undefined {
    if (hostLogits) return undefined
    const sources = new Int32Array(output.sampled.length)
    for (let row = 0; row < output.sampled.length; row++) {
      const seq = this.sequences.get(output.sampled[row].requestId)
      if (seq === undefined || seq.finished) continue
      const where = this.chooser(seq, samplesOnDevice)
      if (where === "host" || !historyFree(seq.sampling)) return undefined
      sources[row] = where === "device" ? -2 - row : row
    }
    return sources
  }

  /**
   * where a row's token comes from: the argmax, the device's draw (logit bias, min_tokens and
   * penalties included: RowSampling.edits), or the host sampler where the device has none
   */
  private chooser(seq: SequenceState, samplesOnDevice: boolean): "argmax" | "device" | "host" {
    if (argmaxSuffices(seq.sampling)) return "argmax"
    return samplesOnDevice ? "device" : "host"
  }


  /**
   * Samples every row of the step and emits the deltas. Returns the sampled tokens (for
   * SchedulerCore.update) and the sequences that finished (for finishRequest).
   */
  processStep(output: SchedulerOutput, step: StepOutput): { sampledTokenIds: Int32Array; finished: RequestId[] } {
    const sampledTokenIds = new Int32Array(output.sampled.length)
    const finished: RequestId[] = []
    for (let row = 0; row < output.sampled.length; row++) {
      const scheduled = output.sampled[row]
      const seq = this.sequences.get(scheduled.requestId)
      if (seq === undefined || seq.finished) continue
      // the position of the token being sampled keys its random draw: same in any batch
      const where = this.chooser(seq, step.sampled !== undefined)
      const tokenId =
        where === "argmax" ? step.argmax[row]
        : where === "device" ? step.sampled![row]
        : this.sampler.sample(logitsOf(step), row, seq.sampling, scheduled.numTokens)
      sampledTokenIds[row] = tokenId
      recordOutputToken(seq.sampling, tokenId)
      const verdict = seq.stop.append(tokenId)
      const numTop = seq.request.params.logprobs
      const logprobs =
        numTop === undefined
          ? undefined
          : [
              step.logprobs
                ? rowTokenLogprobs(step.logprobs, row, tokenId, numTop)
                : computeLogprobs(logitsOf(step), row, this.config.vocabSize, tokenId, numTop, this.topScratch)
            ]
      this.emit(seq, {
        index: seq.index,
        text: verdict.text,
        tokenIds: [tokenId],
        ...(logprobs && { logprobs }),
        ...(verdict.finishReason && { finishReason: verdict.finishReason }),
        ...(verdict.stopReason !== undefined && { stopReason: verdict.stopReason }),
      })
      if (verdict.finishReason !== undefined) finished.push(scheduled.requestId)
    }
    return { sampledTokenIds, finished }
  }

  /** Ends a request's unfinished completions with finish reason "abort"; returns its sequence ids. */
  abort(requestId: string): ReadonlyArray<RequestId> {
    const tracked = this.requests.get(requestId)
    if (tracked === undefined) return []
    for (const id of tracked.sequenceIds) {
      const seq = this.sequences.get(id)
      if (seq !== undefined && !seq.finished) this.emit(seq, { index: seq.index, text: "", tokenIds: [], finishReason: "abort" })
    }
    return tracked.sequenceIds
  }

  /**
   * Hands the deltas and stream ends gathered since the last flush to the requests' mailboxes,
   * in the order they were made. The engine calls it where the streams' consumers can take them
   * while the device computes (after the next step is launched), and whenever it waits.
   */
  readonly flush = (): void => {
    for (const { mailbox, delta } of this.outbox) {
      if (delta === undefined) mailbox.unsafeDone(Exit.void)
      else mailbox.unsafeOffer(delta)
    }
    this.outbox.length = 0
  }

  /** Fails every request in flight (a step failed); returns all their sequence ids. */
  failAll(error: EngineStepError): RequestId[] {
    this.flush()  // what they produced before the failure arrives first
    const ids: RequestId[] = []
    for (const tracked of this.requests.values()) {
      tracked.request.mailbox.unsafeDone(Exit.fail(error))
      ids.push(...tracked.sequenceIds)
      this.config.onRequestDone(tracked.request.requestId)
    }
    for (const id of ids) this.sequences.delete(id)
    this.requests.clear()
    return ids
  }

  private emit(seq: SequenceState, delta: CompletionDelta): void {
    this.outbox.push({ mailbox: seq.request.mailbox, delta })
    if (delta.finishReason === undefined) return
    seq.finished = true
    const tracked = this.requests.get(seq.request.requestId)!
    if (--tracked.numUnfinished > 0) return
    this.outbox.push({ mailbox: seq.request.mailbox })
    for (const id of tracked.sequenceIds) this.sequences.delete(id)
    this.requests.delete(seq.request.requestId)
    this.config.onRequestDone(seq.request.requestId)
  }
}

/**
 * Every row's sampling parameters, from the sequences drawn on the device (by row); the other
 * rows get temperature 0 (their argmax, cheaply).
 */
const rowSampling = (output: SchedulerOutput, onDevice: ReadonlyArray<SequenceState | undefined>): RowSampling => {
  const R = output.sampled.length
  const rows: RowSampling = {
    temperature: new Float64Array(R), topP: new Float64Array(R).fill(1), topK: new Int32Array(R), minP: new Float64Array(R),
    seedLo: new Uint32Array(R), seedHi: new Uint32Array(R), position: new Int32Array(R), sampleIndex: new Int32Array(R)
  }
  onDevice.forEach((seq, r) => {
    if (seq === undefined) return
    const { params, seedLo, seedHi, sampleIndex } = seq.sampling
    rows.temperature[r] = params.temperature
    rows.topP[r] = params.topP
    rows.topK[r] = params.topK
    rows.minP[r] = params.minP
    rows.seedLo[r] = seedLo
    rows.seedHi[r] = seedHi
    // the position of the token being sampled keys its random draw, as on the host
    rows.position[r] = output.sampled[r].numTokens
    rows.sampleIndex[r] = sampleIndex
  })
  const edits = logitsEdits(onDevice.map((seq) => seq?.sampling), R)
  return edits === undefined ? rows : { ...rows, edits }
}
