import type { StepPlan } from "./stepPlan.ts"
import type { Workspace } from "./workspace.ts"
import type { RowLogprobs } from "../sampling/logprobs.ts"

/** What flows between stages: the step's plan and where its activations are. */
export interface StepInput {
  readonly plan: StepPlan
  readonly workspace: Workspace
}

/**
 * The residual stream after a stage: `workspace.x` holds the stage's output, still to be added
 * to the running sum in `residual` (one of the workspace's two residual buffers; the next norm
 * adds it, and writes the sum to the other); right after the embedding the residual is not
 * started yet (`residualStarted` false) and x holds the embeddings.
 */
export interface Hidden extends StepInput {
  readonly residualStarted: boolean
  readonly residual: number
}

/** Final-normed hidden states of the rows to sample, `workspace.rowsNormed` `[R, H]`. */
export interface SampleRows extends StepInput {
  readonly rows: number
}

/**
 * What lm_head gives the host, one row per sampled sequence of the plan: the argmax of each
 * row (computed where the logits are), and the logits themselves, `[R, vocabSize]` row-major,
 * when the plan asks for them (`hostLogits`).
 */
export interface Logits {
  readonly plan: StepPlan
  readonly argmax: Int32Array
  readonly values: Float32Array | undefined
  readonly vocabSize: number
  /** each row's token drawn on the device, when the plan carries `sampling` and the provider can */
  readonly sampled?: Int32Array
  /** each row's logprobs, when the plan carries `logprobs` and the provider samples on the device */
  readonly logprobs?: RowLogprobs
}

/** The logits on the host, for a stage that must read them (logits processors, samplers). */
export const hostLogitsOf = (logits: Logits, stage: string): Float32Array => {
  if (logits.values === undefined) throw new Error(`${stage} needs the logits on the host, but the step plan left them on the device (hostLogits: false)`)
  return logits.values
}

/** The token chosen for each sampled row. */
export interface SampledTokens {
  readonly plan: StepPlan
  readonly tokens: Int32Array
}
