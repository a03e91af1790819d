// What the attention kernels share: which kernel owns which query token, and the CUDA-core
// path (the tile of keys in shared memory, the online softmax of one query row).
//
// Two paths compute the same thing. Head dimensions that are multiples of 16 run on the tensor
// cores (attention_mma.cuh: mma.sync tiles, cp.async pipelines); every other head dimension
// (1..256) runs on the CUDA cores, with the row machinery below. Both split the query tokens
// between a prefill and a decode kernel by prefill_owns, so a mixed batch needs no host plan.
//
// CUDA-core path: a query row is one (token, query head). A warp carries up to kRowsPerWarp
// rows through the keys of their sequence, a tile of kTileKeys keys at a time; the block loads
// each tile into shared memory once for all its rows. Lane l owns dimensions l, l + 32, ... of
// the row's q and output. The softmax is online (FlashAttention): a running max and sum per
// row, the output rescaled when the max grows, so scores are never stored. Scores are in base
// 2 (q is pre-scaled by scale * log2(e)), so each exponential is one exp2f.
#pragma once

#include "common.cuh"

namespace tsr::attention {

constexpr int kWarps = 4;             // warps per block, in every attention kernel
constexpr int kThreads = kWarps * 32;
constexpr int kTileKeys = 32;         // keys per shared-memory tile
constexpr int kRowsPerWarp = 4;       // query rows a warp carries
constexpr int kPrefillTokens = kWarps * kRowsPerWarp;  // query tokens of a prefill tile: one row each
constexpr int kMaxHeadDim = 256;      // 8 dimensions per lane
constexpr float kLog2e = 1.4426950408889634f;

// Dimensions per lane for head dimension D: the kernels are instantiated for 1, 2, 4 and 8.
inline int dims_per_lane(int D) { return D <= 32 ? 1 : D <= 64 ? 2 : D <= 128 ? 4 : 8; }

// Shared memory of one block: a tile of K and one of V, kTileKeys rows of D each.
inline size_t tile_bytes(int D) { return 2 * (size_t)kTileKeys * D * sizeof(bf16); }

template <int DPL>
struct Row {
  float q[DPL];    // q * scale * log2(e), this lane's dimensions
  float acc[DPL];  // sum over keys of p * v, not yet divided by `sum`
  float max;       // running max of the scores (base 2)
  float sum;       // running sum of exp2(score - max)
  int last;        // the last key the row attends to (its position); -1 for no row
};

// Slot of key j of a sequence: its block table maps logical block j / blockSize to a physical one.
__device__ __forceinline__ size_t key_slot(const int* table, int j, int block_size) {
  return (size_t)table[j / block_size] * block_size + j % block_size;
}

// The prefill kernel owns each tile of kPrefillTokens consecutive query tokens that all belong
// to one sequence; the decode kernel owns every other token (decodes, short prefills, the
// ragged end of a long one). Both kernels evaluate this on the same ids, so every token is
// computed exactly once, without a plan from the host.
__device__ __forceinline__ bool prefill_owns(const int* query_to_seq, int T, int tile) {
  const int t0 = tile * kPrefillTokens;
  if (t0 + kPrefillTokens > T) return false;
  const int seq = query_to_seq[t0];
  for (int i = 1; i < kPrefillTokens; ++i) {
    if (query_to_seq[t0 + i] != seq) return false;
  }
  return true;
}

template <int DPL>
__device__ __forceinline__ void start_row(Row<DPL>& row, const bf16* q, int D, float scale_log2, int last, int lane) {
#pragma unroll
  for (int i = 0; i < DPL; ++i) {
    const int d = lane + 32 * i;
    row.q[i] = last >= 0 && d < D ? load(q[d]) * scale_log2 : 0.f;
    row.acc[i] = 0.f;
  }
  row.max = -kInfinity;
  row.sum = 0.f;
  row.last = last;
}

// Keys [j0, j0 + kTileKeys) of kv head g into sK and sV, rows of D. Keys at or past n_keys are
// zeros: a zero V keeps p * V finite where the cache past the sequence holds garbage (a NaN
// pattern times p = 0 would still be NaN).
__device__ __forceinline__ void load_tile(bf16* sK, bf16* sV, const bf16* k_cache, const bf16* v_cache, const int* table, int j0,
                                          int n_keys, int block_size, int Hkv, int g, int D) {
  if (D % 8 == 0) {
    // 16-byte vectors: a head's row is 2D bytes, a multiple of 16, and starts at a multiple of it
    const int vectors = D / 8;
    for (int e = threadIdx.x; e < kTileKeys * vectors; e += blockDim.x) {
      const int j = e / vectors, c = e % vectors;
      uint4 k = make_uint4(0, 0, 0, 0), v = k;
      if (j0 + j < n_keys) {
        const size_t at = (key_slot(table, j0 + j, block_size) * Hkv + g) * D;
        k = reinterpret_cast<const uint4*>(k_cache + at)[c];
        v = reinterpret_cast<const uint4*>(v_cache + at)[c];
      }
      reinterpret_cast<uint4*>(sK + j * D)[c] = k;
      reinterpret_cast<uint4*>(sV + j * D)[c] = v;
    }
  } else {
    for (int e = threadIdx.x; e < kTileKeys * D; e += blockDim.x) {
      const int j = e / D, d = e % D;
      bf16 k = round_bf16(0.f), v = k;
      if (j0 + j < n_keys) {
        const size_t at = (key_slot(table, j0 + j, block_size) * Hkv + g) * D + d;
        k = k_cache[at];
        v = v_cache[at];
      }
      sK[j * D + d] = k;
      sV[j * D + d] = v;
    }
  }
}

// Folds the tile at j0 into one row: scores, new running max, rescale, P.V. The row's fields
// and j0 are the same in every lane, so every branch here is uniform across the warp.
template <int DPL>
__device__ __forceinline__ void attend_tile(Row<DPL>& row, const bf16* sK, const bf16* sV, int j0, int D, int lane) {
  if (row.last < j0) return;  // the whole tile is in this row's future (or there is no row)
  float score[kTileKeys];
  float tile_max = -kInfinity;
#pragma unroll
  for (int j = 0; j < kTileKeys; ++j) {
    float partial = 0.f;
#pragma unroll
    for (int i = 0; i < DPL; ++i) {
      const int d = lane + 32 * i;
      if (d < D) partial += row.q[i] * load(sK[j * D + d]);
    }
    const float s = warp_sum(partial);
    score[j] = j0 + j <= row.last ? s : -kInfinity;  // causal: keys after the row's position
    tile_max = fmaxf(tile_max, score[j]);
  }
  // key j0 <= last is in the tile, so new_max is finite; exp2(-inf - finite) = 0 on the first tile
  const float new_max = fmaxf(row.max, tile_max);
  const float rescale = exp2f(row.max - new_max);
#pragma unroll
  for (int i = 0; i < DPL; ++i) row.acc[i] *= rescale;
  float tile_sum = 0.f;
#pragma unroll
  for (int j = 0; j < kTileKeys; ++j) {
    const float p = exp2f(score[j] - new_max);
    tile_sum += p;
#pragma unroll
    for (int i = 0; i < DPL; ++i) {
      const int d = lane + 32 * i;
      if (d < D) row.acc[i] += p * load(sV[j * D + d]);
    }
  }
  row.sum = row.sum * rescale + tile_sum;
  row.max = new_max;
}

template <int DPL>
__device__ __forceinline__ void store_row(const Row<DPL>& row, bf16* out, int D, int lane) {
  const float inv_sum = row.sum > 0.f ? 1.f / row.sum : 0.f;
#pragma unroll
  for (int i = 0; i < DPL; ++i) {
    const int d = lane + 32 * i;
    if (d < D) out[d] = round_bf16(row.acc[i] * inv_sum);
  }
}

}  // namespace tsr::attention
