// RMSNorm, as HF computes it: x / sqrt(mean(x^2) + eps), then times the weight.
//
// Statistics in f32 from bf16 rows; each output is rounded to bf16 once, after the weight
// (HF's bf16 models round before the weight too; one rounding is closer to the f32 model).
#pragma once

#include "common.cuh"

namespace tsr {

// ---- kernels ----

// One block per row of H. out may alias x: each thread rewrites only the elements it read.
__global__ void rmsnorm_kernel(bf16* out, const bf16* x, const bf16* w, int H, float eps) {
  allow_dependents();  // the GEMV after it may start streaming its weights
  wait_for_prerequisites();  // launched early (overlap): the GEMV before it wrote x
  const size_t row = (size_t)blockIdx.x * H;
  float squares = 0.f;
  for (int i = threadIdx.x; i < H; i += blockDim.x) {
    const float v = load(x[row + i]);
    squares += v * v;
  }
  const float inv_rms = rsqrtf(block_sum(squares) / H + eps);
  for (int i = threadIdx.x; i < H; i += blockDim.x) out[row + i] = round_bf16(load(x[row + i]) * inv_rms * load(w[i]));
}

// residual_out = (accumulate ? residual_in : 0) + x; out = rmsnorm(residual_out) * w. The residual
// stream is f32 (HF's bf16 models keep it in bf16: 64 roundings of the running sum in a 32-layer
// model, which grow the first-step logits' error several times over that of the rest of the
// forward pass). out may alias x and residual_out residual_in: element i of each is read before it
// is written, by one thread.
__global__ void add_rmsnorm_kernel(bf16* out, float* residual_out, const float* residual_in, const bf16* x, const bf16* w, int H, float eps,
                                   bool accumulate) {
  allow_dependents();  // the GEMV after it may start streaming its weights
  wait_for_prerequisites();  // launched early (overlap): the GEMV before it wrote x
  const size_t row = (size_t)blockIdx.x * H;
  float squares = 0.f;
  for (int i = threadIdx.x; i < H; i += blockDim.x) {
    const float v = (accumulate ? residual_in[row + i] : 0.f) + load(x[row + i]);
    residual_out[row + i] = v;
    squares += v * v;
  }
  const float inv_rms = rsqrtf(block_sum(squares) / H + eps);
  for (int i = threadIdx.x; i < H; i += blockDim.x) out[row + i] = round_bf16(residual_out[row + i] * inv_rms * load(w[i]));
}

// One warp per head of D: Qwen3's q/k norm over the heads inside the fused qkv row.
__global__ void head_rmsnorm_kernel(bf16* x, const bf16* w, int T, int heads, int D, int stride, float eps) {
  const int warps = blockDim.x / 32;
  const int head = blockIdx.x * warps + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (head >= T * heads) return;
  bf16* v = x + (size_t)(head / heads) * stride + (size_t)(head % heads) * D;
  float squares = 0.f;
  for (int d = lane; d < D; d += 32) {
    const float e = load(v[d]);
    squares += e * e;
  }
  const float inv_rms = rsqrtf(warp_sum(squares) / D + eps);
  for (int d = lane; d < D; d += 32) v[d] = round_bf16(load(v[d]) * inv_rms * load(w[d]));
}

// ---- launchers ----

// With `overlap`, launched as a programmatic dependent of the kernel before it (a GEMV): a norm's
// block fits on an SM beside a GEMV's, so it is resident, waiting, when the GEMV ends, and the
// GEMV after it can take each SM as the one before leaves it.
inline cudaError_t rmsnorm(bf16* out, const bf16* x, const bf16* w, int T, int H, float eps, bool overlap, cudaStream_t stream) {
  if (T == 0) return cudaSuccess;
  return launch_kernel(rmsnorm_kernel, dim3(T), dim3(row_threads(H)), 0, stream, overlap, out, x, w, H, eps);
}

inline cudaError_t add_rmsnorm(bf16* out, float* residual_out, const float* residual_in, const bf16* x, const bf16* w, int T, int H, float eps,
                               bool accumulate, bool overlap, cudaStream_t stream) {
  if (T == 0) return cudaSuccess;
  return launch_kernel(add_rmsnorm_kernel, dim3(T), dim3(row_threads(H)), 0, stream, overlap, out, residual_out, residual_in, x, w, H, eps,
                       accumulate);
}

inline cudaError_t head_rmsnorm(bf16* x, const bf16* w, int T, int heads, int D, int stride, float eps, cudaStream_t stream) {
  const int rows = T * heads;
  if (rows == 0) return cudaSuccess;
  constexpr int kWarps = 8;
  head_rmsnorm_kernel<<<(rows + kWarps - 1) / kWarps, kWarps * 32, 0, stream>>>(x, w, T, heads, D, stride, eps);
  return cudaGetLastError();
}

}  // namespace tsr
