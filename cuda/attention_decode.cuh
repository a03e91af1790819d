// Paged attention for the tokens that are not in a full prefill tile: decodes, short (chunked)
// prefills and the ragged ends of long ones (see prefill_owns in attention_common.cuh).
//
// One block per (token, kv head, chunk of up to 16 query heads of its GQA group): the query
// heads that share a kv head share every K/V tile the block reads, so a decode step reads each
// sequence's cache once per kv head, not once per query head. Decode streams the cache: what
// matters is keeping enough of it in flight.
//
// Tensor cores (decode_mma_kernel, head dimensions that are multiples of 16): the chunk's
// query heads are the 16 rows of an mma tile (zero rows past the group); K/V tiles of 64 keys
// stream through a 3-stage cp.async pipeline (2 at D > 128, for shared memory), each warp
// takes 16 keys of every tile with its own online softmax, and the block merges its 4 warps'
// rows at the end. CUDA cores (decode_split_kernel): any other head dimension.
//
// `prefill`: whether the prefill kernel ran for this call (the host skips it where no sequence has
// a prefill tile's worth of tokens); without it the decode kernel owns every token.
//
// Flash-decoding: when the blocks are too few to fill the GPU (small batches), each one's keys
// are split over `splits` blocks, each taking a contiguous run of key tiles and writing its
// rows' unnormalised output, max and sum (f32) to `part`; merge_kernel then merges the splits of
// each row. With splits = 1 a kernel stores the normalised output itself. The split count
// depends on T alone, so a captured graph stays valid for any positions.
//
// Launched early (overlap), the tensor-core kernel copies the keys of earlier steps while the
// kernel before it (the qkv projection) still runs, and only q and this step's keys after it.
#pragma once

#include "attention_common.cuh"
#include "attention_mma.cuh"

namespace tsr::attention {

constexpr int kMaxSplits = 16;
constexpr int kDecodeHeads = 16;  // query heads of a decode block: one mma tile, 16 CUDA-core rows

#ifndef TSR_DECODE_PRELOAD  // an experiment's override (make EXTRA_FLAGS=-DTSR_DECODE_PRELOAD=0): wait first
#define TSR_DECODE_PRELOAD 1
#endif

// Where the split blocks leave their rows (splits > 1): part[T][Hq][splits][D], and their
// statistics after it.
struct Splits {
  float* part;
  int count;
  __device__ float* stats(int T, int Hq, int D) const { return part + (size_t)T * Hq * count * D; }
};

// Row (t, h) merged from its splits: out = sum_s acc_s 2^(max_s - M) / sum_s sum_s 2^(max_s - M),
// by one warp. Lane s reads split s's statistics (splits <= kMaxSplits <= 32), and every lane its
// 4 dimensions of every split's partial row, all in one round trip (where D % 4 == 0, D <= 128:
// one pass; otherwise a pass a 128 dimensions, or a scalar pass); the sums then run in split order
// over registers (shuffles): the same arithmetic, in the same order, as a walk over the splits. At
// batch 1 a layer's 16 splits would otherwise cost a chain of L2 round trips.
static_assert(kMaxSplits <= 32, "merge_row: a lane per split");
__device__ __forceinline__ void merge_row(bf16* out, const Splits& splits, int T, int Hq, int D, int t, int h, int lane) {
  const int n = splits.count;
  const size_t row = ((size_t)t * Hq + h) * n;
  const float* stats = splits.stats(T, Hq, D) + 2 * row;
  const bool vector = D % 4 == 0;
  // the first pass's partials, loaded with the statistics
  float4 value[kMaxSplits];
  const int d_first = vector ? 4 * lane : lane;
  const auto load_pass = [&](int d0) {
#pragma unroll
    for (int s = 0; s < kMaxSplits; ++s) {
      const float* p = splits.part + (row + s) * D + d0;
      if (s >= n || d0 >= D) value[s] = make_float4(0.f, 0.f, 0.f, 0.f);
      else if (vector) value[s] = *reinterpret_cast<const float4*>(p);
      else value[s] = make_float4(*p, 0.f, 0.f, 0.f);
    }
  };
  load_pass(d_first);
  const float split_max = lane < n ? stats[2 * lane] : -kInfinity;
  const float split_sum = lane < n ? stats[2 * lane + 1] : 0.f;
  float m = -kInfinity;
  for (int s = 0; s < n; ++s) m = fmaxf(m, __shfl_sync(0xffffffffu, split_max, s));
  // split `lane`'s weight 2^(max_s - M), zero for a split that saw no key
  const float weight = split_sum > 0.f ? exp2f(split_max - m) : 0.f;
  float total = 0.f;
  for (int s = 0; s < n; ++s) total += __shfl_sync(0xffffffffu, split_sum * weight, s);
  const float inv = total > 0.f ? 1.f / total : 0.f;
  // every split's weight, and whether it saw a key, in every lane: taken by the whole warp here,
  // since a lane past D's last pass leaves the loop below
  float split_weight[kMaxSplits];
  bool split_seen[kMaxSplits];
#pragma unroll
  for (int s = 0; s < kMaxSplits; ++s) {
    split_weight[s] = __shfl_sync(0xffffffffu, weight, s);
    split_seen[s] = s < n && __shfl_sync(0xffffffffu, split_sum, s) > 0.f;
  }
  const int step = vector ? 128 : 32;
  for (int d0 = d_first; d0 < D; d0 += step) {
    if (d0 != d_first) load_pass(d0);
    float4 acc = make_float4(0.f, 0.f, 0.f, 0.f);
#pragma unroll
    for (int s = 0; s < kMaxSplits; ++s) {
      if (split_seen[s]) {
        const float w = split_weight[s];
        acc.x += value[s].x * w;
        acc.y += value[s].y * w;
        acc.z += value[s].z * w;
        acc.w += value[s].w * w;
      }
    }
    bf16* o = out + ((size_t)t * Hq + h) * D + d0;
    o[0] = round_bf16(acc.x * inv);
    if (vector) {
      o[1] = round_bf16(acc.y * inv);
      o[2] = round_bf16(acc.z * inv);
      o[3] = round_bf16(acc.w * inv);
    }
  }
}

// ---- kernels ----

// One warp per (token, query head) of a split launch. (The same merge made by the last split block
// of a row to finish, with an arrival counter and a fence, in the split kernel itself: no faster
// at batches 1-64 on H200, bench/README.md.)
__global__ void merge_kernel(bf16* out, Splits splits, const int* query_to_seq, int T, int Hq, int D, bool prefill) {
  allow_dependents();        // the o projection's GEMV may start streaming its weights
  wait_for_prerequisites();  // launched early (overlap): the split kernel wrote part
  const int t = blockIdx.x;
  if (prefill && prefill_owns(query_to_seq, T, t / kPrefillTokens)) return;
  merge_row(out, splits, T, Hq, D, t, blockIdx.y, threadIdx.x);
}

template <int DPL>
__global__ void __launch_bounds__(kThreads) decode_split_kernel(bf16* out, Splits split_rows, const bf16* q, const bf16* k_cache,
                                                                const bf16* v_cache, const int* query_to_seq, const int* positions,
                                                                const int* block_tables, int T, int Hq, int Hkv, int D, int q_stride,
                                                                int max_blocks, int block_size, float scale_log2, bool prefill) {
  static_assert(kWarps * kRowsPerWarp == kDecodeHeads, "a warp's rows are heads of the chunk");
  allow_dependents();        // the merge, or the o projection's GEMV, may start
  const int splits = split_rows.count;
  float* part = split_rows.part;
  wait_for_prerequisites();  // launched early (overlap): the kernel before it wrote q and the cache
  const int t = blockIdx.x;
  if (prefill && prefill_owns(query_to_seq, T, t / kPrefillTokens)) return;
  extern __shared__ __align__(16) unsigned char shared[];
  bf16* sK = reinterpret_cast<bf16*>(shared);
  bf16* sV = sK + kTileKeys * D;

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int g = blockIdx.y;
  const int chunk = blockIdx.z / splits, split = blockIdx.z % splits;
  const int group = Hq / Hkv;
  const int first_head = g * group + chunk * kDecodeHeads;
  const int end_head = min((g + 1) * group, first_head + kDecodeHeads);
  // a position past the block table would read someone else's blocks: clamp to the table
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
    __syncthreads();  // every warp is done with the previous tile
    load_tile(sK, sV, k_cache, v_cache, table, j0, last + 1, block_size, Hkv, g, D);
    __syncthreads();
#pragma unroll
    for (int r = 0; r < kRowsPerWarp; ++r) attend_tile(rows[r], sK, sV, j0, D, lane);
  }
  float* stats = split_rows.stats(T, Hq, D);
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) {
    const int h = first_head + warp + r * kWarps;
    if (h >= end_head) continue;
    if (splits == 1) {
      store_row(rows[r], out + ((size_t)t * Hq + h) * D, D, lane);
      continue;
    }
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

// Tensor-core decode shapes: 64-key tiles, 16 keys per warp.
template <int DMAX>
struct DecodeShape {
  static constexpr int kKeys = kWarps * mma::kRows;
#ifndef TSR_DECODE_STAGES  // an experiment's override (make EXTRA_FLAGS=-DTSR_DECODE_STAGES=2)
#define TSR_DECODE_STAGES 3
#endif
  static constexpr int kStages = DMAX <= 128 ? TSR_DECODE_STAGES : 2;
  static constexpr bool kQInRegisters = DMAX <= 128;
  using Pipeline = mma::KvPipeline<kKeys, DMAX, kStages>;

  // the stages, then the chunk's 16 query rows; the warps' partial rows reuse the stages
  static size_t shared_bytes(int D) {
    const int pitch = mma::pitch_bytes(D);
    return (size_t)Pipeline::bytes(pitch) + (size_t)mma::kRows * pitch;
  }
  static_assert(kWarps * mma::kRows * 2 <= kStages * 2 * kKeys, "f32 partial rows fit in the stages");
};

template <int DMAX>
__global__ void __launch_bounds__(kThreads) decode_mma_kernel(bf16* out, Splits split_rows, const bf16* q, const bf16* k_cache,
                                                              const bf16* v_cache, const int* query_to_seq, const int* positions,
                                                              const int* block_tables, int T, int Hq, int Hkv, int D, int q_stride,
                                                              int max_blocks, int block_size, float scale_log2, int fresh,
                                                              bool prefill) {
  using Shape = DecodeShape<DMAX>;
  using Pipeline = typename Shape::Pipeline;
  constexpr int kKeys = Shape::kKeys;
  allow_dependents();        // the merge, or the o projection's GEMV, may start
  const int splits = split_rows.count;
  float* part = split_rows.part;
  if (!TSR_DECODE_PRELOAD) wait_for_prerequisites();
  // Launched early (overlap), it reads only the step's inputs (positions, tables) and the keys
  // of earlier steps before it waits: the kernel before it writes q and this step's keys, the
  // last `fresh` of each sequence (fresh >= the most tokens a sequence has in the call).
  const int t = blockIdx.x;
  if (prefill && prefill_owns(query_to_seq, T, t / kPrefillTokens)) return;

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int g = blockIdx.y;
  const int chunk = blockIdx.z / splits, split = blockIdx.z % splits;
  const int group = Hq / Hkv;
  const int first_head = g * group + chunk * kDecodeHeads;
  const int heads = min(kDecodeHeads, group - chunk * kDecodeHeads);
  const int last = min(positions[t], max_blocks * block_size - 1);
  const int* table = block_tables + (size_t)query_to_seq[t] * max_blocks;
  // this split's key tiles: a contiguous run of [0, last]'s tiles
  const int n_tiles = last >= 0 ? last / kKeys + 1 : 0;
  const int per = (n_tiles + splits - 1) / splits;
  const int begin = min(split * per, n_tiles), end = min(begin + per, n_tiles);

  extern __shared__ __align__(16) unsigned char shared[];
  const int pitch = mma::pitch_bytes(D);
  const uint32_t stages = mma::shared_address(shared);
  const uint32_t sQ = stages + Pipeline::bytes(pitch);
  Pipeline pipeline{mma::KvTileLoader<kKeys, DMAX>(k_cache, v_cache, table, block_size, Hkv, g, D, last + 1), stages, pitch};
  const int fresh_from = last + 1 - fresh;
  pipeline.prologue_kept(begin, end, fresh_from);
  if (TSR_DECODE_PRELOAD) wait_for_prerequisites();
  mma::load_rows(sQ, pitch, mma::kRows, D, q, [&](int r) -> const bf16* {
    return r < heads ? q + (size_t)t * q_stride + (size_t)(first_head + r) * D : nullptr;
  });
  pipeline.prologue_fresh(begin, end, fresh_from);
  mma::cp_async_wait<0>();  // Q and the prologue's tiles
  __syncthreads();

  mma::WarpRows<DMAX, mma::kRows / 8, Shape::kQInRegisters> rows;
  rows.start();
  rows.load_q(sQ, pitch, D);
  const int key0 = warp * mma::kRows;  // this warp's keys of every tile
  pipeline.run(begin, end, [&](uint32_t sK, uint32_t sV, int j0) {
    if (j0 + key0 <= last) {
      rows.template attend<true>(sQ, sK, sV, pitch, D, key0, j0, last, last, j0 + key0 + mma::kRows - 1 > last, scale_log2);
    }
  });
  rows.finish();

  // merge the 4 warps' rows: out = sum_w o_w 2^(max_w - M) / sum_w sum_w 2^(max_w - M)
  __syncthreads();  // every warp is done with the stages
  const int partial_pitch = D + 8;  // floats: a float2 store of the 8 rows of a quad column hits 8 bank pairs
  float* partial = reinterpret_cast<float*>(shared);  // [kWarps][16][partial_pitch]
  __shared__ float row_max[kWarps][mma::kRows], row_sum[kWarps][mma::kRows];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int row = lane / 4 + 8 * r;
    float* dst = partial + (warp * mma::kRows + row) * partial_pitch + 2 * (lane % 4);
#pragma unroll
    for (int i = 0; i < DMAX / 8; ++i) {
      if (i * 8 >= D) break;
      *reinterpret_cast<float2*>(dst + i * 8) = make_float2(rows.o[i][2 * r], rows.o[i][2 * r + 1]);
    }
    if (lane % 4 == 0) {
      row_max[warp][row] = rows.max[r];
      row_sum[warp][row] = rows.sum[r];
    }
  }
  __syncthreads();
  float* stats = split_rows.stats(T, Hq, D);
  for (int e = threadIdx.x; e < heads * D; e += kThreads) {
    const int r = e / D, d = e % D;
    float m = -kInfinity;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) m = fmaxf(m, row_max[w][r]);
    const float base = m == -kInfinity ? 0.f : m;  // no key at all: every weight 2^-inf = 0
    float total = 0.f, acc = 0.f;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) {
      const float weight = mma::fast_exp2(row_max[w][r] - base);
      total += row_sum[w][r] * weight;
      acc += partial[(w * mma::kRows + r) * partial_pitch + d] * weight;
    }
    const size_t row = (size_t)t * Hq + first_head + r;
    if (splits == 1) {
      out[row * D + d] = round_bf16(total > 0.f ? acc / total : 0.f);
    } else {
      const size_t split_row = row * splits + split;
      part[split_row * D + d] = acc;
      if (d == 0) {
        stats[2 * split_row] = m;
        stats[2 * split_row + 1] = total;
      }
    }
  }
}

// Splits for T tokens: as many as keep the blocks within `target_blocks`, at most kMaxSplits, within
// the scratch. Rounded down: a batch whose blocks nearly fill the GPU runs unsplit (16 tokens of
// 8 kv heads, 128 blocks on 132 SMs: rounded up, 2 splits and the merge made the step 2.7% slower
// on H100, gpu-ab).
inline int decode_splits(int T, int Hq, int Hkv, int D, int chunks, size_t scratch_floats, int target_blocks) {
  const long blocks = (long)T * Hkv * chunks;
  if (blocks == 0 || blocks >= target_blocks) return 1;
  int splits = (int)min((long)kMaxSplits, target_blocks / blocks);
  while (splits > 1 && (size_t)T * Hq * splits * (D + 2) > scratch_floats) --splits;
  return splits;
}

// The flash-decoding scratch a launch may use: part (null: no split) of part_floats floats.
struct DecodeScratch {
  float* part;
  size_t part_floats;
};

// Head chunks per kv head and key splits per (token, kv head, chunk) for T tokens: both decode
// kernels' grid, (T, Hkv, chunks * splits).
struct DecodeGrid {
  int chunks, splits;
};
inline DecodeGrid decode_grid(int T, int Hq, int Hkv, int D, const DecodeScratch& scratch, int target_blocks) {
  const int chunks = (Hq / Hkv + kDecodeHeads - 1) / kDecodeHeads;
  return {chunks, scratch.part == nullptr ? 1 : decode_splits(T, Hq, Hkv, D, chunks, scratch.part_floats, target_blocks)};
}

// ---- launchers ----

// target_blocks: the blocks that fill the GPU, for the split count
template <int DPL>
cudaError_t decode(bf16* out, const bf16* q, const bf16* k_cache, const bf16* v_cache, const int* query_to_seq, const int* positions,
                   const int* block_tables, int T, int Hq, int Hkv, int D, int q_stride, int max_blocks, int block_size,
                   float scale_log2, const DecodeScratch& scratch, int target_blocks, bool prefill, bool overlap, cudaStream_t stream) {
  if (T == 0) return cudaSuccess;
  const auto [chunks, splits] = decode_grid(T, Hq, Hkv, D, scratch, target_blocks);
  const cudaError_t error =
      launch_kernel(decode_split_kernel<DPL>, dim3(T, Hkv, chunks * splits), dim3(kThreads), tile_bytes(D), stream, overlap, out,
                    Splits{scratch.part, splits}, q, k_cache, v_cache, query_to_seq, positions, block_tables, T, Hq, Hkv, D, q_stride,
                    max_blocks, block_size, scale_log2, prefill);
  if (error != cudaSuccess || splits == 1) return error;
  return launch_kernel(merge_kernel, dim3(T, Hq), dim3(32), 0, stream, overlap, out, Splits{scratch.part, splits}, query_to_seq, T, Hq, D,
                       prefill);
}

// fresh: the most tokens any sequence has in this call (its keys written in this step)
template <int DMAX>
cudaError_t decode_mma(bf16* out, const bf16* q, const bf16* k_cache, const bf16* v_cache, const int* query_to_seq, const int* positions,
                       const int* block_tables, int T, int Hq, int Hkv, int D, int q_stride, int max_blocks, int block_size,
                       float scale_log2, const DecodeScratch& scratch, int target_blocks, int fresh, bool prefill, bool overlap,
                       cudaStream_t stream) {
  if (T == 0) return cudaSuccess;
  const auto [chunks, splits] = decode_grid(T, Hq, Hkv, D, scratch, target_blocks);
  const size_t shared = DecodeShape<DMAX>::shared_bytes(D);
  auto* kernel = decode_mma_kernel<DMAX>;
  // over 48 KiB of dynamic shared memory needs an opt-in (set at every launch: per device)
  if (cudaError_t error = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)shared)) return error;
  const cudaError_t error =
      launch_kernel(kernel, dim3(T, Hkv, chunks * splits), dim3(kThreads), shared, stream, overlap, out, Splits{scratch.part, splits}, q,
                    k_cache, v_cache, query_to_seq, positions, block_tables, T, Hq, Hkv, D, q_stride, max_blocks, block_size, scale_log2,
                    fresh, prefill);
  if (error != cudaSuccess || splits == 1) return error;
  return launch_kernel(merge_kernel, dim3(T, Hq), dim3(32), 0, stream, overlap, out, Splits{scratch.part, splits}, query_to_seq, T, Hq, D,
                       prefill);
}

}  // namespace tsr::attention
