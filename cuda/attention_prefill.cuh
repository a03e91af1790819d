// Paged attention for prefill tiles: kPrefillTokens consecutive query tokens of one sequence
// (see prefill_owns in attention_common.cuh), causal.
//
// Tensor cores (prefill_mma_kernel, head dimensions that are multiples of 16): one block per
// (up to 4 tiles, kv head g, chunk of g's query heads), 4 warps, each warp one (tile, query
// head): its 16 rows are the tile's 16 tokens. All the block's warps share every K/V tile it
// gathers, so the cache is read once per kv head and 64 query rows: 4 heads of one tile where
// the GQA group allows (Llama-3: group 4), else 2 heads x 2 tiles, else 1 head x 4 tiles (MHA).
// Tiles of different sequences in one block take turns (a pass each). Keys run up to the
// largest position of the pass's tiles; each warp skips the key tiles past its own rows and
// masks, per row, the keys after the row's position. Blocks are launched latest tokens first:
// they have the most keys, and the short ones fill the tail.
//
// CUDA cores (prefill_kernel, any other head dimension): one block per (tile, query head); the
// tile's 16 rows share each K/V tile the block reads.
#pragma once

#include "attention_common.cuh"
#include "attention_mma.cuh"

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

// Tensor-core prefill shapes: 64-key tiles, Q's fragments kept in registers, up to D = 128;
// at D = 256 the O accumulator alone takes 128 registers, so tiles of 32 keys and Q read
// from shared memory at each tile.
template <int DMAX>
struct PrefillShape {
  static constexpr int kKeys = DMAX <= 128 ? 64 : 32;
  static constexpr int kStages = 2;
  static constexpr bool kQInRegisters = DMAX <= 128;
  using Pipeline = mma::KvPipeline<kKeys, DMAX, kStages>;
  // Q's rows (kWarps x 16) go through the last stage's K tile before the keys do
  static_assert(!kQInRegisters || kKeys >= kWarps * mma::kRows, "Q staged in a K tile");

  static size_t shared_bytes(int D) {
    const int pitch = mma::pitch_bytes(D);
    return (size_t)Pipeline::bytes(pitch) + (kQInRegisters ? 0 : (size_t)kWarps * mma::kRows * pitch);
  }
};

// heads_per_block: 4, 2 or 1 (a divisor of the GQA group); the block then takes
// kWarps / heads_per_block consecutive tiles. Grid: one block per (tiles, kv head, head
// chunk), latest tiles first.
template <int DMAX, bool SPLIT_P>
__global__ void __launch_bounds__(kThreads) prefill_mma_kernel(bf16* out, const bf16* q, const bf16* k_cache, const bf16* v_cache,
                                                                const int* query_to_seq, const int* positions, const int* block_tables,
                                                                int T, int Hq, int Hkv, int D, int q_stride, int max_blocks,
                                                                int block_size, float scale_log2, int heads_per_block) {
  using Shape = PrefillShape<DMAX>;
  using Pipeline = typename Shape::Pipeline;
  constexpr int kKeys = Shape::kKeys;
  const int group = Hq / Hkv;
  const int tiles_per_block = kWarps / heads_per_block;
  const int head_chunks = group / heads_per_block;
  const int head_blocks = Hkv * head_chunks;
  const int block_tiles = gridDim.x / head_blocks;
  const int block_tile = block_tiles - 1 - (int)blockIdx.x / head_blocks;  // latest first
  const int g = (int)blockIdx.x % head_blocks / head_chunks, chunk = (int)blockIdx.x % head_chunks;
  const int t_first = block_tile * tiles_per_block * kPrefillTokens;
  const int cap = max_blocks * block_size - 1;  // a position past the block table would read another's blocks

  // the block's tokens: sequence and last key (-1: no token)
  constexpr int kTokens = kWarps * kPrefillTokens;
  __shared__ int token_seq[kTokens], token_last[kTokens];
  if (threadIdx.x < kTokens) {
    const int t = t_first + threadIdx.x;
    const bool valid = (int)threadIdx.x < tiles_per_block * kPrefillTokens && t < T;
    token_seq[threadIdx.x] = valid ? query_to_seq[t] : -1;
    token_last[threadIdx.x] = valid ? min(positions[t], cap) : -1;
  }
  __syncthreads();

  // the block's tiles that prefill owns (prefill_owns, read from shared memory), their
  // sequences and their largest positions; the same in every thread
  unsigned owned = 0;
  int tile_seq[kWarps], tile_last[kWarps];
#pragma unroll
  for (int i = 0; i < kWarps; ++i) {
    tile_seq[i] = token_seq[i * kPrefillTokens];
    tile_last[i] = -1;
    bool one_sequence = i < tiles_per_block && t_first + (i + 1) * kPrefillTokens <= T;
    for (int r = 0; r < kPrefillTokens; ++r) {
      one_sequence = one_sequence && token_seq[i * kPrefillTokens + r] == tile_seq[i];
      tile_last[i] = max(tile_last[i], token_last[i * kPrefillTokens + r]);
    }
    if (one_sequence) owned |= 1u << i;
  }
  if (owned == 0) return;

  // this warp: tile `tile` of the block, query head h (none where the chunk is past the group)
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int tile = warp / heads_per_block;
  const bool has_head = chunk * heads_per_block + warp % heads_per_block < group;
  const int h = g * group + chunk * heads_per_block + warp % heads_per_block;
  const int t0 = t_first + tile * kPrefillTokens;
  const int last0 = token_last[tile * kPrefillTokens + lane / 4], last1 = token_last[tile * kPrefillTokens + lane / 4 + 8];
  int warp_first_last = min(last0, last1), warp_last = max(last0, last1);
#pragma unroll
  for (int offset = 4; offset < 32; offset <<= 1) {
    warp_first_last = min(warp_first_last, __shfl_xor_sync(kFullWarp, warp_first_last, offset));
    warp_last = max(warp_last, __shfl_xor_sync(kFullWarp, warp_last, offset));
  }

  extern __shared__ __align__(16) unsigned char shared[];
  const int pitch = mma::pitch_bytes(D);
  const uint32_t stages = mma::shared_address(shared);
  const uint32_t sQ = Shape::kQInRegisters ? stages + (Shape::kStages - 1) * Pipeline::stage_bytes(pitch) : stages + Pipeline::bytes(pitch);
  mma::load_rows(sQ, pitch, kWarps * mma::kRows, D, q, [&](int r) -> const bf16* {
    const int w = r / mma::kRows;
    const int head = chunk * heads_per_block + w % heads_per_block;
    const int t = t_first + w / heads_per_block * kPrefillTokens + r % mma::kRows;
    return head < group && t < T ? q + (size_t)t * q_stride + (size_t)(g * group + head) * D : nullptr;
  });
  const uint32_t warp_q = sQ + warp * mma::kRows * pitch;

  mma::WarpRows<DMAX, kKeys / 8, Shape::kQInRegisters> rows;
  rows.start();
  bool q_loaded = false;
  // one pass per sequence among the owned tiles (one pass but where a sequence starts inside the block)
  for (unsigned pending = owned; pending != 0;) {
    const int first = __ffs(pending) - 1;
    int seq = 0;
#pragma unroll
    for (int i = 0; i < kWarps; ++i) seq = i == first ? tile_seq[i] : seq;
    unsigned members = 0;
    int n_keys = 0;
#pragma unroll
    for (int i = 0; i < kWarps; ++i) {
      if ((pending >> i & 1) && tile_seq[i] == seq) {
        members |= 1u << i;
        n_keys = max(n_keys, tile_last[i] + 1);
      }
    }
    pending &= ~members;
    const bool active = has_head && (members >> tile & 1);
    const int n_tiles = (n_keys + kKeys - 1) / kKeys;

    Pipeline pipeline{mma::KvTileLoader<kKeys, DMAX>(k_cache, v_cache, block_tables + (size_t)seq * max_blocks, block_size, Hkv, g, D, n_keys),
                      stages, pitch};
    __syncthreads();  // every warp is done with the previous pass's stages
    pipeline.prologue(0, n_tiles);
    if (!q_loaded) {
      // Q's group is the oldest; its rows sit in the last stage, which the first tile of the
      // loop overwrites only after the loop's first barrier
      mma::cp_async_wait<Shape::kStages - 1>();
      __syncthreads();
      rows.load_q(warp_q, pitch, D);
      q_loaded = true;
    }
    pipeline.run(0, n_tiles, [&](uint32_t sK, uint32_t sV, int j0) {
      if (active && j0 <= warp_last) {
        rows.template attend<SPLIT_P>(warp_q, sK, sV, pitch, D, 0, j0, last0, last1, j0 + kKeys - 1 > warp_first_last, scale_log2);
      }
    });
    if (active) {
      rows.finish();
      rows.store(out + ((size_t)(t0 + lane / 4) * Hq + h) * D, out + ((size_t)(t0 + lane / 4 + 8) * Hq + h) * D, D);
    }
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

// Heads per tensor-core prefill block: the largest of 4, 2, 1 that divides the GQA group, so
// that no warp idles.
inline int prefill_heads_per_block(int group) { return group % 4 == 0 ? 4 : group % 2 == 0 ? 2 : 1; }

template <int DMAX, bool SPLIT_P>
cudaError_t prefill_mma(bf16* out, const bf16* q, const bf16* k_cache, const bf16* v_cache, const int* query_to_seq, const int* positions,
                        const int* block_tables, int T, int Hq, int Hkv, int D, int q_stride, int max_blocks, int block_size,
                        float scale_log2, cudaStream_t stream) {
  const int tiles = T / kPrefillTokens;
  if (tiles == 0) return cudaSuccess;
  const int group = Hq / Hkv;
  const int heads_per_block = prefill_heads_per_block(group);
  const int tiles_per_block = kWarps / heads_per_block;
  const long blocks = (long)(tiles + tiles_per_block - 1) / tiles_per_block * Hkv * (group / heads_per_block);
  if (blocks > 0x7fffffffL) return cudaErrorInvalidConfiguration;
  const size_t shared = PrefillShape<DMAX>::shared_bytes(D);
  auto* kernel = prefill_mma_kernel<DMAX, SPLIT_P>;
  // over 48 KiB of dynamic shared memory needs an opt-in (per device: set at every launch, as
  // FlashAttention does; legal inside a graph capture)
  if (cudaError_t error = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)shared)) return error;
  kernel<<<(unsigned)blocks, kThreads, shared, stream>>>(out, q, k_cache, v_cache, query_to_seq, positions, block_tables, T, Hq, Hkv, D,
                                                         q_stride, max_blocks, block_size, scale_log2, heads_per_block);
  return cudaGetLastError();
}

}  // namespace tsr::attention
