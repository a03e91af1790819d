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

// Flash-decoding: when the (token, kv head, head chunk) blocks are too few to fill the GPU
// (small batches), each is split over `splits` blocks, each taking a contiguous run of key
// tiles and writing its rows' unnormalised output, max and sum (f32) to `part`; combine_kernel
// then merges the splits of each row. The split count depends on T alone, so a captured graph
// stays valid for any positions.
constexpr int kMaxSplits = 16;

template <int DPL>
__global__ void __launch_bounds__(kWarps * 32) decode_split_kernel(float* part, const bf16* q, const bf16* k_cache, const bf16* v_cache,
                                                                    const int* query_to_seq, const int* positions, const int* block_tables,
                                                                    int T, int Hq, int Hkv, int D, int q_stride, int max_blocks,
                                                                    int block_size, float scale_log2, int splits) {
  const int t = blockIdx.x;
  if (prefill_owns(query_to_seq, T, t / kPrefillTokens)) return;
  extern __shared__ __align__(16) unsigned char shared[];
  bf16* sK = reinterpret_cast<bf16*>(shared);
  bf16* sV = sK + kTileKeys * D;

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int g = blockIdx.y;
  const int chunk = blockIdx.z / splits, split = blockIdx.z % splits;
  const int group = Hq / Hkv;
  const int first_head = g * group + chunk * kWarps * kRowsPerWarp;
  const int end_head = min((g + 1) * group, first_head + kWarps * kRowsPerWarp);
  const int last = min(positions[t], max_blocks * block_size - 1);
  const int* table = block_tables + (size_t)query_to_seq[t] * max_blocks;
  // this split's key tiles: a contiguous, tile-aligned run of [0, last]
  const int tiles = last / kTileKeys + 1;
  const int per = (tiles + splits - 1) / splits;
  const int j_begin = split * per * kTileKeys, j_end = min((split + 1) * per * kTileKeys, last + 1);

  Row<DPL> rows[kRowsPerWarp];
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) {
    const int h = first_head + warp + r * kWarps;
    const bool valid = h < end_head;
    start_row(rows[r], q + (size_t)t * q_stride + (size_t)(valid ? h : 0) * D, D, scale_log2, valid ? last : -1, lane);
  }
  for (int j0 = j_begin; j0 < j_end; j0 += kTileKeys) {
    __syncthreads();
    load_tile(sK, sV, k_cache, v_cache, table, j0, last + 1, block_size, Hkv, g, D);
    __syncthreads();
#pragma unroll
    for (int r = 0; r < kRowsPerWarp; ++r) attend_tile(rows[r], sK, sV, j0, D, lane);
  }
  float* stats = part + (size_t)T * Hq * splits * D;
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) {
    const int h = first_head + warp + r * kWarps;
    if (h >= end_head) continue;
    const size_t row = ((size_t)t * Hq + h) * splits + split;
#pragma unroll
    for (int i = 0; i < DPL; ++i) {
      const int d = lane + 32 * i;
      if (d < D) part[row * D + d] = rows[r].acc[i];
    }
    if (lane == 0) {
      stats[2 * row] = rows[r].max;
      stats[2 * row + 1] = rows[r].sum;
    }
  }
}

// One warp per (token, query head): out = sum_s acc_s 2^(max_s - M) / sum_s sum_s 2^(max_s - M).
__global__ void combine_kernel(bf16* out, const float* part, const int* query_to_seq, int T, int Hq, int D, int splits) {
  const int t = blockIdx.x, h = blockIdx.y, lane = threadIdx.x;
  if (prefill_owns(query_to_seq, T, t / kPrefillTokens)) return;
  const size_t row = ((size_t)t * Hq + h) * splits;
  const float* stats = part + (size_t)T * Hq * splits * D + 2 * row;
  float m = -kInfinity;
  for (int s = 0; s < splits; ++s) m = fmaxf(m, stats[2 * s]);
  float total = 0.f;
  for (int s = 0; s < splits; ++s) total += stats[2 * s + 1] > 0.f ? stats[2 * s + 1] * exp2f(stats[2 * s] - m) : 0.f;
  const float inv = total > 0.f ? 1.f / total : 0.f;
  for (int d = lane; d < D; d += 32) {
    float acc = 0.f;
    for (int s = 0; s < splits; ++s) {
      if (stats[2 * s + 1] > 0.f) acc += part[(row + s) * D + d] * exp2f(stats[2 * s] - m);
    }
    out[((size_t)t * Hq + h) * D + d] = round_bf16(acc * inv);
  }
}

// Splits for T tokens: enough blocks for `target_blocks`, at most kMaxSplits, within the scratch.
inline int decode_splits(int T, int Hq, int Hkv, int D, int chunks, size_t scratch_floats, int target_blocks) {
  const long blocks = (long)T * Hkv * chunks;
  if (blocks == 0 || blocks >= target_blocks) return 1;
  int splits = (int)min((long)kMaxSplits, (target_blocks + blocks - 1) / blocks);
  while (splits > 1 && (size_t)T * Hq * splits * (D + 2) > scratch_floats) --splits;
  return splits;
}

// ---- launchers ----

template <int DPL>
cudaError_t decode(bf16* out, const bf16* q, const bf16* k_cache, const bf16* v_cache, const int* query_to_seq, const int* positions,
                   const int* block_tables, int T, int Hq, int Hkv, int D, int q_stride, int max_blocks, int block_size,
                   float scale_log2, float* scratch, size_t scratch_floats, int target_blocks, cudaStream_t stream) {
  if (T == 0) return cudaSuccess;
  const int group = Hq / Hkv;
  const int chunks = (group + kWarps * kRowsPerWarp - 1) / (kWarps * kRowsPerWarp);
  const int splits = scratch == nullptr ? 1 : decode_splits(T, Hq, Hkv, D, chunks, scratch_floats, target_blocks);
  if (splits > 1) {
    decode_split_kernel<DPL><<<dim3(T, Hkv, chunks * splits), kWarps * 32, tile_bytes(D), stream>>>(
        scratch, q, k_cache, v_cache, query_to_seq, positions, block_tables, T, Hq, Hkv, D, q_stride, max_blocks, block_size, scale_log2,
        splits);
    combine_kernel<<<dim3(T, Hq), 32, 0, stream>>>(out, scratch, query_to_seq, T, Hq, D, splits);
    return cudaGetLastError();
  }
  decode_kernel<DPL><<<dim3(T, Hkv, chunks), kWarps * 32, tile_bytes(D), stream>>>(
      out, q, k_cache, v_cache, query_to_seq, positions, block_tables, T, Hq, Hkv, D, q_stride, max_blocks, block_size, scale_log2);
  return cudaGetLastError();
}

}  // namespace tsr::attention
