import { Data, type Effect } from "effect"
import type { StepPlan } from "../stages/stepPlan.ts"
import type { RowLogprobs } from "../sampling/logprobs.ts"

export class ExecutorError extends Data.TaggedError("ExecutorError")<{ readonly message: string; readonly cause?: unknown }> {}

/** What one step gives the engine for its sample rows (valid until the next call). */
export interface StepOutput {
  /** the argmax of each row's logits, the first index on ties: a greedy row's token */
  readonly argmax: Int32Array
  /** the logits, row-major [R, vocabSize], unless the plan said `hostLogits: false` */
  readonly logits: Float32Array | undefined
  /** each row's token drawn on the device, for a plan with `sampling` on an executor that `samplesOnDevice` */
  readonly sampled?: Int32Array
  /** each row's logprobs, for a plan with `logprobs` on an executor that `samplesOnDevice` */
  readonly logprobs?: RowLogprobs
}

/** The step's logits, for a caller that asked for them (every plan does unless it says otherwise). */
export const logitsOf = (output: StepOutput): Float32Array => {
  if (output.logits === undefined) throw new Error("the step left its logits on the device (hostLogits: false)")
  return output.logits
}

/**
 * Runs step plans through a model: the CPU pipeline in this process, or GPU workers. The
 * engine sees only this.
 */
export interface Executor {
  readonly vocabSize: number
  /** KV-cache blocks this executor holds (sized from the memory budget) */
  readonly numBlocks: number
  readonly blockSize: number
  /** whether a plan's `sampling` is drawn on the device (StepOutput.sampled) */
  readonly samplesOnDevice?: boolean
  /**
   * whether the step runs on a device while this thread is free: `execute` hands the work over,
   * calls `onLaunched`, then waits without blocking the thread (awaitDevice). The engine then
   * holds each step's output deltas back until the next step is launched, so the requests'
   * streams take them while the device computes, not between steps.
   */
  readonly launchesAsync?: boolean
  /**
   * runs the plan; argmax and logits of its `sampleRows`. `onLaunched`, where given, is called
   * once the step is with the device (an executor that computes on this thread may call it
   * first, or not at all).
   */
  execute(plan: StepPlan, onLaunched?: () => void): Effect.Effect<StepOutput, ExecutorError>
  /**
   * Asynchronous scheduling: enqueues the plan and hands back the wait for its output, so the
   * engine can plan and launch the next step (its ids taken on the device, StepPlan.previousTokens)
   * before this one is done. Waits are taken in launch order, at most two launched steps waiting
   * at once. An output stays valid until the step after next is launched, its host logits until
   * the next. An executor that computes on this thread computes here and hands back a done wait.
   */
  launch?(plan: StepPlan): Effect.Effect<Effect.Effect<StepOutput, ExecutorError>, ExecutorError>
  close(): Effect.Effect<void>
}
