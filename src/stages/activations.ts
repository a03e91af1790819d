import type { StepPlan } from "./stepPlan.ts"
import type { Workspace } from "./workspace.ts"

/** What flows between stages: the step's plan and where its activations are. */
export interface StepInput {
  readonly plan: StepPlan
  readonly workspace: Workspace
}

/** The residual stream after a stage; `pendingAdd` when `workspace.x` is still to be added to it. */
export interface Hidden extends StepInput {
  readonly pendingAdd: boolean
}

/** Final-normed hidden states of the rows to sample, `workspace.rowsNormed` `[R, H]`. */
export interface SampleRows extends StepInput {
  readonly rows: number
}

/** Logits on the host, `[R, vocabSize]` row-major, one row per sampled sequence of the plan. */
export interface Logits {
  readonly plan: StepPlan
  readonly values: Float32Array
  readonly vocabSize: number
}

/** The token chosen for each sampled row. */
export interface SampledTokens {
  readonly plan: StepPlan
  readonly tokens: Int32Array
}
