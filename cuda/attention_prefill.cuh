// Paged attention for prefill tiles: kPrefillTokens consecutive query tokens of one sequence
// (see prefill_owns in attention_common.cuh), causal.
//
// One block per (tile, query head): the tile's 16 rows share every K/V tile the block reads,
// so a prefill of n tokens reads its cache n/16 times rather than n times. Keys run up to the
// tile's largest position; each row masks the keys after its own.
#pragma once

#include "attention_common.cuh"

namespace tsr::attention {

// ---- kernels ----

template <int DPL>
__global__ void __launch_bounds__(kWarps * 32) prefill_kernel(bf16* out, const bf16* q, const bf16* k_cache, const bf16* v_cache,
                                                               const int* query_to_seq, const int* positions, const int* block_tables,
                                                               int T, int Hq, int Hkv, int D, int q_stride, int max_blocks,
                                                               int block_size, float scale_log2) {
  const int tile = blockIdx.x;
  if (!prefill_owns(query_to_seq, T, tile)) return;
  extern __shared__ __align__(16) unsigned char shared[];
  bf16* sK = reinterpret_cast<bf16*>(shared);
  bf16* sV = sK + kTileKeys * D;

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int h = blockIdx.y;
  const int g = h / (Hq / Hkv);
  const int t0 = tile * kPrefillTokens;
  const int* table = block_tables + (size_t)query_to_seq[t0] * max_blocks;
  const int cap = max_blocks * block_size - 1;
  int tile_last = -1;
  for (int i = 0; i < kPrefillTokens; ++i) tile_last = max(tile_last, min(positions[t0 + i], cap));

  Row<DPL> rows[kRowsPerWarp];
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) {
    const int t = t0 + warp + r * kWarps;
    start_row(rows[r], q + (size_t)t * q_stride + (size_t)h * D, D, scale_log2, min(positions[t], cap), lane);
  }
  for (int j0 = 0; j0 <= tile_last; j0 += kTileKeys) {
    __syncthreads();  // every warp is done with the previous tile
    load_tile(sK, sV, k_cache, v_cache, table, j0, tile_last + 1, block_size, Hkv, g, D);
    __syncthreads();
#pragma unroll
    for (int r = 0; r < kRowsPerWarp; ++r) attend_tile(rows[r], sK, sV, j0, D, lane);
  }
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) {
    const int t = t0 + warp + r * kWarps;
    store_row(rows[r], out + ((size_t)t * Hq + h) * D, D, lane);
  }
}

// ---- launchers ----

template <int DPL>
cudaError_t prefill(bf16* out, const bf16* q, const bf16* k_cache, const bf16* v_cache, const int* query_to_seq, const int* positions,
                    const int* block_tables, int T, int Hq, int Hkv, int D, int q_stride, int max_blocks, int block_size,
                    float scale_log2, cudaStream_t stream) {
  const int tiles = T / kPrefillTokens;
  if (tiles == 0) return cudaSuccess;
  prefill_kernel<DPL><<<dim3(tiles, Hq), kWarps * 32, tile_bytes(D), stream>>>(
      out, q, k_cache, v_cache, query_to_seq, positions, block_tables, T, Hq, Hkv, D, q_stride, max_blocks, block_size, scale_log2);
  return cudaGetLastError();
}

}  // namespace tsr::attention
