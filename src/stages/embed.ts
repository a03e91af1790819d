import { Effect } from "effect"
import { Communicator } from "../effects/Communicator.ts"
import { Device } from "../effects/Device.ts"
import type { VocabShard } from "../layers/vocabParallel.ts"
import type { Hidden, StepInput } from "./activations.ts"
import { stage } from "./stage.ts"

/**
 * Vocab-parallel embedding: each rank gathers the rows of its slice of the vocabulary (zeros
 * elsewhere), and one all-reduce completes every row. The rows go to `x`, in the float storage
 * (exact: they are rows of the table), and the first norm starts the f32 residual stream with them.
 */
export const embed = (table: VocabShard, hidden: number) =>
  stage("embed", ({ plan, workspace }: StepInput) =>
    Effect.gen(function* () {
      const { kernels } = yield* Device
      const communicator = yield* Communicator
      const T = plan.tokenIds.length
      // ids the host did not have when it launched the step: the step before's tokens
      if (plan.previousTokens) kernels.take_tokens(workspace.tokenIds, workspace.tokenSources, workspace.argmax, workspace.drawn, T)
      kernels.embedding(workspace.x, workspace.tokenIds, table.weight, T, hidden, table.vocabStart, table.vocabEnd)
      yield* communicator.allReduceSum(workspace.x, T * hidden)
      const out: Hidden = { plan, workspace, residualStarted: false, residual: workspace.residual }
      return out
    })
  )
