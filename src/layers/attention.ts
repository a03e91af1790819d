import type { Kernels } from "../kernels/catalog.ts"
import type { ModelConfig } from "../model/config.ts"
import type { LayerKvCache } from "./kvCache.ts"
import { applyLinear, loadColumnParallel, loadRowParallel, type Linear } from "./linear.ts"
import { applyPreNorm, type PreNorm } from "./preNorm.ts"
import { shardRange, type TpShard, type WeightLoader } from "./shard.ts"
import type { StepInput } from "../stages/activations.ts"

/**
 * Self-attention of one decoder layer, tensor-parallel over heads: q, k and v are one
 * column-parallel projection (this rank's heads), o is row-parallel (its sum over ranks is
 * the caller's all-reduce).
 */
export interface AttentionWeights {
  readonly qkv: Linear
  readonly o: Linear
  /** Qwen3's per-head RMSNorm of q and k */
  readonly qNorm: number | undefined
  readonly kNorm: number | undefined
  readonly heads: number
  readonly kvHeads: number
  readonly headDim: number
}

export const loadAttention = (loader: WeightLoader, config: ModelConfig, prefix: string, shard: TpShard): AttentionWeights => {
  const { hiddenSize, numHeads, numKvHeads, headDim } = config
  const [h0, h1] = shardRange(numHeads, shard, `${prefix}.q_proj heads`)
  const [g0, g1] = shardRange(numKvHeads, shard, `${prefix}.k_proj heads`)
  const qkv = loadColumnParallel(
    loader,
    [
      { prefix: `${prefix}.q_proj`, outFeatures: numHeads * headDim },
      { prefix: `${prefix}.k_proj`, outFeatures: numKvHeads * headDim },
      { prefix: `${prefix}.v_proj`, outFeatures: numKvHeads * headDim }
    ],
    hiddenSize,
    shard,
    config.attentionBias
  )
  return {
    qkv,
    o: loadRowParallel(loader, `${prefix}.o_proj`, hiddenSize, numHeads * headDim, shard, config.outputBias),
    qNorm: config.qkNorm ? loader.whole(`${prefix}.q_norm.weight`) : undefined,
    kNorm: config.qkNorm ? loader.whole(`${prefix}.k_norm.weight`) : undefined,
    heads: h1 - h0,
    kvHeads: g1 - g0,
    headDim
  }
}

/** the most tokens one sequence has in the step (1 in a batch of decodes) */
const maxQueryLen = (plan: StepInput["plan"]): number => plan.seqs.reduce((most, s) => Math.max(most, s.numScheduledTokens), 0)

/**
 * out = o_proj(attention(rope(q), rope(k), v)) over the paged cache, for this rank's heads, of
 * the pre-norm's rows. The step's K and V are written to the cache first, so the kernel reads one
 * cache for prefill, chunked prefill and decode alike.
 */
export const attention = (
  kernels: Kernels,
  w: AttentionWeights,
  cache: LayerKvCache,
  invFreq: number,
  normEps: number,
  blockSize: number,
  { plan, workspace: ws }: StepInput,
  input: PreNorm,
  out: number
): void => {
  const T = plan.tokenIds.length
  const { heads, kvHeads, headDim: D } = w
  const stride = (heads + 2 * kvHeads) * D
  const q = ws.qkv
  const k = q + heads * D * ws.floatBytes
  const v = k + kvHeads * D * ws.floatBytes
  if (w.qkv.bias === undefined && w.qNorm === undefined) {
    // nothing between the norm, the projection and rope: one kernel at decode sizes
    kernels.add_rmsnorm_qkv_rope_kv_write(
      ws.qkv, input.normed, input.residualOut, input.residualIn, input.pending, input.weight, w.qkv.weight,
      cache.k, cache.v, ws.positions, invFreq, ws.slots, input.eps, input.accumulate, T, w.qkv.inFeatures, heads, kvHeads, D
    )
  } else {
    applyLinear(kernels, ws.qkv, applyPreNorm(kernels, input, T), T, w.qkv)
    if (w.qNorm !== undefined && w.kNorm !== undefined) {
      kernels.head_rmsnorm(q, w.qNorm, T, heads, D, stride, normEps)
      kernels.head_rmsnorm(k, w.kNorm, T, kvHeads, D, stride, normEps)
    }
    kernels.rope_kv_write(q, k, cache.k, cache.v, v, ws.positions, invFreq, ws.slots, T, heads, kvHeads, D, stride, stride, stride)
  }
  kernels.paged_attention(
    ws.attention, q, cache.k, cache.v, ws.queryToSeq, ws.positions, ws.blockTables,
    T, heads, kvHeads, D, stride, plan.maxBlocksPerSeq, blockSize, 1 / Math.sqrt(D), maxQueryLen(plan)
  )
  applyLinear(kernels, out, ws.attention, T, w.o)
}
