import { Effect } from "effect"
import { Communicator } from "../effects/Communicator.ts"
import { Device } from "../effects/Device.ts"
import { attention, loadAttention, type AttentionWeights } from "../layers/attention.ts"
import type { LayerKvCache } from "../layers/kvCache.ts"
import { loadMlp, mlp, type MlpWeights } from "../layers/mlp.ts"
import type { PreNorm } from "../layers/preNorm.ts"
import type { TpShard, WeightLoader } from "../layers/shard.ts"
import type { ModelConfig } from "../model/config.ts"
import type { Hidden } from "./activations.ts"
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
 * Each residual add is made with the following norm, so the layer leaves its MLP output in `x`
 * for the next layer's (or the final) norm to add. The residual stream `h` is f32; each norm
 * writes it to the other of the workspace's two buffers, so it ends the layer where it started.
 * At decode sizes on the GPU each norm is made by the projection after it (see PreNorm).
 */
export const decoderLayer = (index: number, w: DecoderLayerWeights, cache: LayerKvCache, ctx: DecoderLayerContext) =>
  stage(`layer ${index}`, (h: Hidden) =>
    Effect.gen(function* () {
      const { kernels } = yield* Device
      const communicator = yield* Communicator
      const ws = h.workspace
      const T = h.plan.tokenIds.length
      const H = ctx.hidden
      const norm = { pending: ws.x, eps: ctx.normEps, hidden: H, normed: ws.normed }
      const inputNorm: PreNorm = {
        ...norm, residualIn: h.residual, residualOut: ws.otherResidual(h.residual), accumulate: h.residualStarted ? 1 : 0, weight: w.inputNorm
      }
      attention(kernels, w.attention, cache, ctx.invFreq, ctx.normEps, ctx.blockSize, h, inputNorm, ws.x)
      yield* communicator.allReduceSum(ws.x, T * H)

      const postAttentionNorm: PreNorm = {
        ...norm, residualIn: inputNorm.residualOut, residualOut: inputNorm.residualIn, accumulate: 1, weight: w.postAttentionNorm
      }
      mlp(kernels, w.mlp, ws.gateUp, ws.activation, T, postAttentionNorm, ws.x)
      yield* communicator.allReduceSum(ws.x, T * H)
      const out: Hidden = { plan: h.plan, workspace: ws, residualStarted: true, residual: postAttentionNorm.residualOut }
      return out
    })
  )
