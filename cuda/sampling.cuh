// Turning logits into tokens: greedy argmax, and softmax for sampling. One block per row.
#pragma once

#include "common.cuh"

namespace tsr {

// ---- kernels ----

// out[m] = argmax_v logits[m, v], the first index on ties (as torch.argmax and the CPU
// kernel). A row of NaNs gives 0, as on the CPU. Each thread keeps the better of what it sees
// (larger value, then smaller index: an order, so the visiting order does not matter), then the
// block merges. Rows of 16-byte chunks are read kUnroll chunks a thread at a time: at batch 1
// the row (256 KB for a 128k vocabulary) is read by one block, and one scalar load in flight a
// thread left it at 26 us on H100, where the lm_head GEMV before it takes 340.
__global__ void argmax_kernel(int* out, const bf16* logits, int V) {
  constexpr int kChunk = 8, kUnroll = 4;
  __shared__ float values[32];
  __shared__ int indices[32];
  const bf16* row = logits + (size_t)blockIdx.x * V;
  float best = -kInfinity;
  int at = 0x7fffffff;
  if (V % kChunk == 0 && reinterpret_cast<uintptr_t>(logits) % 16 == 0) {
    const uint4* chunks = reinterpret_cast<const uint4*>(row);
    const int n = V / kChunk;
    for (int first = threadIdx.x; first < n; first += kUnroll * blockDim.x) {
      uint4 piece[kUnroll];
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        const int c = first + u * blockDim.x;
        if (c < n) piece[u] = chunks[c];
      }
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        const int c = first + u * blockDim.x;
        if (c >= n) break;
        const bf16* e = reinterpret_cast<const bf16*>(&piece[u]);
#pragma unroll
        for (int i = 0; i < kChunk; ++i) keep_better(best, at, load(e[i]), c * kChunk + i);  // NaN never wins
      }
    }
  } else {
    for (int v = threadIdx.x; v < V; v += blockDim.x) keep_better(best, at, load(row[v]), v);
  }
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) {
    keep_better(best, at, __shfl_xor_sync(kFullWarp, best, offset), __shfl_xor_sync(kFullWarp, at, offset));
  }
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) {
    values[warp] = best;
    indices[warp] = at;
  }
  __syncthreads();
  if (warp != 0) return;
  best = lane < (int)(blockDim.x >> 5) ? values[lane] : -kInfinity;
  at = lane < (int)(blockDim.x >> 5) ? indices[lane] : 0x7fffffff;
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) {
    keep_better(best, at, __shfl_xor_sync(kFullWarp, best, offset), __shfl_xor_sync(kFullWarp, at, offset));
  }
  if (lane == 0) out[blockIdx.x] = at == 0x7fffffff ? 0 : at;
}

// x[m] = softmax(x[m] / temperature) in place, as exp((x - max) / temperature) / sum.
__global__ void softmax_kernel(bf16* x, int V, float temperature) {
  bf16* row = x + (size_t)blockIdx.x * V;
  const float inv_t = 1.f / temperature;
  float top = -kInfinity;
  for (int v = threadIdx.x; v < V; v += blockDim.x) top = fmaxf(top, load(row[v]));
  top = block_max(top);
  float sum = 0.f;
  for (int v = threadIdx.x; v < V; v += blockDim.x) sum += expf((load(row[v]) - top) * inv_t);
  const float inv_sum = 1.f / block_sum(sum);
  // recomputing exp costs less than a second pass over the row in memory
  for (int v = threadIdx.x; v < V; v += blockDim.x) row[v] = round_bf16(expf((load(row[v]) - top) * inv_t) * inv_sum);
}

// ---- launchers ----

inline cudaError_t argmax(int* out, const bf16* logits, int M, int V, cudaStream_t stream) {
  if (M == 0) return cudaSuccess;
  argmax_kernel<<<M, row_threads(V), 0, stream>>>(out, logits, V);
  return cudaGetLastError();
}

inline cudaError_t softmax(bf16* x, int M, int V, float temperature, cudaStream_t stream) {
  if (M == 0) return cudaSuccess;
  softmax_kernel<<<M, row_threads(V), 0, stream>>>(x, V, temperature);
  return cudaGetLastError();
}

}  // namespace tsr
