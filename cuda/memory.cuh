// Moving f32 host data in and out of bf16 device tensors.
//
// The host holds f32; the conversion runs on the device, over a staging buffer, so that a
// model's weights are rounded at memory bandwidth and not one element at a time in JavaScript.
#pragma once

#include "common.cuh"

namespace tsr {

// ---- kernels ----

__global__ void f32_to_bf16_kernel(bf16* out, const float* x, size_t n) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
    out[i] = round_bf16(x[i]);
  }
}

__global__ void bf16_to_f32_kernel(float* out, const bf16* x, size_t n) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
    out[i] = load(x[i]);
  }
}

// ---- launchers ----

inline cudaError_t f32_to_bf16(bf16* out, const float* x, size_t n, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  f32_to_bf16_kernel<<<grid_blocks(n, 256), 256, 0, stream>>>(out, x, n);
  return cudaGetLastError();
}

inline cudaError_t bf16_to_f32(float* out, const bf16* x, size_t n, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  bf16_to_f32_kernel<<<grid_blocks(n, 256), 256, 0, stream>>>(out, x, n);
  return cudaGetLastError();
}

}  // namespace tsr
