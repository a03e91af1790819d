// The gated MLP's activation: silu(gate) * up, with gate and up fused in one [T, 2I] row.
#pragma once

#include "common.cuh"

namespace tsr {

// ---- kernels ----

__global__ void silu_mul_kernel(bf16* out, const bf16* gate_up, int T, int I) {
  allow_dependents();  // the down projection's GEMV may start streaming its weights
  const size_t n = (size_t)T * I;
  for (size_t e = blockIdx.x * (size_t)blockDim.x + threadIdx.x; e < n; e += (size_t)gridDim.x * blockDim.x) {
    const size_t t = e / I, i = e % I;
    const float gate = load(gate_up[t * 2 * I + i]);
    const float up = load(gate_up[t * 2 * I + I + i]);
    // silu(x) = x * sigmoid(x); for x -> -inf, exp overflows to inf and the quotient is -0
    out[e] = round_bf16(gate / (1.f + expf(-gate)) * up);
  }
}

// ---- launchers ----

inline cudaError_t silu_mul(bf16* out, const bf16* gate_up, int T, int I, cudaStream_t stream) {
  const size_t n = (size_t)T * I;
  if (n == 0) return cudaSuccess;
  silu_mul_kernel<<<grid_blocks(n, 256), 256, 0, stream>>>(out, gate_up, T, I);
  return cudaGetLastError();
}

}  // namespace tsr
