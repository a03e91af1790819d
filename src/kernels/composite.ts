/**
 * The catalog's composite kernels, as the sequences of its other kernels that define them. A
 * provider that has no single kernel for one runs this sequence (the WASM provider); the CUDA
 * provider fuses them where it pays (at decode sizes) and must give what the sequence gives.
 */
import type { KernelName, Kernels } from "./catalog.ts"
import { catalog } from "./catalog.ts"

export type CompositeName = {
  [K in KernelName]: (typeof catalog)[K] extends { readonly composite: true } ? K : never
}[KernelName]

export const isComposite = (name: KernelName): name is CompositeName => "composite" in catalog[name]

/** the composite kernels over `kernels`, whose float tensors are `floatBytes` an element */
export const composites = (kernels: Kernels, floatBytes: number): { readonly [K in CompositeName]: Kernels[K] } => ({
  qkv_rope_kv_write: (qkv, x, w, kCache, vCache, positions, invFreq, slots, T, K, Hq, Hkv, D) => {
    const width = (Hq + 2 * Hkv) * D
    const k = qkv + Hq * D * floatBytes
    const v = k + Hkv * D * floatBytes
    kernels.matmul(qkv, x, w, T, width, K)
    kernels.rope_kv_write(qkv, k, kCache, vCache, v, positions, invFreq, slots, T, Hq, Hkv, D, width, width, width)
  },
  gate_up_silu: (out, gateUp, x, w, T, I, K) => {
    kernels.matmul(gateUp, x, w, T, 2 * I, K)
    kernels.silu_mul(out, gateUp, T, I)
  },
  add_rmsnorm_qkv_rope_kv_write: (qkv, normed, residualOut, residualIn, x, normWeight, w, kCache, vCache, positions, invFreq, slots,
    eps, accumulate, T, K, Hq, Hkv, D) => {
    kernels.add_rmsnorm(normed, residualOut, residualIn, x, normWeight, T, K, eps, accumulate)
    kernels.qkv_rope_kv_write(qkv, normed, w, kCache, vCache, positions, invFreq, slots, T, K, Hq, Hkv, D)
  },
  add_rmsnorm_gate_up_silu: (out, gateUp, normed, residualOut, residualIn, x, normWeight, w, eps, accumulate, T, I, K) => {
    kernels.add_rmsnorm(normed, residualOut, residualIn, x, normWeight, T, K, eps, accumulate)
    kernels.gate_up_silu(out, gateUp, normed, w, T, I, K)
  }
})
