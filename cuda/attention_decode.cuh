// Paged attention for the tokens that are not in a full prefill tile: decodes, short (chunked)
// prefills and the ragged ends of long ones (see prefill_owns in attention_common.cuh).
//
// One block per (token, kv head, chunk of up to 16 query heads of its GQA group): the query
// heads that share a kv head share every K/V tile the block reads, so a decode step reads each
// sequence's cache once per kv head, not once per query head.
#pragma once

#include "attention_common.cuh"

namespace tsr::attention {

// ---- kernels ----

template <int DPL>
__global__ void __launch_bounds__(kWarps * 32) decode_kernel(bf16* out, const bf16* q, const bf16* k_cache, const bf16* v_cache,
                                                              const int* query_to_seq, const int* positions, const int* block_tables,
                                                              int T, int Hq, int Hkv, int D, int q_stride, int max_blocks,
                                                              int block_size, float scale_log2) {
  const int t = blockIdx.x;
  if (prefill_owns(query_to_seq, T, t / kPrefillTokens)) return;
  extern __shared__ __align__(16) unsigned char shared[];
  bf16* sK = reinterpret_cast<bf16*>(shared);
  bf16* sV = sK + kTileKeys * D;

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int g = blockIdx.y;
  const int group = Hq / Hkv;
  const int first_head = g * group + blockIdx.z * kWarps * kRowsPerWarp;
  const int end_head = min((g + 1) * group, first_head + kWarps * kRowsPerWarp);
  // a position past the block table would read someone else's blocks: clamp to the table
  const int last = min(positions[t], max_blocks * block_size - 1);
  const int* table = block_tables + (size_t)query_to_seq[t] * max_blocks;

  Row<DPL> rows[kRowsPerWarp];
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) {
    const int h = first_head + warp + r * kWarps;
    const bool valid = h < end_head;
    start_row(rows[r], q + (size_t)t * q_stride + (size_t)(valid ? h : 0) * D, D, scale_log2, valid ? last : -1, lane);
  }
  for (int j0 = 0; j0 <= last; j0 += kTileKeys) {
    __syncthreads();  // every warp is done with the previous tile
    load_tile(sK, sV, k_cache, v_cache, table, j0, last + 1, block_size, Hkv, g, D);
    __syncthreads();
#pragma unroll
    for (int r = 0; r < kRowsPerWarp; ++r) attend_tile(rows[r], sK, sV, j0, D, lane);
  }
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) {
    const int h = first_head + warp + r * kWarps;
    if (h < end_head) store_row(rows[r], out + ((size_t)t * Hq + h) * D, D, lane);
  }
}

// ---- launchers ----

template <int DPL>
cudaError_t decode(bf16* out, const bf16* q, const bf16* k_cache, const bf16* v_cache, const int* query_to_seq, const int* positions,
                   const int* block_tables, int T, int Hq, int Hkv, int D, int q_stride, int max_blocks, int block_size,
                   float scale_log2, cudaStream_t stream) {
  if (T == 0) return cudaSuccess;
  const int group = Hq / Hkv;
  const int chunks = (group + kWarps * kRowsPerWarp - 1) / (kWarps * kRowsPerWarp);
  decode_kernel<DPL><<<dim3(T, Hkv, chunks), kWarps * 32, tile_bytes(D), stream>>>(
      out, q, k_cache, v_cache, query_to_seq, positions, block_tables, T, Hq, Hkv, D, q_stride, max_blocks, block_size, scale_log2);
  return cudaGetLastError();
}

}  // namespace tsr::attention
