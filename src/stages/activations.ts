import type { StepPlan } from "./stepPlan.ts"
import type { Workspace } from "./workspace.ts"

/** What flows between stages: the step's plan and where its activations are. */
export interface StepInput {
  readonly plan: StepPlan
  readonly workspace: Workspace
}

/**
 * What the next norm does with `workspace.x`: start the residual stream from it (x holds the
 * embeddings), add it (x holds a layer's output), or nothing (the layer added its output into
 * `workspace.residual` itself).
 */
export type PendingResidual = "start" | "add" | "none"

/** add_rmsnorm's residualMode for it: 0 start, 1 add, 2 keep */
export const residualMode = (pending: PendingResidual): number => (pending === "start" ? 0 : pending === "add" ? 1 : 2)

/** The residual stream after a stage: `workspace.residual` (f32), and what is still to go into it. */
export interface Hidden extends StepInput {
  readonly pending: PendingResidual
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
