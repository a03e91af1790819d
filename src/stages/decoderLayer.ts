import { Effect } from "effect"
import { Communicator } from "../effects/Communicator.ts"
import { Device } from "../effects/Device.ts"
import { attention, loadAttention, type AttentionWeights } from "../layers/attention.ts"
import type { LayerKvCache } from "../layers/kvCache.ts"
import { loadMlp, mlp, type MlpWeights } from "../layers/mlp.ts"
import { applyLinear, type Linear } from "../layers/linear.ts"
import type { TpShard, WeightLoader } from "../layers/shard.ts"
import type { ModelConfig } from "../model/config.ts"
import { residualMode, type Hidden, type PendingResidual } from "./activations.ts"
import { stage } from "./stage.ts"

export interface DecoderLayerWeights {
  readonly inputNorm: number
  readonly attention: AttentionWeights
  readonly postAttentionNorm: number
  readonly mlp: MlpWeights
}

export const loadDecoderLayer = (loader: WeightLoader, config: ModelConfig, index: number, shard: TpShard): DecoderLayerWeights => {
  const prefix = `model.layers.${index}`
  return {
    inputNorm: loader.whole(`${prefix}.input_layernorm.weight`),
    attention: loadAttention(loader, config, `${prefix}.self_attn`, shard),
    postAttentionNorm: loader.whole(`${prefix}.post_attention_layernorm.weight`),
    mlp: loadMlp(loader, config, `${prefix}.mlp`, shard)
  }
}

export interface DecoderLayerContext {
  readonly hidden: number
  readonly normEps: number
  readonly blockSize: number
  /** device pointer to the rotary inverse frequencies [headDim / 2] */
  readonly invFreq: number
}

/**
 * One pre-norm decoder layer:
 *   h = h + o_proj(attention(norm(h)))      one all-reduce over TP
 *   h = h + down(silu(gate(norm(h))) * up)  one all-reduce over TP
 * The residual stream `h` is f32. A projection's output goes into it one of two ways: summed
 * over the ranks into `x`, which the next norm adds (fused into the norm), or, with one rank and
 * a step of at most the provider's `fusedRows` tokens, added by the projection itself
 * (matmul_residual_add), so that the next norm and projection run as one kernel too.
 */
export const decoderLayer = (index: number, w: DecoderLayerWeights, cache: LayerKvCache, ctx: DecoderLayerContext) =>
  stage(`layer ${index}`, (h: Hidden) =>
    Effect.gen(function* () {
      const { kernels, fusedRows } = yield* Device
      const communicator = yield* Communicator
      const ws = h.workspace
      const T = h.plan.tokenIds.length
      const fused = communicator.tpSize === 1 && T <= (fusedRows ?? 0)

      /** the block's output projection into the residual stream; what the next norm has left to do */
      const addOutput = (layer: Linear, input: number) =>
        Effect.gen(function* () {
          if (fused && layer.bias === undefined) {
            kernels.matmul_residual_add(ws.residual, ws.x, input, layer.weight, T, layer.outFeatures, layer.inFeatures)
            return "none" as const
          }
          applyLinear(kernels, ws.x, input, T, layer)
          yield* communicator.allReduceSum(ws.x, T * ctx.hidden)
          return "add" as const
        })
      const norm = (weight: number, pending: PendingResidual) => ({ weight, eps: ctx.normEps, residualMode: residualMode(pending) })

      attention(kernels, w.attention, cache, ctx.invFreq, ctx.blockSize, h, norm(w.inputNorm, h.pending))
      const afterAttention = yield* addOutput(w.attention.o, ws.attention)
      mlp(kernels, w.mlp, h, norm(w.postAttentionNorm, afterAttention))
      const pending = yield* addOutput(w.mlp.down, ws.activation)
      const out: Hidden = { plan: h.plan, workspace: ws, pending }
      return out
    })
  )
