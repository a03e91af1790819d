import type { Kernels } from "../kernels/catalog.ts"
import { shardRange, type TpShard, type WeightLoader } from "./shard.ts"

/** A linear layer's weight `[outFeatures, inFeatures]` (and bias) on the device. */
export interface Linear {
  readonly weight: number
  readonly bias: number | undefined
  readonly outFeatures: number
  readonly inFeatures: number
}

/**
 * Column-parallel: each rank holds a slice of the output features of every fused part
 * (q, k, v or gate, up), so no communication is needed after it.
 */
export const loadColumnParallel = (
  loader: WeightLoader,
  prefixes: ReadonlyArray<{ prefix: string; outFeatures: number }>,
  inFeatures: number,
  shard: TpShard,
  withBias: boolean
): Linear => {
  const slices = prefixes.map(({ prefix, outFeatures }) => ({ prefix, rows: shardRange(outFeatures, shard, prefix) }))
  const outFeatures = slices.reduce((n, s) => n + s.rows[1] - s.rows[0], 0)
  const weight = loader.rows(slices.map((s) => ({ name: `${s.prefix}.weight`, rows: s.rows })), inFeatures)
  const bias = withBias ? loader.rows(slices.map((s) => ({ name: `${s.prefix}.bias`, rows: s.rows })), 1) : undefined
  return { weight, bias, outFeatures, inFeatures }
}

/**
 * Row-parallel: each rank holds a slice of the input features; its partial products are
 * summed by one all-reduce after the layer.
 */
export const loadRowParallel = (
  loader: WeightLoader,
  prefix: string,
  outFeatures: number,
  inFeatures: number,
  shard: TpShard,
  withBias = false
): Linear => {
  const cols = shardRange(inFeatures, shard, prefix)
  // the bias is added once: by rank 0, before the all-reduce sums the partial products
  const bias = withBias && shard.rank === 0 ? loader.whole(`${prefix}.bias`) : undefined
  return { weight: loader.columns(`${prefix}.weight`, outFeatures, cols), bias, outFeatures, inFeatures: cols[1] - cols[0] }
}

/** out[T, outFeatures] = x[T, inFeatures] @ W^T (+ b) */
export const applyLinear = (kernels: Kernels, out: number, x: number, tokens: number, layer: Linear): void => {
  kernels.matmul(out, x, layer.weight, tokens, layer.outFeatures, layer.inFeatures)
  if (layer.bias !== undefined) kernels.add_bias(out, layer.bias, tokens, layer.outFeatures)
}
