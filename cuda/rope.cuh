// Rotary position embedding, rotate-half (NeoX) layout: dimension i pairs with i + D/2 and
// both turn by the angle positions[t] * invFreq[i].
//
// The angle is formed and its cosine and sine taken in f64, as the CPU kernel does: at
// position 10^5 an f32 angle is already off by ~4e-3 rad. One (cos, sin) pair per frequency
// serves every head of the token, so the f64 work is D/2 per token, not per head.
#pragma once

#include "common.cuh"

namespace tsr {

// ---- kernels ----

// One block per token; dynamic shared memory holds its D/2 (cos, sin) pairs.
__global__ void rope_kernel(bf16* q, bf16* k, const int* positions, const float* inv_freq, int Hq, int Hkv, int D, int q_stride,
                            int k_stride) {
  extern __shared__ float2 turn[];
  const int t = blockIdx.x;
  const int half = D / 2;
  const double position = positions[t];
  for (int i = threadIdx.x; i < half; i += blockDim.x) {
    double s, c;
    sincos(position * (double)inv_freq[i], &s, &c);
    turn[i] = make_float2((float)c, (float)s);
  }
  __syncthreads();
  for (int e = threadIdx.x; e < (Hq + Hkv) * half; e += blockDim.x) {
    const int h = e / half, i = e % half;
    bf16* head = h < Hq ? q + (size_t)t * q_stride + (size_t)h * D : k + (size_t)t * k_stride + (size_t)(h - Hq) * D;
    const float2 cs = turn[i];
    const float x1 = load(head[i]), x2 = load(head[i + half]);
    head[i] = round_bf16(x1 * cs.x - x2 * cs.y);
    head[i + half] = round_bf16(x2 * cs.x + x1 * cs.y);
  }
}

// ---- launchers ----

inline cudaError_t rope(bf16* q, bf16* k, const int* positions, const float* inv_freq, int T, int Hq, int Hkv, int D, int q_stride,
                        int k_stride, cudaStream_t stream) {
  if (T == 0) return cudaSuccess;
  const size_t shared = (size_t)(D / 2) * sizeof(float2);
  rope_kernel<<<T, row_threads((Hq + Hkv) * (D / 2)), shared, stream>>>(q, k, positions, inv_freq, Hq, Hkv, D, q_stride, k_stride);
  return cudaGetLastError();
}

}  // namespace tsr
