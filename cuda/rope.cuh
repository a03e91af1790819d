// Rotary position embedding, rotate-half (NeoX) layout: dimension i pairs with i + D/2 and
// both turn by the angle positions[t] * invFreq[i].
//
// The angle is formed and its cosine and sine taken in f64, as the CPU kernel does: at
// position 10^5 an f32 angle is already off by ~4e-3 rad. One (cos, sin) pair per frequency
// serves every head of the token, so the f64 work is D/2 per token, not per head.
#pragma once

#include "common.cuh"
#include "pointwise.cuh"

namespace tsr {

// ---- kernels ----

// The (cos, sin) pairs of token t's D/2 frequencies into `turn` (shared memory), then its Hq q
// heads and Hkv k heads rotated in place; where k_slot is set, each rotated k element is also
// stored there (the token's cache slot: rope_kv_write). Every thread of the block calls it.
__device__ __forceinline__ void rotate_token(float2* turn, bf16* q_row, bf16* k_row, bf16* k_slot, int position, const float* inv_freq,
                                             int Hq, int Hkv, int D) {
  const int half = D / 2;
  for (int i = threadIdx.x; i < half; i += blockDim.x) turn[i] = rotation(position, inv_freq[i]);
  __syncthreads();
  for (int e = threadIdx.x; e < (Hq + Hkv) * half; e += blockDim.x) {
    const int h = e / half, i = e % half;
    const bool is_q = h < Hq;
    bf16* head = is_q ? q_row + (size_t)h * D : k_row + (size_t)(h - Hq) * D;
    bf16 y1, y2;
    rotate_pair(load(head[i]), load(head[i + half]), turn[i], y1, y2);
    head[i] = y1;
    head[i + half] = y2;
    if (!is_q && k_slot != nullptr) {
      bf16* cached = k_slot + (size_t)(h - Hq) * D;
      cached[i] = y1;
      cached[i + half] = y2;
    }
  }
}

// One block per token; dynamic shared memory holds its D/2 (cos, sin) pairs.
__global__ void rope_kernel(bf16* q, bf16* k, const int* positions, const float* inv_freq, int Hq, int Hkv, int D, int q_stride,
                            int k_stride) {
  extern __shared__ float2 turn[];
  const int t = blockIdx.x;
  rotate_token(turn, q + (size_t)t * q_stride, k + (size_t)t * k_stride, nullptr, positions[t], inv_freq, Hq, Hkv, D);
}

// rope, then the token's rotated k and its v into cache slot slots[t] (< 0: padding, rotated
// only): the kv_write that attention needs first, without a launch of its own.
__global__ void rope_kv_write_kernel(bf16* q, bf16* k, bf16* k_cache, bf16* v_cache, const bf16* v, const int* positions,
                                     const float* inv_freq, const int* slots, int Hq, int Hkv, int D, int q_stride, int k_stride,
                                     int v_stride) {
  extern __shared__ float2 turn[];
  const int t = blockIdx.x;
  const int slot = slots[t];
  const size_t width = (size_t)Hkv * D;
  rotate_token(turn, q + (size_t)t * q_stride, k + (size_t)t * k_stride, slot < 0 ? nullptr : k_cache + slot * width, positions[t],
               inv_freq, Hq, Hkv, D);
  if (slot < 0) return;
  const bf16* v_row = v + (size_t)t * v_stride;
  bf16* v_slot = v_cache + slot * width;
  for (size_t e = threadIdx.x; e < width; e += blockDim.x) v_slot[e] = v_row[e];
}

// ---- launchers ----

inline cudaError_t rope(bf16* q, bf16* k, const int* positions, const float* inv_freq, int T, int Hq, int Hkv, int D, int q_stride,
                        int k_stride, cudaStream_t stream) {
  if (T == 0) return cudaSuccess;
  const size_t shared = (size_t)(D / 2) * sizeof(float2);
  rope_kernel<<<T, row_threads((Hq + Hkv) * (D / 2)), shared, stream>>>(q, k, positions, inv_freq, Hq, Hkv, D, q_stride, k_stride);
  return cudaGetLastError();
}

inline cudaError_t rope_kv_write(bf16* q, bf16* k, bf16* k_cache, bf16* v_cache, const bf16* v, const int* positions, const float* inv_freq,
                                 const int* slots, int T, int Hq, int Hkv, int D, int q_stride, int k_stride, int v_stride,
                                 cudaStream_t stream) {
  if (T == 0) return cudaSuccess;
  const size_t shared = (size_t)(D / 2) * sizeof(float2);
  rope_kv_write_kernel<<<T, row_threads((Hq + Hkv) * (D / 2)), shared, stream>>>(q, k, k_cache, v_cache, v, positions, inv_freq, slots,
                                                                                 Hq, Hkv, D, q_stride, k_stride, v_stride);
  return cudaGetLastError();
}

}  // namespace tsr
