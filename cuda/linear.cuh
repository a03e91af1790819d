// The parts of a linear layer that are not the GEMM (that one is cuBLAS, in gemm.cu).
#pragma once

#include "common.cuh"

namespace tsr {

// ---- kernels ----

// x[m, n] += bias[n]. A separate pass for now: folding it into the GEMM's epilogue
// (cublasLt's BIAS epilogue) saves one read and write of the output.
__global__ void add_bias_kernel(bf16* x, const bf16* bias, int M, int N) {
  const size_t n = (size_t)M * N;
  for (size_t e = blockIdx.x * (size_t)blockDim.x + threadIdx.x; e < n; e += (size_t)gridDim.x * blockDim.x) {
    x[e] = round_bf16(load(x[e]) + load(bias[e % N]));
  }
}

// ---- launchers ----

inline cudaError_t add_bias(bf16* x, const bf16* bias, int M, int N, cudaStream_t stream) {
  const size_t n = (size_t)M * N;
  if (n == 0) return cudaSuccess;
  add_bias_kernel<<<grid_blocks(n, 256), 256, 0, stream>>>(x, bias, M, N);
  return cudaGetLastError();
}

}  // namespace tsr
