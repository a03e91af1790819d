import type { Kernels } from "../kernels/catalog.ts"
import type { ModelConfig } from "../model/config.ts"
import type { StepInput } from "../stages/activations.ts"
import type { InputNorm } from "./attention.ts"
import { loadColumnParallel, loadRowParallel, type Linear } from "./linear.ts"
import type { TpShard, WeightLoader } from "./shard.ts"

/** The gated MLP: gate and up fused column-parallel, down row-parallel. */
export interface MlpWeights {
  readonly gateUp: Linear
  readonly down: Linear
}

export const loadMlp = (loader: WeightLoader, config: ModelConfig, prefix: string, shard: TpShard): MlpWeights => {
  const { hiddenSize, intermediateSize } = config
  return {
    gateUp: loadColumnParallel(
      loader,
      [
        { prefix: `${prefix}.gate_proj`, outFeatures: intermediateSize },
        { prefix: `${prefix}.up_proj`, outFeatures: intermediateSize }
      ],
      hiddenSize,
      shard,
      false
    ),
    down: loadRowParallel(loader, `${prefix}.down_proj`, hiddenSize, intermediateSize, shard)
  }
}

/**
 * workspace.activation = silu(gate(n)) * up(n) of the block's input norm n (`norm`: over the
 * residual stream, x added first as it says); down is the caller's (its sum over ranks and its
 * residual add).
 */
export const mlp = (kernels: Kernels, w: MlpWeights, { plan, workspace: ws }: StepInput, norm: InputNorm): void => {
  const T = plan.tokenIds.length
  kernels.norm_gate_up_silu(
    ws.activation, ws.gateUp, ws.normed, ws.residual, ws.x, norm.weight, w.gateUp.weight, T, w.down.inFeatures, w.gateUp.inFeatures,
    norm.eps, norm.residualMode
  )
}
