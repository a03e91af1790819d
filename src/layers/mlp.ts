import type { Kernels } from "../kernels/catalog.ts"
import type { ModelConfig } from "../model/config.ts"
import { applyLinear, loadColumnParallel, loadRowParallel, type Linear } from "./linear.ts"
import type { PreNorm } from "./preNorm.ts"
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

/** out = down(silu(gate(x)) * up(x)) of the pre-norm's rows x: the norm, gate and up and the activation one kernel at decode sizes */
export const mlp = (kernels: Kernels, w: MlpWeights, gateUp: number, activation: number, tokens: number, input: PreNorm, out: number): void => {
  const intermediate = w.down.inFeatures
  kernels.add_rmsnorm_gate_up_silu(
    activation, gateUp, input.normed, input.residualOut, input.residualIn, input.pending, input.weight, w.gateUp.weight,
    input.eps, input.accumulate, tokens, intermediate, w.gateUp.inFeatures
  )
  applyLinear(kernels, out, activation, tokens, w.down)
}
