import { Effect } from "effect"
import { Device } from "../effects/Device.ts"
import type { Hidden, SampleRows } from "./activations.ts"
import { stage } from "./stage.ts"

/**
 * The model's last RMSNorm, then the rows whose logits are needed (the last token of each
 * sampled sequence) gathered for lm_head. Every row is normalised, not only those: the
 * residual's last add is fused into the norm, and a norm is a few microseconds beside the
 * prefill that made the rows.
 */
export const finalNorm = (weight: number, hidden: number, normEps: number) =>
  stage("final norm", (h: Hidden) =>
    Effect.gen(function* () {
      const { kernels } = yield* Device
      const ws = h.workspace
      const T = h.plan.tokenIds.length
      const R = h.plan.sampleRows.length
      kernels.add_rmsnorm(ws.normed, h.residual, h.residual, ws.x, weight, T, hidden, normEps, h.residualStarted ? 1 : 0)
      kernels.gather_rows(ws.rowsNormed, ws.normed, ws.sampleRows, R, hidden)
      return { plan: h.plan, workspace: ws, rows: R } satisfies SampleRows
    })
  )
