import type { Kernels } from "../kernels/catalog.ts"

/**
 * The input of a pre-norm sublayer (attention or the MLP): the residual stream with the previous
 * sublayer's output added, normalised,
 *   residualOut = (accumulate ? residualIn : 0) + pending;   normed = rmsnorm(residualOut) * weight
 * The sublayer hands it to its first projection where a kernel makes the norm itself
 * (add_rmsnorm_qkv_rope_kv_write, add_rmsnorm_gate_up_silu: one launch at decode sizes on the GPU),
 * else runs add_rmsnorm first (`applyPreNorm`). residualOut is another buffer than residualIn:
 * a GPU kernel whose blocks all read residualIn can then write residualOut as it goes.
 */
export interface PreNorm {
  readonly residualIn: number
  readonly residualOut: number
  /** the previous sublayer's output [T, hidden] (the embeddings, before the first layer) */
  readonly pending: number
  /** 0 where the residual stream starts here (residualIn is not read) */
  readonly accumulate: 0 | 1
  readonly weight: number
  readonly eps: number
  readonly hidden: number
  /** where the normed rows go [T, hidden]: the kernels that make the norm themselves use it as scratch */
  readonly normed: number
}

/** add_rmsnorm as the pre-norm describes it; returns the normed rows */
export const applyPreNorm = (kernels: Kernels, n: PreNorm, tokens: number): number => {
  kernels.add_rmsnorm(n.normed, n.residualOut, n.residualIn, n.pending, n.weight, tokens, n.hidden, n.eps, n.accumulate)
  return n.normed
}
