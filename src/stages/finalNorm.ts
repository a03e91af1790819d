import { Effect } from "effect"
import { Device } from "../effects/Device.ts"
import type { Hidden, SampleRows } from "./activations.ts"
import { stage } from "./stage.ts"

/**
 * The model's last RMSNorm, applied only to the rows whose logits are needed (the last
 * token of each sampled sequence): a prefill of 1,000 tokens normalises one row, not 1,000.
 */
export const finalNorm = (weight: number, hidden: number, normEps: number) =>
  stage("final norm", (h: Hidden) =>
    Effect.gen(function* () {
      const { kernels } = yield* Device
      const ws = h.workspace
      const R = h.plan.sampleRows.length
      kernels.gather_rows(ws.rowsResidual, ws.residual, ws.sampleRows, R, hidden)
      if (h.pendingAdd) {
        kernels.gather_rows(ws.rowsX, ws.x, ws.sampleRows, R, hidden)
        kernels.add_rmsnorm(ws.rowsNormed, ws.rowsResidual, ws.rowsX, weight, R, hidden, normEps)
      } else {
        kernels.rmsnorm(ws.rowsNormed, ws.rowsResidual, weight, R, hidden, normEps)
      }
      return { plan: h.plan, workspace: ws, rows: R } satisfies SampleRows
    })
  )
