// Writing a step's K and V into the paged cache: token t's rows go to slot slots[t]
// (block * blockSize + offset); a slot < 0 marks a padding token, which writes nothing.
#pragma once

#include "common.cuh"

namespace tsr {

// ---- kernels ----

// One block per token. A token's Hkv heads are contiguous in its qkv row and in its cache
// slot, so each of K and V is one run of Hkv*D elements.
__global__ void kv_write_kernel(bf16* k_cache, bf16* v_cache, const bf16* k, const bf16* v, const int* slots, int Hkv, int D,
                                int k_stride, int v_stride) {
  const int t = blockIdx.x;
  const int slot = slots[t];
  if (slot < 0) return;
  const int width = Hkv * D;
  bf16* k_slot = k_cache + (size_t)slot * width;
  bf16* v_slot = v_cache + (size_t)slot * width;
  const bf16* k_row = k + (size_t)t * k_stride;
  const bf16* v_row = v + (size_t)t * v_stride;
  for (int e = threadIdx.x; e < width; e += blockDim.x) {
    k_slot[e] = k_row[e];
    v_slot[e] = v_row[e];
  }
}

// ---- launchers ----

inline cudaError_t kv_write(bf16* k_cache, bf16* v_cache, const bf16* k, const bf16* v, const int* slots, int T, int Hkv, int D,
                            int k_stride, int v_stride, cudaStream_t stream) {
  if (T == 0) return cudaSuccess;
  kv_write_kernel<<<T, row_threads(Hkv * D), 0, stream>>>(k_cache, v_cache, k, v, slots, Hkv, D, k_stride, v_stride);
  return cudaGetLastError();
}

}  // namespace tsr
