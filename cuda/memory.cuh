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

// Random weights made on the device (`--load-format dummy`): element i of a [rows, cols]
// slice of a [*, width] tensor is offset + (2u - 1) * scale, u the same stateless hash of
// (seed, index) as src/model/dummyWeights.ts (lowbias32), computed in f64 and rounded to f32
// then bf16 as a host-made upload would be, so both paths give the same bits.
__global__ void fill_uniform_kernel(bf16* out, size_t rows, size_t cols, size_t width, size_t first, unsigned seed, float offset,
                                    float scale) {
  const size_t n = rows * cols;
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
    const size_t index = first + (i / cols) * width + i % cols;
    unsigned x = seed ^ ((unsigned)index * 0x9e3779b9u);
    x ^= x >> 16;
    x *= 0x7feb352du;
    x ^= x >> 15;
    x *= 0x846ca68bu;
    x ^= x >> 16;
    const double u = (double)x / 4294967296.0;
    out[i] = round_bf16((float)((double)offset + (u * 2.0 - 1.0) * (double)scale));
  }
}

// ---- launchers ----

inline cudaError_t fill_uniform(bf16* out, size_t rows, size_t cols, size_t width, size_t first, unsigned seed, float offset, float scale,
                                cudaStream_t stream) {
  if (rows * cols == 0) return cudaSuccess;
  fill_uniform_kernel<<<grid_blocks(rows * cols, 256), 256, 0, stream>>>(out, rows, cols, width, first, seed, offset, scale);
  return cudaGetLastError();
}

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
