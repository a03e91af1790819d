// The tensor-core path of paged attention (head dimensions that are multiples of 16): what
// the prefill and decode kernels share. A warp owns 16 query rows (the M of mma.m16n8k16) and
// folds K/V tiles into them FlashAttention-2 style; the block streams the tiles, gathered from
// the paged cache, through shared memory with cp.async.
//
// - Fragments. S = Q K^T and O += P V are mma.sync.m16n8k16 in bf16 with f32 accumulation.
//   Q (row-major A) and K (the "col" B: a key's dimensions are contiguous) come in through
//   ldmatrix, V through ldmatrix.trans (a dimension's keys are a column of the tile). The C
//   fragment gives lane l rows l/4 and l/4 + 8, columns 2(l%4) and 2(l%4) + 1 of each 8-column
//   tile: each lane keeps the running max and sum of its two rows, the four lanes of a row
//   reduce with two shuffles, and S's C fragments are P's A fragments with no data movement.
// - Precision. Scores, max, sum and O are f32; q . k is exact products summed in f32, scaled
//   by scale * log2(e) in f32, so each exponential is one ex2. P is rounded to bf16 for the
//   P.V mma; by default its rounding residue goes through a second mma (P = hi + lo, both
//   bf16), which keeps P.V at f32 accuracy (2^-16 relative in p): half as many mma again, on
//   the same shared-memory fragments. The hi-only variant (FlashAttention's own rounding: up to
//   2^-8 |v| per output element, about 2^-9 |v| / sqrt(keys attended) typically) is selected
//   for prefill with TSR_ATTENTION_P_BF16=1 (attention.cu) where the speed matters more;
//   decode always splits, its mma being idle time beside the memory stream.
// - Shared memory. Rows of D bf16 are padded by 16 bytes: for D a multiple of 16 the row pitch
//   is an odd number of 16-byte units, so the 8 rows an ldmatrix reads, and the 8 rows a
//   quarter-warp's cp.async writes, fall in 8 different bank groups without a swizzle.
// - Keys past the sequence are zero-filled by cp.async (source size 0): the cache beyond it
//   may hold NaN patterns, and p = 0 times NaN would still be NaN. Scores of keys after a
//   row's position are -inf before the max, so they weigh exactly 0.
// - Head dimensions are compiled for a maximum (64, 128, 256): the fragments are sized for it
//   and the steps past the runtime D are skipped, uniformly across the warp.
#pragma once

#include <climits>
#include <cstdint>

#include "attention_common.cuh"

namespace tsr::attention::mma {

constexpr int kRows = 16;  // query rows of a warp: the M of m16n8k16
static_assert(kPrefillTokens == kRows, "a prefill tile is one warp's rows");

// Row pitch in shared memory, in bytes: D bf16 and 16 bytes of padding (see above).
__host__ __device__ inline int pitch_bytes(int D) { return (D + 8) * (int)sizeof(bf16); }

// ---- PTX ----

using tsr::shared_address;

// 16 bytes global -> shared, asynchronously; zeros instead where !copy (nothing is read then)
__device__ __forceinline__ void cp_async_16(uint32_t dst, const void* src, bool copy) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(copy ? 16 : 0) : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
// waits until at most `pending` of this thread's committed groups are still in flight
template <int pending>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(pending) : "memory");
}

__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], uint32_t address) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(address));
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], uint32_t address) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(address));
}

// c += a * b: a 16x16 (row), b 16x8 (col), c 16x8 f32
__device__ __forceinline__ void mma_bf16(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// two f32 -> bf16x2, rounded to nearest even; `lo` in the low half (the lower column)
__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
  uint32_t packed;
  asm("cvt.rn.bf16x2.f32 %0, %1, %2;\n" : "=r"(packed) : "f"(hi), "f"(lo));
  return packed;
}
__device__ __forceinline__ float low_bf16(uint32_t packed) { return __uint_as_float(packed << 16); }
__device__ __forceinline__ float high_bf16(uint32_t packed) { return __uint_as_float(packed & 0xffff0000u); }

// 2^x; 2^-inf = 0
__device__ __forceinline__ float fast_exp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

// ---- K/V tiles ----

// Gathers tiles of KEYS keys of one kv head from the paged cache into shared memory. A key's
// row of one head is D contiguous bf16 (then the other heads' rows of that slot), so the loads
// go a whole row per instruction: kThreadsPerKey consecutive lanes copy one key's row, 16 bytes
// each, and a warp instruction covers kKeysPerPass whole rows (full 128-byte lines). Lanes that
// each took one 16-byte column of many keys instead (the first version) asked L2 for one sector
// of a line at a time, and decode attention streamed at 1.2-2.0 TB/s.
//
// Each warp copies the same KEYS / kWarps keys of every tile; lane e of the warp reads the block
// table entry of the warp's e-th key a tile ahead (its latency hides behind the current tile's
// math), and the lanes that copy that key take it with a shuffle.
template <int KEYS, int DMAX>
struct KvTileLoader {
  static constexpr int kChunksPerRow = DMAX / 8;  // 16-byte chunks of a row at the largest D
  static constexpr int kThreadsPerKey = kChunksPerRow < 32 ? kChunksPerRow : 32;
  static constexpr int kKeysPerWarpPass = 32 / kThreadsPerKey;
  static constexpr int kKeysPerPass = kWarps * kKeysPerWarpPass;
  static constexpr int kPasses = KEYS / kKeysPerPass;
  static constexpr int kKeysPerWarp = KEYS / kWarps;
  static constexpr int kChunksPerThread = kChunksPerRow / kThreadsPerKey;
  static_assert(KEYS % kKeysPerPass == 0 && kKeysPerWarp <= 32, "whole passes; one table entry per lane");

  const bf16* k_head;  // K of kv head g in slot 0; slot s is slot_elements further per slot
  const bf16* v_head;
  const int* table;
  size_t slot_elements;  // Hkv * D
  int block_size, D, n_keys;
  int first_key;    // this lane's key in pass 0; pass p adds p * kKeysPerPass
  int chunk;        // its first 16-byte chunk of the key's row; then every kThreadsPerKey-th
  int owned_key;    // the key whose block table entry this lane reads (lanes < kKeysPerWarp)
  int next_block;   // that entry for the next tile to load
  int next_offset;  // and that key's slot within its block

  __device__ KvTileLoader(const bf16* k_cache, const bf16* v_cache, const int* table, int block_size, int Hkv, int g, int D,
                          int n_keys)
      : k_head(k_cache + (size_t)g * D),
        v_head(v_cache + (size_t)g * D),
        table(table),
        slot_elements((size_t)Hkv * D),
        block_size(block_size),
        D(D),
        n_keys(n_keys) {
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    first_key = warp * kKeysPerWarpPass + lane / kThreadsPerKey;
    chunk = lane % kThreadsPerKey;
    // the warp's e-th key is in pass e / kKeysPerWarpPass, at e % kKeysPerWarpPass of its lanes
    owned_key = warp * kKeysPerWarpPass + lane % kKeysPerWarpPass + lane / kKeysPerWarpPass * kKeysPerPass;
    next_block = next_offset = 0;
  }

  // the owner lanes' divisions by block_size, one a tile, so the copying lanes need none
  __device__ __forceinline__ void prefetch(int j0) {
    const int j = j0 + owned_key;
    const bool owner = threadIdx.x % 32 < kKeysPerWarp && j < n_keys;
    const int entry = j / block_size;
    next_offset = j - entry * block_size;
    next_block = owner ? table[entry] : 0;
  }

  // keys [j0, j0 + KEYS) into the K and V tiles at sK, sV (shared addresses); zeros past n_keys.
  // Keys in [skip_from, n_keys) are not copied (load_keys brings them later).
  __device__ __forceinline__ void load(uint32_t sK, uint32_t sV, int pitch, int j0, int skip_from = INT_MAX) {
    const int lane = threadIdx.x % 32;
#pragma unroll
    for (int p = 0; p < kPasses; ++p) {
      const int key = first_key + p * kKeysPerPass;
      const int owner = p * kKeysPerWarpPass + lane / kThreadsPerKey;
      const int block = __shfl_sync(kFullWarp, next_block, owner);
      const int offset = __shfl_sync(kFullWarp, next_offset, owner);
      const bool valid = j0 + key < n_keys;
      if (valid && j0 + key >= skip_from) continue;
      const size_t at = valid ? ((size_t)block * block_size + offset) * slot_elements : 0;
      const uint32_t row = (uint32_t)(key * pitch);
#pragma unroll
      for (int i = 0; i < kChunksPerThread; ++i) {
        const int c = chunk + i * kThreadsPerKey;
        if (c < D / 8) {
          cp_async_16(sK + row + c * 16, k_head + at + c * 8, valid);
          cp_async_16(sV + row + c * 16, v_head + at + c * 8, valid);
        }
      }
    }
    prefetch(j0 + KEYS);
  }

  // keys [from, to) of the tile at j0 (j0 <= from, to <= min(j0 + KEYS, n_keys)), each looked up
  // in the block table by the lanes that copy it: the few keys `load` skipped
  __device__ __forceinline__ void load_keys(uint32_t sK, uint32_t sV, int pitch, int j0, int from, int to) {
    const int chunks = D / 8;
    for (int e = threadIdx.x; e < (to - from) * chunks; e += kThreads) {
      const int j = from + e / chunks, c = e % chunks;
      const int entry = j / block_size;
      const size_t at = ((size_t)table[entry] * block_size + (j - entry * block_size)) * slot_elements;
      const uint32_t row = (uint32_t)((j - j0) * pitch);
      cp_async_16(sK + row + c * 16, k_head + at + c * 8, true);
      cp_async_16(sV + row + c * 16, v_head + at + c * 8, true);
    }
  }
};

// STAGES shared-memory stages of (K tile, V tile): tile i + STAGES - 1 is in flight while the
// warps work on tile i. One barrier per tile: after it, tile i has landed for every thread and
// every warp is done with tile i - 1, whose stage the next copy reuses.
template <int KEYS, int DMAX, int STAGES>
struct KvPipeline {
  static_assert(STAGES >= 2, "double buffering at least");
  KvTileLoader<KEYS, DMAX> loader;
  uint32_t stages;  // shared address of stage 0: K tile, then V tile, KEYS rows of `pitch` each
  int pitch;

  static __host__ __device__ int stage_bytes(int pitch) { return 2 * KEYS * pitch; }
  static __host__ __device__ int bytes(int pitch) { return STAGES * stage_bytes(pitch); }

  __device__ uint32_t k_tile(int stage) const { return stages + stage * stage_bytes(pitch); }
  __device__ uint32_t v_tile(int stage) const { return k_tile(stage) + KEYS * pitch; }

  // issues tiles [begin, begin + STAGES - 1): one commit group each, empty past `end`
  __device__ __forceinline__ void prologue(int begin, int end) {
    loader.prefetch(begin * KEYS);
#pragma unroll
    for (int s = 0; s < STAGES - 1; ++s) {
      if (begin + s < end) loader.load(k_tile(s), v_tile(s), pitch, (begin + s) * KEYS);
      cp_async_commit();
    }
  }

  // The prologue in two parts, for a kernel launched before the kernel it depends on has ended:
  // prologue_kept before it waits, which leaves out the keys from fresh_from on (the ones that
  // kernel may still be writing), then prologue_fresh, which brings those. One commit group each
  // tile, then one for the fresh keys.
  __device__ __forceinline__ void prologue_kept(int begin, int end, int fresh_from) {
    loader.prefetch(begin * KEYS);
#pragma unroll
    for (int s = 0; s < STAGES - 1; ++s) {
      if (begin + s < end) loader.load(k_tile(s), v_tile(s), pitch, (begin + s) * KEYS, fresh_from);
      cp_async_commit();
    }
  }
  __device__ __forceinline__ void prologue_fresh(int begin, int end, int fresh_from) {
#pragma unroll
    for (int s = 0; s < STAGES - 1; ++s) {
      const int j0 = (begin + s) * KEYS, from = max(j0, fresh_from), to = min(j0 + KEYS, loader.n_keys);
      if (begin + s < end && from < to) loader.load_keys(k_tile(s), v_tile(s), pitch, j0, from, to);
    }
    cp_async_commit();
  }

  // attend(sK, sV, j0) for tiles [begin, end) in order; every thread of the block must call
  // this (barriers), and must __syncthreads() before reusing the stages afterwards
  template <class Attend>
  __device__ __forceinline__ void run(int begin, int end, Attend&& attend) {
    int read = 0, write = STAGES - 1;
    for (int tile = begin; tile < end; ++tile) {
      cp_async_wait<STAGES - 2>();
      __syncthreads();
      if (tile + STAGES - 1 < end) loader.load(k_tile(write), v_tile(write), pitch, (tile + STAGES - 1) * KEYS);
      cp_async_commit();
      attend(k_tile(read), v_tile(read), tile * KEYS);
      read = read + 1 == STAGES ? 0 : read + 1;
      write = write + 1 == STAGES ? 0 : write + 1;
    }
    cp_async_wait<0>();
  }
};

// `rows` query rows of D into shared memory at sQ: row r from `source(r)`, zeros where that is
// null (`any` is then the unread source address). One commit group.
template <class Source>
__device__ __forceinline__ void load_rows(uint32_t sQ, int pitch, int rows, int D, const bf16* any, Source&& source) {
  const int chunks = D / 8;
  for (int e = threadIdx.x; e < rows * chunks; e += kThreads) {
    const int r = e / chunks, chunk = e % chunks;
    const bf16* row = source(r);
    cp_async_16(sQ + r * pitch + chunk * 16, row != nullptr ? row + chunk * 8 : any, row != nullptr);
  }
  cp_async_commit();
}

// ---- one warp's 16 rows ----

// The online softmax state of a warp's 16 query rows and the folding of key tiles into it.
// KEY_TILES: 8-key column tiles per call (even); Q_IN_REGISTERS: Q's A fragments are loaded
// once (load_q) rather than from shared memory at every tile, where registers allow.
template <int DMAX, int KEY_TILES, bool Q_IN_REGISTERS>
struct WarpRows {
  static constexpr int kDimTiles = DMAX / 8;   // 8-column tiles of O
  static constexpr int kDimSteps = DMAX / 16;  // 16-deep k-steps of Q K^T
  static_assert(KEY_TILES % 2 == 0 && DMAX % 16 == 0, "pairs of 8-key tiles, 16-deep steps");

  float o[kDimTiles][4];  // sum over keys of p * v (C fragments), not yet divided by `sum`
  float max[2];           // running max of rows lane/4 and lane/4 + 8 (base 2)
  float sum[2];           // this lane's part of their running sums (finish() adds the quad's)
  uint32_t q[Q_IN_REGISTERS ? kDimSteps : 1][4];

  __device__ __forceinline__ void start() {
#pragma unroll
    for (int i = 0; i < kDimTiles; ++i) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.f;
    max[0] = max[1] = -kInfinity;
    sum[0] = sum[1] = 0.f;
  }

  // lane's ldmatrix row address for a 16x16 A tile (Q rows) or an x4.trans V tile: matrices
  // (rows 0-7, cols 0-7), (rows 8-15, cols 0-7), (rows 0-7, cols 8-15), (rows 8-15, cols 8-15)
  static __device__ __forceinline__ uint32_t a_lane(int pitch) {
    const int lane = threadIdx.x % 32;
    return (uint32_t)((lane % 16) * pitch + (lane / 16) * 16);
  }
  // lane's ldmatrix row address for two K n-tiles: matrices (keys 0-7, dims 0-7),
  // (keys 0-7, dims 8-15), (keys 8-15, dims 0-7), (keys 8-15, dims 8-15) = b0, b1 of each
  static __device__ __forceinline__ uint32_t k_lane(int pitch) {
    const int lane = threadIdx.x % 32;
    return (uint32_t)(((lane / 16) * 8 + lane % 8) * pitch + ((lane / 8) % 2) * 16);
  }

  // Q's A fragments from the warp's 16 rows at sQ
  __device__ __forceinline__ void load_q(uint32_t sQ, int pitch, int D) {
    if constexpr (Q_IN_REGISTERS) {
#pragma unroll
      for (int kk = 0; kk < kDimSteps; ++kk) {
        if (kk * 16 < D) ldmatrix_x4(q[kk], sQ + a_lane(pitch) + kk * 32);
      }
    }
  }

  // Folds keys [key0, key0 + 8 KEY_TILES) of the tile at sK/sV (key0 within the tile; j0 the
  // tile's first key in the sequence). last0/last1: the positions of rows lane/4, lane/4 + 8;
  // masked: whether any key here is after some row's position (uniform across the warp).
  template <bool SPLIT_P>
  __device__ __forceinline__ void attend(uint32_t sQ, uint32_t sK, uint32_t sV, int pitch, int D, int key0, int j0, int last0,
                                         int last1, bool masked, float scale_log2) {
    const int lane = threadIdx.x % 32;
    float s[KEY_TILES][4];
#pragma unroll
    for (int n = 0; n < KEY_TILES; ++n) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.f;

    // S = Q K^T
    const uint32_t k_rows = sK + key0 * pitch + k_lane(pitch);
#pragma unroll
    for (int kk = 0; kk < kDimSteps; ++kk) {
      if (kk * 16 >= D) break;
      uint32_t a[4];
      if constexpr (Q_IN_REGISTERS) {
        a[0] = q[kk][0], a[1] = q[kk][1], a[2] = q[kk][2], a[3] = q[kk][3];
      } else {
        ldmatrix_x4(a, sQ + a_lane(pitch) + kk * 32);
      }
#pragma unroll
      for (int n = 0; n < KEY_TILES; n += 2) {
        uint32_t b[4];
        ldmatrix_x4(b, k_rows + n * 8 * pitch + kk * 32);
        mma_bf16(s[n], a, b[0], b[1]);
        mma_bf16(s[n + 1], a, b[2], b[3]);
      }
    }

    // base-2 scores; keys after a row's position (and past the sequence) weigh nothing
    const int column = j0 + key0 + 2 * (lane % 4);
#pragma unroll
    for (int n = 0; n < KEY_TILES; ++n) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        float score = s[n][e] * scale_log2;
        if (masked && column + n * 8 + (e & 1) > (e < 2 ? last0 : last1)) score = -kInfinity;
        s[n][e] = score;
      }
    }

    // online softmax: new running max per row (its quad's), rescale what came before
    float tile_max[2] = {-kInfinity, -kInfinity};
#pragma unroll
    for (int n = 0; n < KEY_TILES; ++n) {
      tile_max[0] = fmaxf(tile_max[0], fmaxf(s[n][0], s[n][1]));
      tile_max[1] = fmaxf(tile_max[1], fmaxf(s[n][2], s[n][3]));
    }
    float base[2], rescale[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      tile_max[r] = fmaxf(tile_max[r], __shfl_xor_sync(kFullWarp, tile_max[r], 1));
      tile_max[r] = fmaxf(tile_max[r], __shfl_xor_sync(kFullWarp, tile_max[r], 2));
      const float new_max = fmaxf(max[r], tile_max[r]);
      // a row with no key yet keeps max -inf; subtracting 0 then keeps every exponent -inf
      // (p = 0, rescale = 0) where -inf - -inf would be NaN
      base[r] = new_max == -kInfinity ? 0.f : new_max;
      rescale[r] = fast_exp2(max[r] - base[r]);
      max[r] = new_max;
    }
    float tile_sum[2] = {0.f, 0.f};
#pragma unroll
    for (int n = 0; n < KEY_TILES; ++n) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        s[n][e] = fast_exp2(s[n][e] - base[e / 2]);
        tile_sum[e / 2] += s[n][e];
      }
    }
#pragma unroll
    for (int r = 0; r < 2; ++r) sum[r] = sum[r] * rescale[r] + tile_sum[r];
#pragma unroll
    for (int i = 0; i < kDimTiles; ++i) {
      o[i][0] *= rescale[0], o[i][1] *= rescale[0];
      o[i][2] *= rescale[1], o[i][3] *= rescale[1];
    }

    // O += P V: S's C fragments of 8-key tiles n, n + 1 are P's A fragment of 16 keys
    const uint32_t v_rows = sV + key0 * pitch + a_lane(pitch);
#pragma unroll
    for (int n = 0; n < KEY_TILES; n += 2) {
      uint32_t p[4], p_lo[4];
      p[0] = pack_bf16(s[n][0], s[n][1]);
      p[1] = pack_bf16(s[n][2], s[n][3]);
      p[2] = pack_bf16(s[n + 1][0], s[n + 1][1]);
      p[3] = pack_bf16(s[n + 1][2], s[n + 1][3]);
      if constexpr (SPLIT_P) {
        p_lo[0] = pack_bf16(s[n][0] - low_bf16(p[0]), s[n][1] - high_bf16(p[0]));
        p_lo[1] = pack_bf16(s[n][2] - low_bf16(p[1]), s[n][3] - high_bf16(p[1]));
        p_lo[2] = pack_bf16(s[n + 1][0] - low_bf16(p[2]), s[n + 1][1] - high_bf16(p[2]));
        p_lo[3] = pack_bf16(s[n + 1][2] - low_bf16(p[3]), s[n + 1][3] - high_bf16(p[3]));
      }
#pragma unroll
      for (int i = 0; i < kDimTiles; i += 2) {
        if (i * 8 >= D) break;
        uint32_t b[4];  // b0, b1 of dimension tiles i and i + 1
        ldmatrix_x4_trans(b, v_rows + n * 8 * pitch + i * 16);
        mma_bf16(o[i], p, b[0], b[1]);
        mma_bf16(o[i + 1], p, b[2], b[3]);
        if constexpr (SPLIT_P) {
          mma_bf16(o[i], p_lo, b[0], b[1]);
          mma_bf16(o[i + 1], p_lo, b[2], b[3]);
        }
      }
    }
  }

  // the quad's sums: every lane of a row then holds the row's total
  __device__ __forceinline__ void finish() {
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      sum[r] += __shfl_xor_sync(kFullWarp, sum[r], 1);
      sum[r] += __shfl_xor_sync(kFullWarp, sum[r], 2);
    }
  }

  // out[row] = O / sum (0 for a row with no key) for rows lane/4 + 8r, as bf16 pairs; after finish()
  __device__ __forceinline__ void store(bf16* row0, bf16* row1, int D) const {
    const int lane = threadIdx.x % 32;
    bf16* rows[2] = {row0, row1};
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const float inv_sum = sum[r] > 0.f ? 1.f / sum[r] : 0.f;
#pragma unroll
      for (int i = 0; i < kDimTiles; ++i) {
        if (i * 8 >= D) break;
        *reinterpret_cast<uint32_t*>(rows[r] + i * 8 + 2 * (lane % 4)) = pack_bf16(o[i][2 * r] * inv_sum, o[i][2 * r + 1] * inv_sum);
      }
    }
  }
};

}  // namespace tsr::attention::mma
