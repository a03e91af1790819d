import { Effect } from "effect"
import { Device } from "../effects/Device.ts"
import type { Hidden, SampleRows } from "./activations.ts"
import { stage } from "./stage.ts"

/**
 * The model's last RMSNorm, then the rows whose logits are needed (the last token of each
 * sampled sequence) gathered for lm_head. Every row is normalised, not only those: the
 * residual's last add is fused into the norm, and a norm is a few microseconds beside the
 * prefill that made the rows. Where every token is a sample row, in order (a batch of decodes),
 * the norm writes lm_head's rows itself and nothing is gathered.
 */
export const finalNorm = (weight: number, hidden: number, normEps: number) =>
  stage("final norm", (h: Hidden) =>
    Effect.gen(function* () {
      const { kernels } = yield* Device
      const ws = h.workspace
      const T = h.plan.tokenIds.length
      const R = h.plan.sampleRows.length
      const everyRow = R === T && h.plan.sampleRows.every((row, r) => row === r)
      kernels.add_rmsnorm(everyRow ? ws.rowsNormed : ws.normed, h.residual, h.residual, ws.x, weight, T, hidden, normEps, h.residualStarted ? 1 : 0)
      if (!everyRow) kernels.gather_rows(ws.rowsNormed, ws.normed, ws.sampleRows, R, hidden)
      return { plan: h.plan, workspace: ws, rows: R } satisfies SampleRows
    })
  )
