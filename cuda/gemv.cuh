// Skinny GEMM for decode: out[M,N] = x[M,K] @ w[N,K]^T for a few rows of x (M <= kGemvMaxRows).
//
// At decode sizes a linear layer is a stream over its weights (each weight is used M times), so
// its time is the time to read w from HBM once. cuBLAS's tiles are built for large M and leave
// bandwidth unused at M = 1 (68% of the copy bandwidth on H100 for 4096 x 4096, bench/results).
// This kernel is built around the stream:
//
// - w is read once, in 16-byte loads that skip L1 (ld.global.nc.L1::no_allocate: nothing reads a
//   weight twice), 8 KB per warp in flight, issued a stage ahead of the math; persistent blocks
//   (one per SM) carry that stream from one block of rows to the next without draining it.
//   gemv_bulk_kernel (below) brings the same stages by bulk copies instead, two in flight a warp,
//   where x fits beside them: faster on H200, the same bits.
// - x is staged in shared memory with cp.async: once per block when it fits, else in two
//   alternating tiles along K.
// - The products run on tensor cores (mma.sync m16n8k16, bf16 in, f32 accumulate) with the
//   weights as the 16-row A operand and x as the 8-column B operand ("swap AB"): one mma covers
//   up to 8 rows of x, so M = 1..8 all cost what M = 1 does. On CUDA cores, M = 8 would need
//   ~40% of the SM's f32 FMA rate plus the bf16 unpacking just to keep pace with HBM.
// - Each thread loads 8 consecutive k of a weight row in one 16-byte load. The k order inside an
//   mma does not matter to a sum, so the thread puts its 8 values in the 4 + 4 fragment slots it
//   owns in two mmas and reads x at the same 8 k: no shuffles, no ldmatrix.
//
// Determinism and batch invariance. The sum for out[m, n] is a fixed sequence that depends on K
// alone: warp s of a 16-row tile's kKSplit warps takes the k-stages s, s + kKSplit, ..., one mma
// after another in k order; the splits' partial sums are then added in split order through shared
// memory (no atomics). A tensor-core mma computes each output column from that column's operands
// only, so row m of the result is the same bits whatever the other rows of x hold and whatever M
// is (1..16), and the vector and scalar load paths give the same bits too.
#pragma once

#include <atomic>
#include <cstdint>

#include "common.cuh"

namespace tsr {

// the most rows of x one launch takes: two 8-column mma tiles
constexpr int kGemvMaxRows = 16;

// How a GEMV is launched: a persistent grid of one block per SM (sm_count); with `overlap`, as a
// programmatic dependent of the kernel before it on `stream` (its first weights load while that
// kernel finishes: see allow_dependents).
struct GemvLaunch {
  int sm_count;
  bool overlap;
  cudaStream_t stream;
  // weights of at least this many bytes take the bulk GEMV's deeper ring where x fits beside it
  size_t deep_bytes = SIZE_MAX;
};

// Internal linkage: the library and a tool that includes this header (gemm_bench) each keep their
// own kernels. With external linkage the dynamic linker binds the library's references to the
// tool's template instances, and the library's cudaFuncSetAttribute then names a kernel its own
// module never registered (cudaErrorInvalidValue).
namespace gemv {
namespace {

constexpr int kWarps = 8;
constexpr int kThreads = kWarps * 32;
// Warps that share one 16-row tile, each taking every kKSplit-th stage of K; their partial sums
// are added in a fixed order. Part of the reduction order, as kStageSteps is: changing either
// changes the bits (but never between values of M). All 8 warps of a block on one tile keep row
// blocks at 16 rows: a 6144-row qkv is 384 of them, 2.9 per SM (97% of the last wave busy),
// where 32-row blocks were 1.45 per SM and left the GEMV at 73% of the copy bandwidth.
constexpr int kKSplit = 8;
constexpr int kRowsPerTile = 16;                                  // the mma's M
constexpr int kRowsPerBlock = kRowsPerTile * (kWarps / kKSplit);  // 16: a row block
constexpr int kChunk = 8;                                         // bf16 per 16-byte load
constexpr int kStepK = 32;                                        // k per step: 4 threads x 8
// k32 steps per stage. A warp's loads for one stage, 16 rows x 512 bytes (four whole 128-byte
// lines per row), are in flight together, and the next stage's are issued before this one's mmas:
// 8 KB per warp, 64 KB per SM. Little's law wants about 3 TB/s x ~1 us = 3 MB in flight, 23 KB
// per SM, so a 4096-row layer (128 row blocks: 128 SMs busy) still has ~2.7x that.
constexpr int kStageSteps = 8;
constexpr int kStageK = kStepK * kStageSteps;                     // 256
constexpr int kRoundK = kStageK * kKSplit;                        // 2048: one stage of every split
constexpr int kRoundChunks = kRoundK / kChunk;                    // 256
// The two stage buffers are 128 registers a thread (~180 in all), so one block of 8 warps fits an
// SM: the grid is persistent, one block per SM, each keeping its stream going from one row block
// to the next (a fresh block would start with nothing in flight).
constexpr int kBlocksPerSm = 1;
// a row of x in shared memory is padded by 64 bytes so that the two rows one quarter-warp reads
// (4 threads per row, 16 bytes each) fall in different banks
constexpr int kRowPadChunks = 4;
// Dynamic shared memory for x (one block per SM leaves the SM's 228 KB to it): up to this much
// holds all of K in one tile (M = 8: K <= 10240), staged once per block; past it, two tiles of up
// to half of it alternate, refilled for each row block.
constexpr int kMaxSharedBytes = 192 << 10;

// ---- kernels ----

// 16 bytes of weights, read once: not kept in L1
__device__ __forceinline__ uint4 load_streaming(const bf16* p) {
  uint4 v;
  asm("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];" : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "l"(p));
  return v;
}

// bf16 elements k..k+7 of `row` packed as one 16-byte chunk, those at or past K zero: for rows
// that are not 16-byte aligned (K % 8 != 0, or an offset pointer)
__device__ __forceinline__ uint4 load_chunk_scalar(const bf16* row, int k, int K) {
  const unsigned short* bits = reinterpret_cast<const unsigned short*>(row);
  unsigned e[kChunk];
#pragma unroll
  for (int i = 0; i < kChunk; ++i) e[i] = k + i < K ? __ldg(bits + k + i) : 0u;
  return make_uint4(e[0] | e[1] << 16, e[2] | e[3] << 16, e[4] | e[5] << 16, e[6] | e[7] << 16);
}

// chunk `chunk` (elements 8 chunk .. 8 chunk + 7) of a row of K elements; zero past the row
template <bool VECTOR>
__device__ __forceinline__ uint4 load_chunk(const bf16* row, int chunk, int chunks, int K) {
  if (chunk >= chunks) return make_uint4(0, 0, 0, 0);
  if constexpr (VECTOR) return load_streaming(row + (size_t)chunk * kChunk);
  else return load_chunk_scalar(row, chunk * kChunk, K);
}

__device__ __forceinline__ void cp_async_16(void* shared, const void* global) {
  const unsigned address = shared_address(shared);
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(address), "l"(global) : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int PENDING>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(PENDING) : "memory");
}

// d += a (16 x 16, bf16) * b (16 x 8, bf16), f32 accumulators; fragment layouts as the PTX ISA's
// "Matrix Fragments for mma.m16n8k16 with floating point type"
__device__ __forceinline__ void mma_16x8x16(float (&d)[4], unsigned a0, unsigned a1, unsigned a2, unsigned a3, unsigned b0,
                                            unsigned b1) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

// One k32 step of a 16-row tile against one 8-row tile of x, as two m16n8k16 mmas. Thread
// (group g = lane / 4, t = lane % 4) holds 8 consecutive k (8t .. 8t + 7 of the step) of weight
// rows g and g + 8 (lo, hi) and of x row g (x8). The mma's fragment slots for this thread are
// k = 2t, 2t + 1, 2t + 8, 2t + 9 in both A and B, so the first mma gets the thread's k 0..3 and
// the second its k 4..7: every product w[n, k] x[m, k] of the step is made exactly once.
__device__ __forceinline__ void mma_step(float (&acc)[4], uint4 lo, uint4 hi, uint4 x8) {
  mma_16x8x16(acc, lo.x, hi.x, lo.y, hi.y, x8.x, x8.y);
  mma_16x8x16(acc, lo.z, hi.z, lo.w, hi.w, x8.z, x8.w);
}

// Rows 0..M-1 of x, chunks [first, first + tile_chunks), into a shared tile of row stride
// `stride` chunks; chunks past K zero. Only the M real rows are stored: the mma's B columns for
// rows >= M are zeros made in registers.
template <bool VECTOR>
__device__ __forceinline__ void stage_x(uint4* tile, const bf16* x, int M, int K, int chunks, int first, int tile_chunks, int stride) {
  for (int m = 0; m < M; ++m) {
    const bf16* row = x + (size_t)m * K;
    for (int i = threadIdx.x; i < tile_chunks; i += kThreads) {
      const int c = first + i;
      if constexpr (VECTOR) {
        if (c < chunks) cp_async_16(&tile[m * stride + i], row + (size_t)c * kChunk);
        else tile[m * stride + i] = make_uint4(0, 0, 0, 0);
      } else {
        tile[m * stride + i] = c < chunks ? load_chunk_scalar(row, c * kChunk, K) : make_uint4(0, 0, 0, 0);
      }
    }
  }
}

// A plain GEMV's rows: row block rb is rows 16 rb .. 16 rb + 15 of w, its sums go to out[M, N].
struct StoreRows {
  bf16* out;
  int N;
  // the weight row that tile row i (0..15) of row block rb multiplies
  __device__ int row(int rb, int i) const { return min(rb * kRowsPerBlock + i, N - 1); }
  // shared memory past x that the stores use (none here), and its filling: called once by every
  // thread, before the kernel waits for the kernel before it
  __host__ __device__ size_t shared_bytes(int) const { return 0; }
  __device__ void prepare(unsigned char*, int) {}
  // tile rows g and g + 8 of row block rb, for x row m, rounded
  __device__ void store(int rb, int g, int m, bf16 lo, bf16 hi) const {
    const int n = rb * kRowsPerBlock + g;
    if (n < N) out[(size_t)m * N + n] = lo;
    if (n + 8 < N) out[(size_t)m * N + n + 8] = hi;
  }
};

// the two bf16 of a 32-bit word as floats (the element at the lower address first), and two floats
// rounded into one
__device__ __forceinline__ float lo_of(unsigned u) { return __uint_as_float(u << 16); }
__device__ __forceinline__ float hi_of(unsigned u) { return __uint_as_float(u & 0xffff0000u); }
__device__ __forceinline__ unsigned pack_bf16(float lo, float hi) {
  const __nv_bfloat162 pair = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<const unsigned*>(&pair);
}

// What a GEMV multiplies, staged in shared memory once the kernel before it is done. PlainInput:
// x as it is, copied with cp.async.
struct PlainInput {
  const bf16* x;
  static constexpr bool kScaled = false;  // the sums are stored as they are
  __host__ __device__ size_t shared_bytes(int) const { return 0; }
  __device__ void prepare(unsigned char*, int) {}
  // rows 0..M-1 of x into `tile` (row stride `stride` chunks), zeros past K, in flight as one cp.async group
  __device__ void stage(uint4* tile, int stride, int M, int K) const {
    const int chunks = K / kChunk;
    for (int m = 0; m < M; ++m) {
      for (int c = threadIdx.x; c < stride; c += kThreads) {
        if (c < chunks) cp_async_16(&tile[m * stride + c], x + (size_t)m * K + (size_t)c * kChunk);
        else tile[m * stride + c] = make_uint4(0, 0, 0, 0);
      }
    }
    cp_async_commit();
  }
  __device__ float scale(int, int) const { return 1.f; }
};

// The rows of x a projection after a pre-norm multiplies (add_rmsnorm, then the GEMV), made by
// every block as it stages them:
//   r = (accumulate ? residual_in : 0) + pending;  tile = bf16(r * weight);  sums *= 1 / rms(r).
// A row's sums are linear in its x, so the norm's 1 / rms(r) can multiply them as they are stored
// instead of every x before the products: no block waits for a reduction over K before its first
// mma. It is add_rmsnorm's result up to where one bf16 rounding falls (the kernel rounds r * weight,
// the norm rounds r * weight / rms(r)). Each block also stores its share of r (chunks c with
// c mod gridDim.x == blockIdx.x) in residual_out, which must not be residual_in: the other blocks
// still read that. A row's sum of squares is a fixed sequence (each thread's chunks in order, then
// the warp's butterfly, then the warps in order), whatever M and the grid are.
// The most rows it takes: all their loads in flight together, two chunks a thread at a time (at 8
// rows, two passes of 4 waited out L2 twice and made batch 8 2.1% slower on H200).
constexpr int kNormedRows = 4;
struct NormedResidualInput {
  const float* residual_in;
  float* residual_out;
  const bf16* pending;
  const bf16* weight;
  float eps;
  int accumulate;
  float* squares = nullptr;       // [kNormedRows][kWarps] in shared memory: a row's sum of squares by warp
  uint4* weight_tile = nullptr;   // the norm's weight, [K / 8] chunks in shared memory

  static constexpr bool kScaled = true;
  __host__ __device__ size_t shared_bytes(int K) const { return kNormedRows * kWarps * sizeof(float) + (size_t)K * sizeof(bf16); }

  // the norm's weight (a weight, not an output of the kernels before) into shared memory: thread
  // i copies the chunks it multiplies in stage(), so it waits only for its own copies
  __device__ void prepare(unsigned char* shared, int K) {
    squares = reinterpret_cast<float*>(shared);
    weight_tile = reinterpret_cast<uint4*>(shared + kNormedRows * kWarps * sizeof(float));
    for (int c = threadIdx.x; c < K / kChunk; c += kThreads) cp_async_16(&weight_tile[c], weight + (size_t)c * kChunk);
    cp_async_commit();
  }

  // r's chunk c of row m made from the loaded values: into the tile, its squares added to `sq`,
  // and into residual_out where this block keeps it
  __device__ void make(uint4* tile, int stride, int m, int c, int K, const float4 (&r)[2], uint4 p, float& sq) const {
    const uint4 g = weight_tile[c];
    const float pv[8] = {lo_of(p.x), hi_of(p.x), lo_of(p.y), hi_of(p.y), lo_of(p.z), hi_of(p.z), lo_of(p.w), hi_of(p.w)};
    const float gv[8] = {lo_of(g.x), hi_of(g.x), lo_of(g.y), hi_of(g.y), lo_of(g.z), hi_of(g.z), lo_of(g.w), hi_of(g.w)};
    const float rv[8] = {r[0].x, r[0].y, r[0].z, r[0].w, r[1].x, r[1].y, r[1].z, r[1].w};
    float v[8];
    unsigned packed[4];
#pragma unroll
    for (int e = 0; e < 8; ++e) {
      v[e] = rv[e] + pv[e];
      sq += v[e] * v[e];
    }
#pragma unroll
    for (int e = 0; e < 4; ++e) packed[e] = pack_bf16(v[2 * e] * gv[2 * e], v[2 * e + 1] * gv[2 * e + 1]);
    tile[m * stride + c] = make_uint4(packed[0], packed[1], packed[2], packed[3]);
    if (c % (int)gridDim.x == (int)blockIdx.x) {
      float4* out = reinterpret_cast<float4*>(residual_out + (size_t)m * K + (size_t)c * kChunk);
      out[0] = make_float4(v[0], v[1], v[2], v[3]);
      out[1] = make_float4(v[4], v[5], v[6], v[7]);
    }
  }

  // rows 0..M-1 (M <= kNormedRows), each thread's chunks two at a time, every load of a step issued
  // before the first is used
  __device__ void stage(uint4* tile, int stride, int M, int K) const {
    const int chunks = K / kChunk;
    cp_async_wait<0>();  // this thread's chunks of the weight (prepare)
    for (int m = 0; m < M; ++m) {
      for (int c = chunks + threadIdx.x; c < stride; c += kThreads) tile[m * stride + c] = make_uint4(0, 0, 0, 0);
    }
    float sq[kNormedRows] = {};
    for (int c0 = threadIdx.x; c0 < chunks; c0 += 2 * kThreads) {
      float4 r[2][kNormedRows][2];
      uint4 p[2][kNormedRows];
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int c = c0 + h * kThreads;
#pragma unroll
        for (int m = 0; m < kNormedRows; ++m) {
          const bool live = c < chunks && m < M;
          const size_t at = (size_t)m * K + (size_t)c * kChunk;
          const float4* rin = reinterpret_cast<const float4*>(residual_in + at);
          r[h][m][0] = live && accumulate ? rin[0] : make_float4(0.f, 0.f, 0.f, 0.f);
          r[h][m][1] = live && accumulate ? rin[1] : make_float4(0.f, 0.f, 0.f, 0.f);
          p[h][m] = live ? *reinterpret_cast<const uint4*>(pending + at) : make_uint4(0, 0, 0, 0);
        }
      }
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int c = c0 + h * kThreads;
#pragma unroll
        for (int m = 0; m < kNormedRows; ++m) {
          if (c < chunks && m < M) make(tile, stride, m, c, K, r[h][m], p[h][m], sq[m]);
        }
      }
    }
#pragma unroll
    for (int m = 0; m < kNormedRows; ++m) {
      const float total = warp_sum(sq[m]);
      if ((threadIdx.x & 31) == 0 && m < M) squares[m * kWarps + (threadIdx.x >> 5)] = total;
    }
  }

  // 1 / rms of row m of K elements (after the block's barrier that follows stage)
  __device__ float scale(int m, int K) const {
    float total = squares[m * kWarps];
#pragma unroll
    for (int s = 1; s < kWarps; ++s) total += squares[m * kWarps + s];
    return rsqrtf(total / (float)K + eps);
  }
};

// A persistent block's stream of items: item i is row block blockIdx.x + (i / rounds) gridDim.x,
// round i % rounds of K; a warp's share of it (split s) is k in [k0, k0 + bytes / 2) of each of
// the row block's `rows` weight rows.
struct Piece {
  int rb, rows, k0, bytes;
  __device__ Piece(int item, int rounds, int split, int N, int K)
      : rb(blockIdx.x + (item / rounds) * gridDim.x),
        rows(min(kRowsPerTile, N - rb * kRowsPerBlock)),
        k0((item % rounds) * kRoundK + split * kStageK),
        bytes(2 * max(0, min(kStageK, K - k0))) {}
};

// A persistent block walks row blocks blockIdx.x, + gridDim.x, ...; a row block is kRowsPerBlock
// rows of w (kWarps / kKSplit 16-row tiles), each tile's K split over kKSplit warps. The weight loads run one
// stage ahead across row blocks too, so a block's stream never drains between them, and a single
// tile of x is staged once per block for all its row blocks.
// NT: 8-row tiles of x (M <= 8 NT). VECTOR: rows of w and x are 16-byte aligned (K % 8 == 0).
// tile_rounds: rounds of K (kRoundK each: one stage of every split) per shared tile of x.
template <int NT, bool VECTOR>
__global__ void __launch_bounds__(kThreads, kBlocksPerSm)
    gemv_kernel(bf16* __restrict__ out, const bf16* __restrict__ x, const bf16* __restrict__ w, int M, int N, int K, int tile_rounds) {
  extern __shared__ __align__(16) uint4 x_tiles[];
  __shared__ float partial[kWarps][NT * 4][32];
  allow_dependents();  // the kernel after it (a norm, or the next GEMV) may take SMs as this one's blocks finish

  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int g = lane >> 2, t = lane & 3;
  const int split = warp % kKSplit;
  const int tile_row = (warp / kKSplit) * kRowsPerTile;  // this warp's 16-row tile in its row block
  const int chunks = (K + kChunk - 1) / kChunk;
  const int rounds = (K + kRoundK - 1) / kRoundK;
  const int tiles = (rounds + tile_rounds - 1) / tile_rounds;
  const int tile_chunks = tile_rounds * kRoundChunks;
  const int stride = tile_chunks + kRowPadChunks;
  const int row_blocks = (N + kRowsPerBlock - 1) / kRowsPerBlock;
  // this thread's first chunk in round r is r * kRoundChunks + chunk_in_round (+ 4 per step)
  const int chunk_in_round = split * (kStageK / kChunk) + t;

  // this thread's part of (row block rb, round r): weight rows g and g + 8 of its tile; rows
  // past N read nothing (their chunk limit is 0) and are never stored
  uint4 next_lo[kStageSteps], next_hi[kStageSteps];
  auto load_stage = [&](int rb, int r) {
    const int n = rb * kRowsPerBlock + tile_row + g;
    const bf16* row_lo = w + (size_t)min(n, N - 1) * K;
    const bf16* row_hi = w + (size_t)min(n + 8, N - 1) * K;
    const int chunks_lo = n < N ? chunks : 0, chunks_hi = n + 8 < N ? chunks : 0;
#pragma unroll
    for (int s = 0; s < kStageSteps; ++s) {
      const int c = r * kRoundChunks + chunk_in_round + s * (kStepK / kChunk);
      next_lo[s] = load_chunk<VECTOR>(row_lo, c, chunks_lo, K);
      next_hi[s] = load_chunk<VECTOR>(row_hi, c, chunks_hi, K);
    }
  };
  auto stage_tile = [&](int tile, int buffer) {
    stage_x<VECTOR>(x_tiles + buffer * M * stride, x, M, K, chunks, tile * tile_chunks, tile_chunks, stride);
    cp_async_commit();
  };

  int rb = blockIdx.x;
  load_stage(rb, 0);  // weights only: in flight while the kernel before this one finishes
  wait_for_prerequisites();
  stage_tile(0, 0);
  int buffer = 0;     // the buffer of x_tiles that holds the tile used next
  for (; rb < row_blocks; rb += gridDim.x) {
    const int next_rb = rb + gridDim.x;
    float acc[NT][4] = {};
    int r = 0;  // round
    for (int tile = 0; tile < tiles; ++tile) {
      // the tile after this one into the other buffer: the next tile of K, or tile 0 again for
      // the next row block (a single tile stays where it is)
      if (tiles > 1 && (tile + 1 < tiles || next_rb < row_blocks)) {
        stage_tile((tile + 1) % tiles, buffer ^ 1);
        cp_async_wait<1>();
      } else {
        cp_async_wait<0>();
      }
      __syncthreads();  // this tile of x is in shared memory for every thread
      const uint4* x_tile = x_tiles + buffer * M * stride;
      const int round_end = min(rounds, (tile + 1) * tile_rounds);
      for (; r < round_end; ++r) {
        uint4 lo[kStageSteps], hi[kStageSteps];
#pragma unroll
        for (int s = 0; s < kStageSteps; ++s) lo[s] = next_lo[s], hi[s] = next_hi[s];
        // the next stage: this row block's next round, or the next row block's first
        const bool last_round = r + 1 == rounds;
        if (!last_round || next_rb < row_blocks) load_stage(last_round ? next_rb : rb, last_round ? 0 : r + 1);
        const int tile_chunk = (r - tile * tile_rounds) * kRoundChunks + chunk_in_round;
#pragma unroll
        for (int s = 0; s < kStageSteps; ++s) {
#pragma unroll
          for (int nt = 0; nt < NT; ++nt) {
            const int m = nt * 8 + g;
            const uint4 x8 = m < M ? x_tile[m * stride + tile_chunk + s * (kStepK / kChunk)] : make_uint4(0, 0, 0, 0);
            mma_step(acc[nt], lo[s], hi[s], x8);
          }
        }
      }
      __syncthreads();  // every warp is done with this tile before its buffer is refilled
      if (tiles > 1) buffer ^= 1;
    }

    // The splits' partial sums, added in split order by the tile's first warp. The next row
    // block writes `partial` only after its first __syncthreads, which these reads precede.
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) {
#pragma unroll
      for (int i = 0; i < 4; ++i) partial[warp][nt * 4 + i][lane] = acc[nt][i];
    }
    __syncthreads();
    if (split == 0) {
#pragma unroll
      for (int nt = 0; nt < NT; ++nt) {
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          float sum = partial[warp][nt * 4 + i][lane];
#pragma unroll
          for (int s = 1; s < kKSplit; ++s) sum += partial[warp + s][nt * 4 + i][lane];
          // accumulator i: weight row g (+ 8 for i >= 2) of the tile, x row 2t + (i & 1) of this 8-row tile
          const int n = rb * kRowsPerBlock + tile_row + g + (i >> 1) * 8, m = nt * 8 + 2 * t + (i & 1);
          if (n < N && m < M) out[(size_t)m * N + n] = round_bf16(sum);
        }
      }
    }
  }
}

// ---- the same GEMV with its weights brought by the tensor memory accelerator ----
//
// gemv_kernel's weight stream is one 16-byte load per thread and row piece, held in registers:
// a stage can be refilled only once it has landed, so one stage (64 KB an SM) is all that is in
// flight, and the stream runs at about 4.0 of H200's 4.5 TB/s (gemm_bench). Here each warp's
// stage (16 rows x 512 bytes) comes as 16 bulk copies (cp.async.bulk, one per row piece) into a
// ring of slots of shared memory that the warp alone uses, signalled by an mbarrier a slot; the
// warp reads a landed slot into registers and refills it at once, so two or three stages (128 or
// 192 KB an SM) are in flight while it multiplies. Same k order, same mmas: the same bits as
// gemv_kernel. For M <= 8, 16-byte aligned rows and all of x in one tile.
//
// Slots a warp's ring has: the stages it keeps in flight. Two leave room for up to 8 rows of x (and
// for a decode attention block beside the qkv projection's); a large GEMV whose x is small takes
// three (kDeepSlots): its stream is bound by the bytes in flight on H200 (gemm_bench at M = 1:
// lm_head 295 -> 253 us, gate_up 59.9 -> 56.6, down 30.6 -> 29.2).
constexpr int kBulkSlots = 2;
constexpr int kDeepSlots = 3;
constexpr int kBulkPieceBytes = kStageK * 2;                                     // 512: a row's piece of a stage
// A warp's slot: its even rows' pieces, then 64 bytes on its odd rows', so that rows g and g + 1
// (one quarter-warp's 16-byte reads) fall in different halves of the banks. 64 bytes a slot
// rather than a row keeps the ring small enough for a decode attention block to sit beside it.
constexpr int kBulkWarpSlotBytes = kRowsPerTile * kBulkPieceBytes + 64;        // 8256
__host__ __device__ constexpr int bulk_ring_bytes(int slots) { return kWarps * slots * kBulkWarpSlotBytes; }  // 132096 for 2
__device__ __forceinline__ int bulk_row_offset(int row) {
  return (row & 1) * (kRowsPerTile / 2 * kBulkPieceBytes + 64) + (row >> 1) * kBulkPieceBytes;
}
// The dynamic shared memory a block may have (sm_90's 227 KB opt-in) less the kernel's static
// arrays (partial sums and mbarriers, 4.2 KB) is the ring and x
constexpr int bulk_max_x_bytes(int slots) { return (227 << 10) - 4608 - bulk_ring_bytes(slots); }

// all of x for gemv_bulk_kernel: its rows padded to whole rounds (host and device)
__host__ __device__ inline size_t bulk_x_bytes(int M, int K) {
  return (size_t)M * sizeof(uint4) * ((size_t)((K + kRoundK - 1) / kRoundK) * kRoundChunks + kRowPadChunks);
}

__device__ __forceinline__ void mbarrier_init(uint32_t bar) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;" ::"r"(bar) : "memory");
}
__device__ __forceinline__ void mbarrier_expect(uint32_t bar, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(bar), "r"(bytes) : "memory");
}
__device__ __forceinline__ void mbarrier_wait(uint32_t bar, uint32_t parity) {
  uint32_t done = 0;
  do {
    asm volatile("{\n .reg .pred p;\n mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n selp.u32 %0, 1, 0, p;\n}"
                 : "=r"(done)
                 : "r"(bar), "r"(parity)
                 : "memory");
  } while (!done);
}
__device__ __forceinline__ void bulk_copy(uint32_t dst, const void* src, uint32_t bytes, uint32_t bar) {
  asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];" ::"r"(dst), "l"(src), "r"(bytes),
               "r"(bar)
               : "memory");
}

// A warp's ring: SLOTS slots of shared memory, one stage each, and an mbarrier a slot. Item i
// (row block, round) of the warp's split goes to slot i % SLOTS; its landing completes phase
// i / SLOTS of that slot's mbarrier.
template <int SLOTS>
struct WarpRing {
  uint32_t ring, bar0;  // the warp's first slot and its mbarrier, as shared-memory addresses

  // lane 0 makes the slots' mbarriers; the warp sees them after the __syncwarp
  __device__ WarpRing(const unsigned char* ring_shared, uint64_t* bars, int warp, int lane)
      : ring(shared_address(ring_shared) + warp * SLOTS * kBulkWarpSlotBytes), bar0(shared_address(bars)) {
    if (lane == 0) {
      for (int s = 0; s < SLOTS; ++s) mbarrier_init(bar0 + 8 * s);
      asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
    }
    __syncwarp();
  }

  // Piece p (item `item`) into its slot: weight row rows.row(p.rb, i)'s piece of k into slot row i,
  // one bulk copy a row. Rows past N are not copied (their products land only in outputs that are
  // never stored); the part of a piece past K is zeroed (x is zero there, but whatever the slot
  // held, a NaN say, times zero is not).
  template <class Rows>
  __device__ void issue(int item, const Piece& p, const Rows& rows, const bf16* w, int K, int lane) const {
    const uint32_t bar = bar0 + 8 * (item % SLOTS);
    const uint32_t piece = ring + (item % SLOTS) * kBulkWarpSlotBytes + bulk_row_offset(lane);  // p.bytes: a multiple of 16
    if (p.bytes < kBulkPieceBytes && lane < p.rows) {
      for (int b = p.bytes; b < kBulkPieceBytes; b += 16) asm volatile("st.shared.v4.u32 [%0], {%1, %1, %1, %1};" ::"r"(piece + b), "r"(0) : "memory");
    }
    if (lane == 0) mbarrier_expect(bar, p.rows * p.bytes);
    __syncwarp();
    if (lane < p.rows && p.bytes > 0) bulk_copy(piece, w + (size_t)rows.row(p.rb, lane) * K + p.k0, p.bytes, bar);
  }

  // wait for item `item` to land
  __device__ void wait(int item) const { mbarrier_wait(bar0 + 8 * (item % SLOTS), (item / SLOTS) & 1); }
};

// Rows says which weight rows a row block takes and where its sums go: StoreRows (above) for a
// plain GEMV; fused_gemv.cuh's RopeKvRows and SiluRows for the projections that make their next
// kernel (rope with the cache write, the activation) as they store.
template <class Rows, class Input, int SLOTS>
__global__ void __launch_bounds__(kThreads, kBlocksPerSm)
    gemv_bulk_kernel(Rows rows_out, Input input, const bf16* __restrict__ w, int M, int N, int K) {
  extern __shared__ __align__(128) unsigned char bulk_shared[];
  __shared__ float partial[kWarps][4][32];
  __shared__ __align__(8) uint64_t bars[kWarps][SLOTS];
  allow_dependents();  // the kernel after it (a norm, or the next GEMV) may take SMs as this one's blocks finish

  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int g = lane >> 2, t = lane & 3;
  const int split = warp;  // kKSplit == kWarps: every warp one split of the block's one tile
  const int rounds = (K + kRoundK - 1) / kRoundK;
  const int row_blocks = (N + kRowsPerBlock - 1) / kRowsPerBlock;
  const int my_row_blocks = (row_blocks - (int)blockIdx.x + (int)gridDim.x - 1) / (int)gridDim.x;
  const int items = my_row_blocks * rounds;
  const uint4* x_tile = reinterpret_cast<const uint4*>(bulk_shared + bulk_ring_bytes(SLOTS));
  const int stride = rounds * kRoundChunks + kRowPadChunks;  // x_tile's row stride in chunks
  const WarpRing<SLOTS> ring(bulk_shared, &bars[warp][0], warp, lane);

  // item i of this warp's split: row n's piece [r kRoundK + split kStageK, + kStageK) of k
  auto issue = [&](int item) {
    if (item < items) ring.issue(item, Piece(item, rounds, split, N, K), rows_out, w, K, lane);
  };
  for (int i = 0; i < SLOTS; ++i) issue(i);  // weights only: before the kernel before this one is done
  // and what the stores and the input need that no kernel of the step writes (rope's angles from
  // the step's positions, a norm's weight): also readable before the kernel before this one is done
  unsigned char* extra = bulk_shared + bulk_ring_bytes(SLOTS) + bulk_x_bytes(M, K);
  rows_out.prepare(extra, M);
  input.prepare(extra + rows_out.shared_bytes(M), K);

  wait_for_prerequisites();
  // all of x, rows 0..M-1, once, every piece in flight together (cp.async's groups are the
  // input's alone here; the weights signal their mbarriers)
  input.stage(const_cast<uint4*>(x_tile), stride, M, K);
  cp_async_wait<0>();
  __syncthreads();
  // the factor of the sums of rows 2t and 2t + 1, the ones this thread stores
  float scale[2] = {1.f, 1.f};
  if constexpr (Input::kScaled) {
#pragma unroll
    for (int i = 0; i < 2; ++i) scale[i] = 2 * t + i < M ? input.scale(2 * t + i, K) : 0.f;
  }

  float acc[4] = {};
  for (int item = 0; item < items; ++item) {
    const int rb = blockIdx.x + (item / rounds) * gridDim.x, r = item % rounds;
    const int slot = item % SLOTS;
    ring.wait(item);
    const unsigned char* piece = bulk_shared + warp * SLOTS * kBulkWarpSlotBytes + slot * kBulkWarpSlotBytes;
    uint4 lo[kStageSteps], hi[kStageSteps];
#pragma unroll
    for (int s = 0; s < kStageSteps; ++s) {
      lo[s] = *reinterpret_cast<const uint4*>(piece + bulk_row_offset(g) + (t + 4 * s) * 16);
      hi[s] = *reinterpret_cast<const uint4*>(piece + bulk_row_offset(g + 8) + (t + 4 * s) * 16);
    }
    __syncwarp();        // every lane has its fragments: the slot may be refilled
    issue(item + SLOTS);
    const int x_chunk = r * kRoundChunks + split * (kStageK / kChunk) + t;
#pragma unroll
    for (int s = 0; s < kStageSteps; ++s) {
      const uint4 x8 = g < M ? x_tile[g * stride + x_chunk + s * (kStepK / kChunk)] : make_uint4(0, 0, 0, 0);
      mma_step(acc, lo[s], hi[s], x8);
    }
    if (r + 1 < rounds) continue;

    // the row block's last round: the splits' partial sums in split order, as gemv_kernel adds them
#pragma unroll
    for (int i = 0; i < 4; ++i) partial[warp][i][lane] = acc[i], acc[i] = 0.f;
    __syncthreads();
    if (split == 0) {
      float sum[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        sum[i] = partial[0][i][lane];
#pragma unroll
        for (int s = 1; s < kKSplit; ++s) sum[i] += partial[s][i][lane];
      }
      // accumulator i: tile row g (+ 8 for i >= 2), x row 2t + (i & 1)
#pragma unroll
      for (int i = 0; i < 2; ++i) {
        const int m = 2 * t + i;
        if constexpr (Input::kScaled) {
          if (m < M) rows_out.store(rb, g, m, round_bf16(sum[i] * scale[i]), round_bf16(sum[i + 2] * scale[i]));
        } else {
          if (m < M) rows_out.store(rb, g, m, round_bf16(sum[i]), round_bf16(sum[i + 2]));
        }
      }
    }
    __syncthreads();
  }
}

// ---- launchers ----

// Rounds of K per shared tile of x, and the dynamic shared memory that takes: one tile for all of
// K where it fits in kMaxSharedBytes, else two alternating tiles of at most half of it.
inline int tile_rounds_for(int M, int K, size_t* shared_bytes) {
  const int rounds = (K + kRoundK - 1) / kRoundK;
  const size_t row_bytes_per_chunk = (size_t)M * sizeof(uint4);
  const size_t whole = row_bytes_per_chunk * ((size_t)rounds * kRoundChunks + kRowPadChunks);
  if (whole <= (size_t)kMaxSharedBytes) {
    *shared_bytes = whole;
    return rounds;
  }
  const int half_chunks = (int)((kMaxSharedBytes / 2) / row_bytes_per_chunk) - kRowPadChunks;
  const int tile_rounds = half_chunks >= kRoundChunks ? half_chunks / kRoundChunks : 1;
  *shared_bytes = 2 * row_bytes_per_chunk * ((size_t)tile_rounds * kRoundChunks + kRowPadChunks);
  return tile_rounds;
}

// Past 48 KB of dynamic shared memory a kernel must be allowed it, per device: once per device
// and kernel, to `bytes`, the most it is ever launched with (a host call that neither syncs nor
// enqueues, so also safe during a graph capture).
template <auto Kernel>
cudaError_t allow_shared_memory(int bytes) {
  constexpr int kDevices = 64;
  static std::atomic<bool> allowed[kDevices];
  int device = 0;
  if (const cudaError_t error = cudaGetDevice(&device); error != cudaSuccess) return error;
  if (device < kDevices && allowed[device].load(std::memory_order_acquire)) return cudaSuccess;
  const cudaError_t error = cudaFuncSetAttribute(Kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes);
  if (error == cudaSuccess && device < kDevices) allowed[device].store(true, std::memory_order_release);
  return error;
}

// A persistent GEMV kernel on a grid of one block per SM (at most one per row block of N rows).
template <typename... Params, typename... Args>
cudaError_t launch_persistent(void (*kernel)(Params...), int N, const GemvLaunch& launch, size_t shared_bytes, Args... args) {
  const int row_blocks = (N + kRowsPerBlock - 1) / kRowsPerBlock;
  const int resident = (launch.sm_count > 0 ? launch.sm_count : 1) * kBlocksPerSm;
  return launch_kernel(kernel, dim3(row_blocks < resident ? row_blocks : resident), dim3(kThreads), shared_bytes, launch.stream,
                       launch.overlap, args...);
}

template <int NT, bool VECTOR>
cudaError_t launch_registers(bf16* out, const bf16* x, const bf16* w, int M, int N, int K, const GemvLaunch& launch) {
  size_t shared_bytes = 0;
  const int tile_rounds = tile_rounds_for(M, K, &shared_bytes);
  if (shared_bytes > (48 << 10)) {
    if (const cudaError_t error = allow_shared_memory<gemv_kernel<NT, VECTOR>>(kMaxSharedBytes); error != cudaSuccess) return error;
  }
  return launch_persistent(gemv_kernel<NT, VECTOR>, N, launch, shared_bytes, out, x, w, M, N, K, tile_rounds);
}

template <class Rows, class Input, int SLOTS>
cudaError_t launch_bulk_ring(Rows rows, Input input, const bf16* w, int M, int N, int K, const GemvLaunch& launch) {
  constexpr auto kernel = gemv_bulk_kernel<Rows, Input, SLOTS>;
  if (const cudaError_t error = allow_shared_memory<kernel>(bulk_ring_bytes(SLOTS) + bulk_max_x_bytes(SLOTS)); error != cudaSuccess) return error;
  const size_t shared = bulk_ring_bytes(SLOTS) + bulk_x_bytes(M, K) + rows.shared_bytes(M) + input.shared_bytes(K);
  return launch_persistent(kernel, N, launch, shared, rows, input, w, M, N, K);
}

// gemv_bulk_kernel, where gemv_bulk_applies (with rows' and the input's shared bytes beside x):
// the deeper ring for weights of launch.deep_bytes or more where x still fits beside it
template <class Rows, class Input>
cudaError_t launch_bulk(Rows rows, Input input, const bf16* w, int M, int N, int K, const GemvLaunch& launch) {
  const bool deep = (size_t)N * K * sizeof(bf16) >= launch.deep_bytes &&
                    bulk_x_bytes(M, K) + rows.shared_bytes(M) + input.shared_bytes(K) <= (size_t)bulk_max_x_bytes(kDeepSlots);
  return deep ? launch_bulk_ring<Rows, Input, kDeepSlots>(rows, input, w, M, N, K, launch)
              : launch_bulk_ring<Rows, Input, kBulkSlots>(rows, input, w, M, N, K, launch);
}

}  // namespace
}  // namespace gemv

// Whether gemv_matmul(..., bulk = true) takes gemv_bulk_kernel: up to 8 rows, 16-byte aligned rows
// (K % 8 == 0), all of x (and `extra` bytes the stores use) beside the ring (Llama-3-8B's down
// projection past 3 rows does not fit)
inline bool gemv_bulk_applies(const bf16* x, const bf16* w, int M, int K, size_t extra = 0) {
  return M >= 1 && M <= 8 && K > 0 && K % gemv::kChunk == 0 && reinterpret_cast<uintptr_t>(x) % 16 == 0 &&
         reinterpret_cast<uintptr_t>(w) % 16 == 0 && gemv::bulk_x_bytes(M, K) + extra <= (size_t)gemv::bulk_max_x_bytes(gemv::kBulkSlots);
}

// out[M,N] = x[M,K] @ w[N,K]^T for 1 <= M <= kGemvMaxRows, rows of x and w contiguous (strides K,
// N for out). 16-byte loads where K % 8 == 0 and x and w are 16-byte aligned, else element loads
// with the same arithmetic (same bits); with `bulk`, the bulk copies where they apply.
inline cudaError_t gemv_matmul(bf16* out, const bf16* x, const bf16* w, int M, int N, int K, const GemvLaunch& launch, bool bulk = false) {
  if (M == 0 || N == 0) return cudaSuccess;
  if (M < 0 || M > kGemvMaxRows || N < 0 || K < 0) return cudaErrorInvalidValue;
  if (K == 0) return cudaMemsetAsync(out, 0, (size_t)M * N * sizeof(bf16), launch.stream);  // empty sums
  const bool aligned = K % gemv::kChunk == 0 && reinterpret_cast<uintptr_t>(x) % 16 == 0 && reinterpret_cast<uintptr_t>(w) % 16 == 0;
  if (bulk && gemv_bulk_applies(x, w, M, K)) return gemv::launch_bulk(gemv::StoreRows{out, N}, gemv::PlainInput{x}, w, M, N, K, launch);
  if (M <= 8) {
    return aligned ? gemv::launch_registers<1, true>(out, x, w, M, N, K, launch) : gemv::launch_registers<1, false>(out, x, w, M, N, K, launch);
  }
  return aligned ? gemv::launch_registers<2, true>(out, x, w, M, N, K, launch) : gemv::launch_registers<2, false>(out, x, w, M, N, K, launch);
}

}  // namespace tsr
