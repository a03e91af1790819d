import { Effect } from "effect"
import { Communicator } from "../effects/Communicator.ts"
import { Device } from "../effects/Device.ts"
import type { VocabShard } from "../layers/vocabParallel.ts"
import type { Hidden, StepInput } from "./activations.ts"
import { stage } from "./stage.ts"

/**
 * Vocab-parallel embedding: each rank gathers the rows of its slice of the vocabulary (zeros
 * elsewhere) into the residual stream, and one all-reduce completes every row.
 */
export const embed = (table: VocabShard, hidden: number) =>
  stage("embed", ({ plan, workspace }: StepInput) =>
    Effect.gen(function* () {
      const { kernels } = yield* Device
      const communicator = yield* Communicator
      const T = plan.tokenIds.length
      kernels.embedding(workspace.residual, workspace.tokenIds, table.weight, T, hidden, table.vocabStart, table.vocabEnd)
      yield* communicator.allReduceSum(workspace.residual, T * hidden)
      const out: Hidden = { plan, workspace, pendingAdd: false }
      return out
    })
  )
