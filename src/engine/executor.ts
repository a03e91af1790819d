import { Data, type Effect } from "effect"
import type { StepPlan } from "../stages/stepPlan.ts"

export class ExecutorError extends Data.TaggedError("ExecutorError")<{ readonly message: string; readonly cause?: unknown }> {}

/**
 * Runs step plans through a model: the CPU pipeline in this process, or GPU workers. The
 * engine sees only this.
 */
export interface Executor {
  readonly vocabSize: number
  /** KV-cache blocks this executor holds (sized from the memory budget) */
  readonly numBlocks: number
  readonly blockSize: number
  /** logits of the plan's `sampleRows`, row-major [R, vocabSize] (valid until the next call) */
  execute(plan: StepPlan): Effect.Effect<Float32Array, ExecutorError>
  close(): Effect.Effect<void>
}
