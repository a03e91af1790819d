// RMSNorm, as HF computes it: x / sqrt(mean(x^2) + eps), then times the weight.
//
// Statistics in f32 from bf16 rows; each output is rounded to bf16 once, after the weight
// (HF's bf16 models round before the weight too; one rounding is closer to the f32 model).
#pragma once

#include "common.cuh"
#include "pointwise.cuh"

namespace tsr {

// ---- kernels ----

// One block per row of H. out may alias x: each thread rewrites only the elements it read.
__global__ void rmsnorm_kernel(bf16* out, const bf16* x, const bf16* w, int H, float eps) {
  allow_dependents();  // the GEMV after it may start streaming its weights
  wait_for_prerequisites();  // launched early (overlap): the GEMV before it wrote x
  const size_t row = (size_t)blockIdx.x * H;
  float squares = 0.f;
  for (int i = threadIdx.x; i < H; i += blockDim.x) squares = add_square(squares, load(x[row + i]));
  const float inv = inv_rms(squares, H, eps);
  for (int i = threadIdx.x; i < H; i += blockDim.x) out[row + i] = normalized(load(x[row + i]), inv, w[i]);
}

// residual = (start ? 0 : residual) + (keep ? 0 : x); out = rmsnorm(residual) * w. The residual stream
// is f32 (HF's bf16 models keep it in bf16: 64 roundings of the running sum in a 32-layer model,
// which grow the first-step logits' error several times over that of the rest of the forward
// pass). out may alias x: x[i] is read before out[i] is written, by one thread. kNormThreads a block.
__global__ void add_rmsnorm_kernel(bf16* out, float* residual, const bf16* x, const bf16* w, int H, float eps, int mode) {
  allow_dependents();  // the GEMV after it may start streaming its weights
  wait_for_prerequisites();  // launched early (overlap): the GEMV before it wrote x
  const size_t row = (size_t)blockIdx.x * H;
  float squares = 0.f;
  for (int i = threadIdx.x; i < H; i += blockDim.x) {
    float v = residual[row + i];
    if (mode != kResidualKeep) {
      v = (mode == kResidualAdd ? v : 0.f) + load(x[row + i]);
      residual[row + i] = v;
    }
    squares = add_square(squares, v);
  }
  const float inv = inv_rms(squares, H, eps);
  for (int i = threadIdx.x; i < H; i += blockDim.x) out[row + i] = normalized(residual[row + i], inv, w[i]);
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
  return launch_kernel(rmsnorm_kernel, dim3(T), dim3(kNormThreads), 0, stream, overlap, out, x, w, H, eps);
}

inline cudaError_t add_rmsnorm(bf16* out, float* residual, const bf16* x, const bf16* w, int T, int H, float eps,
                               int mode, bool overlap, cudaStream_t stream) {
  if (T == 0) return cudaSuccess;
  return launch_kernel(add_rmsnorm_kernel, dim3(T), dim3(kNormThreads), 0, stream, overlap, out, residual, x, w, H, eps, mode);
}

// residual[i] += x[i] for n elements (f32 += bf16): the residual add of a projection that the
// GEMV does not make itself (more rows than it takes)
__global__ void residual_add_kernel(float* residual, const bf16* x, size_t n) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) residual[i] = residual[i] + load(x[i]);
}

inline cudaError_t residual_add(float* residual, const bf16* x, size_t n, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  residual_add_kernel<<<grid_blocks(n, 256), 256, 0, stream>>>(residual, x, n);
  return cudaGetLastError();
}

inline cudaError_t head_rmsnorm(bf16* x, const bf16* w, int T, int heads, int D, int stride, float eps, cudaStream_t stream) {
  const int rows = T * heads;
  if (rows == 0) return cudaSuccess;
  constexpr int kWarps = 8;
  head_rmsnorm_kernel<<<(rows + kWarps - 1) / kWarps, kWarps * 32, 0, stream>>>(x, w, T, heads, D, stride, eps);
  return cudaGetLastError();
}

}  // namespace tsr
