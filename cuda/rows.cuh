// Moving rows: the (vocab-parallel) embedding lookup and gathering the rows to sample; the step's
// input ids from the step before's tokens.
#pragma once

#include "common.cuh"

namespace tsr {

// ---- kernels ----

// One block per token. A rank holds rows [vocab_start, vocab_end) of the table and writes
// zeros for other tokens, so the all-reduce over TP sums to the full lookup.
__global__ void embedding_kernel(bf16* out, const int* ids, const bf16* table, int H, int vocab_start, int vocab_end) {
  const int t = blockIdx.x;
  const int id = ids[t];
  bf16* row = out + (size_t)t * H;
  if (id >= vocab_start && id < vocab_end) {
    const bf16* src = table + (size_t)(id - vocab_start) * H;
    for (int i = threadIdx.x; i < H; i += blockDim.x) row[i] = src[i];
  } else {
    for (int i = threadIdx.x; i < H; i += blockDim.x) row[i] = round_bf16(0.f);
  }
}

// One block per gathered row.
__global__ void gather_rows_kernel(bf16* out, const bf16* x, const int* indices, int H) {
  const int r = blockIdx.x;
  const bf16* src = x + (size_t)indices[r] * H;
  for (int i = threadIdx.x; i < H; i += blockDim.x) out[(size_t)r * H + i] = src[i];
}

// A thread per token: its id from the step before's argmax or draw, or left as the host wrote it.
__global__ void take_tokens_kernel(int* ids, const int* from, const int* argmax, const int* drawn, int T) {
  const int t = blockIdx.x * blockDim.x + threadIdx.x;
  if (t >= T) return;
  const int f = from[t];
  if (f >= 0) ids[t] = argmax[f];
  else if (f <= -2) ids[t] = drawn[-2 - f];
}

// ---- launchers ----

inline cudaError_t embedding(bf16* out, const int* ids, const bf16* table, int T, int H, int vocab_start, int vocab_end,
                             cudaStream_t stream) {
  if (T == 0) return cudaSuccess;
  embedding_kernel<<<T, row_threads(H), 0, stream>>>(out, ids, table, H, vocab_start, vocab_end);
  return cudaGetLastError();
}

inline cudaError_t take_tokens(int* ids, const int* from, const int* argmax, const int* drawn, int T, cudaStream_t stream) {
  if (T == 0) return cudaSuccess;
  take_tokens_kernel<<<(T + 255) / 256, 256, 0, stream>>>(ids, from, argmax, drawn, T);
  return cudaGetLastError();
}

inline cudaError_t gather_rows(bf16* out, const bf16* x, const int* indices, int R, int H, cudaStream_t stream) {
  if (R == 0) return cudaSuccess;
  gather_rows_kernel<<<R, row_threads(H), 0, stream>>>(out, x, indices, H);
  return cudaGetLastError();
}

inline cudaError_t copy(bf16* out, const bf16* x, int n, cudaStream_t stream) {
  if (n == 0 || out == x) return cudaSuccess;
  return cudaMemcpyAsync(out, x, (size_t)n * sizeof(bf16), cudaMemcpyDeviceToDevice, stream);
}

}  // namespace tsr
