// Skinny GEMM for decode: out[M,N] = x[M,K] @ w[N,K]^T for a few rows of x (M <= kGemvMaxRows).
//
// At decode sizes a linear layer is a stream over its weights (each weight is used M times), so
// its time is the time to read w from HBM once. cuBLAS's tiles are built for large M and leave
// bandwidth unused at M = 1 (68% of the copy bandwidth on H100 for 4096 x 4096, bench/results).
// This kernel is built around the stream:
//
// - w is read once, in 16-byte copies into shared memory that skip L1 (cp.async.cg: nothing reads
//   a weight twice), into a ring of stages: three stages (96 KB an SM) in flight while the fourth
//   is multiplied; persistent blocks (one per SM) carry that stream from one block of rows to the
//   next without draining it.
// - x is staged in shared memory: once per block when it fits, else one part of K at a time.
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
// k32 steps per stage: a warp's stage is 16 rows x 256 bytes (two whole 128-byte lines per row),
// 4 KB per warp, 32 KB per SM.
#ifndef TSR_GEMV_STAGE_STEPS
#define TSR_GEMV_STAGE_STEPS 4
#endif
constexpr int kStageSteps = TSR_GEMV_STAGE_STEPS;
constexpr int kStageK = kStepK * kStageSteps;                     // 128
constexpr int kRoundK = kStageK * kKSplit;                        // 1024: one stage of every split
constexpr int kRoundChunks = kRoundK / kChunk;                    // 128
// Stages in shared memory, a ring: each thread copies its own fragments of a stage there
// (cp.async) and reads back only those, so no barrier guards the ring, and kRingStages - 1 stages
// are in flight while one is used: 96 KB per SM. Held in registers, one stage ahead (64 KB), the
// stream reached 89% of the read bandwidth on H200 (lm_head; 4.5 TB/s wants about 4.5 MB/us x
// ~2 us loaded latency = 9 MB in flight, 68 KB per SM): a register can be refilled only once its
// load has landed, so one stage in registers is also all that is in flight.
#ifndef TSR_GEMV_RING
#define TSR_GEMV_RING 4
#endif
constexpr int kRingStages = TSR_GEMV_RING;
constexpr int kStageBytes = kThreads * kStageSteps * 2 * 16;      // 32 KB
constexpr int kRingBytes = kRingStages * kStageBytes;             // 128 KB
// One block per SM: the grid is persistent, each block keeping its stream going from one row block
// to the next (a fresh block would start with nothing in flight).
constexpr int kBlocksPerSm = 1;
// a row of x in shared memory is padded by 64 bytes so that the two rows one quarter-warp reads
// (4 threads per row, 16 bytes each) fall in different banks
constexpr int kRowPadChunks = 4;
// Dynamic shared memory for x, beside the ring (a block may have 227 KB; `partial` takes up to 8):
// up to this much (88 KB with the default ring) holds all of K in one tile (M = 1: K <= 45000;
// M = 8: K <= 5600), staged once per block; past it, one tile of it is refilled for each part of
// K and each row block.
constexpr int kMaxSharedBytes = (216 << 10) - kRingBytes;
static_assert(kMaxSharedBytes >= (16 << 10), "the ring leaves too little shared memory for x");

// ---- kernels ----

// bf16 elements k..k+7 of `row` packed as one 16-byte chunk, those at or past K zero: for rows
// that are not 16-byte aligned (K % 8 != 0, or an offset pointer)
__device__ __forceinline__ uint4 load_chunk_scalar(const bf16* row, int k, int K) {
  const unsigned short* bits = reinterpret_cast<const unsigned short*>(row);
  unsigned e[kChunk];
#pragma unroll
  for (int i = 0; i < kChunk; ++i) e[i] = k + i < K ? __ldg(bits + k + i) : 0u;
  return make_uint4(e[0] | e[1] << 16, e[2] | e[3] << 16, e[4] | e[5] << 16, e[6] | e[7] << 16);
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

// 16 bytes from global memory into shared memory, asynchronously; zeros where !valid (nothing read)
__device__ __forceinline__ void cp_async_16_or_zero(void* shared, const void* global, bool valid) {
  const unsigned address = static_cast<unsigned>(__cvta_generic_to_shared(shared));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(address), "l"(global), "r"(valid ? 16 : 0) : "memory");
}

// Rows 0..M-1 of x, chunks [first, first + tile_chunks), into a shared tile of row stride `stride`
// chunks, zero past K; loaded and stored directly (the cp.async groups are the weights').
template <bool VECTOR>
__device__ __forceinline__ void stage_x_now(uint4* tile, const bf16* x, int M, int K, int first, int tile_chunks, int stride) {
  const int chunks = (K + kChunk - 1) / kChunk;
  for (int m = 0; m < M; ++m) {
    const bf16* row = x + (size_t)m * K;
    for (int i = threadIdx.x; i < tile_chunks; i += kThreads) {
      const int c = first + i;
      uint4 v = make_uint4(0, 0, 0, 0);
      if (c < chunks) {
        if constexpr (VECTOR) v = *reinterpret_cast<const uint4*>(row + (size_t)c * kChunk);
        else v = load_chunk_scalar(row, c * kChunk, K);
      }
      tile[m * stride + i] = v;
    }
  }
}

// A persistent block walks row blocks blockIdx.x, + gridDim.x, ...; a row block is kRowsPerBlock
// rows of w (kWarps / kKSplit 16-row tiles), each tile's K split over kKSplit warps. The block's
// work is a sequence of items (row block, round of K); the weights of item i + kRingStages - 1
// are copied into the ring while item i is multiplied, across row blocks too, so a block's stream
// never drains between them. The x tile is staged once per block where all of K fits.
// NT: 8-row tiles of x (M <= 8 NT). VECTOR: rows of w and x are 16-byte aligned (K % 8 == 0).
// tile_rounds: rounds of K (kRoundK each: one stage of every split) per shared tile of x.
template <int NT, bool VECTOR>
__global__ void __launch_bounds__(kThreads, kBlocksPerSm)
    gemv_kernel(bf16* __restrict__ out, const bf16* __restrict__ x, const bf16* __restrict__ w, int M, int N, int K, int tile_rounds) {
  extern __shared__ __align__(16) uint4 shared[];
  uint4* ring = shared;                            // [kRingStages][kStageSteps][lo, hi][kThreads]
  uint4* x_tile = shared + kRingBytes / sizeof(uint4);
  __shared__ float partial[kWarps][NT * 4][32];

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
  const int my_row_blocks = blockIdx.x < row_blocks ? (row_blocks - blockIdx.x + gridDim.x - 1) / gridDim.x : 0;
  const int items = my_row_blocks * rounds;
  // this thread's first chunk in round r is r * kRoundChunks + chunk_in_round (+ 4 per step)
  const int chunk_in_round = split * (kStageK / kChunk) + t;

  // item i's weights for this thread (rows g and g + 8 of its tile; rows past N and chunks past K
  // are zeros, read from nowhere) into ring stage `slot`, as one cp.async group (empty past the
  // last item, so that every wait counts the same groups)
  auto issue = [&](int item, int slot) {
    if (item < items) {
      const int rb = blockIdx.x + (item / rounds) * gridDim.x, r = item % rounds;
      const int n = rb * kRowsPerBlock + tile_row + g;
      const bf16* row_lo = w + (size_t)min(n, N - 1) * K;
      const bf16* row_hi = w + (size_t)min(n + 8, N - 1) * K;
      uint4* stage = ring + (size_t)slot * kStageSteps * 2 * kThreads + threadIdx.x;
#pragma unroll
      for (int s = 0; s < kStageSteps; ++s) {
        const int c = r * kRoundChunks + chunk_in_round + s * (kStepK / kChunk);
        if constexpr (VECTOR) {
          cp_async_16_or_zero(stage + (2 * s) * kThreads, row_lo + (size_t)min(c, chunks - 1) * kChunk, n < N && c < chunks);
          cp_async_16_or_zero(stage + (2 * s + 1) * kThreads, row_hi + (size_t)min(c, chunks - 1) * kChunk, n + 8 < N && c < chunks);
        } else {
          stage[(2 * s) * kThreads] = n < N && c < chunks ? load_chunk_scalar(row_lo, c * kChunk, K) : make_uint4(0, 0, 0, 0);
          stage[(2 * s + 1) * kThreads] = n + 8 < N && c < chunks ? load_chunk_scalar(row_hi, c * kChunk, K) : make_uint4(0, 0, 0, 0);
        }
      }
    }
    cp_async_commit();
  };

  // weights only: in flight while the kernel before this one finishes
  for (int p = 0; p < kRingStages - 1; ++p) issue(p, p);
  wait_for_prerequisites();
  if (tiles == 1) {
    stage_x_now<VECTOR>(x_tile, x, M, K, 0, tile_chunks, stride);
    __syncthreads();
  }

  float acc[NT][4] = {};
  for (int item = 0; item < items; ++item) {
    const int rb = blockIdx.x + (item / rounds) * gridDim.x, r = item % rounds;
    const int tile = r / tile_rounds;
    if (tiles > 1 && r % tile_rounds == 0) {  // the next part of x (the first again for a new row block)
      __syncthreads();
      stage_x_now<VECTOR>(x_tile, x, M, K, tile * tile_chunks, tile_chunks, stride);
      __syncthreads();
    }
    cp_async_wait<kRingStages - 2>();  // this thread's copies of item's weights have landed
    issue(item + kRingStages - 1, (item + kRingStages - 1) % kRingStages);  // into the stage item - 1 used

    const uint4* stage = ring + (size_t)(item % kRingStages) * kStageSteps * 2 * kThreads + threadIdx.x;
    const int tile_chunk = (r - tile * tile_rounds) * kRoundChunks + chunk_in_round;
#pragma unroll
    for (int s = 0; s < kStageSteps; ++s) {
      const uint4 lo = stage[(2 * s) * kThreads], hi = stage[(2 * s + 1) * kThreads];
#pragma unroll
      for (int nt = 0; nt < NT; ++nt) {
        const int m = nt * 8 + g;
        const uint4 x8 = m < M ? x_tile[m * stride + tile_chunk + s * (kStepK / kChunk)] : make_uint4(0, 0, 0, 0);
        mma_step(acc[nt], lo, hi, x8);
      }
    }
    if (r + 1 < rounds) continue;

    // The row block's last round: the splits' partial sums, added in split order by the tile's
    // first warp, then the accumulators start again for the next row block.
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) {
#pragma unroll
      for (int i = 0; i < 4; ++i) partial[warp][nt * 4 + i][lane] = acc[nt][i], acc[nt][i] = 0.f;
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
    __syncthreads();  // `partial` is read before the next row block writes it
  }
  cp_async_wait<0>();  // no copy outlives the block (the last groups are empty)
}

// ---- launchers ----

// Rounds of K per shared tile of x, and the dynamic shared memory the kernel takes with it (the
// ring first): one tile for all of K where it fits in kMaxSharedBytes, else one tile of as many
// rounds as fit, refilled.
inline int tile_rounds_for(int M, int K, size_t* shared_bytes) {
  const int rounds = (K + kRoundK - 1) / kRoundK;
  const size_t row_bytes_per_chunk = (size_t)M * sizeof(uint4);
  const size_t whole = row_bytes_per_chunk * ((size_t)rounds * kRoundChunks + kRowPadChunks);
  if (whole <= (size_t)kMaxSharedBytes) {
    *shared_bytes = kRingBytes + whole;
    return rounds;
  }
  const int fit_chunks = (int)(kMaxSharedBytes / row_bytes_per_chunk) - kRowPadChunks;
  const int tile_rounds = fit_chunks >= kRoundChunks ? fit_chunks / kRoundChunks : 1;
  *shared_bytes = kRingBytes + row_bytes_per_chunk * ((size_t)tile_rounds * kRoundChunks + kRowPadChunks);
  return tile_rounds;
}

// Past 48 KB of dynamic shared memory a kernel must be allowed it, per device: once per device
// and kernel, to the whole budget (a host call that neither syncs nor enqueues, so also safe
// during a graph capture).
template <int NT, bool VECTOR>
cudaError_t allow_shared_memory() {
  constexpr int kDevices = 64;
  static std::atomic<bool> allowed[kDevices];
  int device = 0;
  if (const cudaError_t error = cudaGetDevice(&device); error != cudaSuccess) return error;
  if (device < kDevices && allowed[device].load(std::memory_order_acquire)) return cudaSuccess;
  const cudaError_t error = cudaFuncSetAttribute(gemv_kernel<NT, VECTOR>, cudaFuncAttributeMaxDynamicSharedMemorySize, kRingBytes + kMaxSharedBytes);
  if (error == cudaSuccess && device < kDevices) allowed[device].store(true, std::memory_order_release);
  return error;
}

// With `overlap`, launched as a programmatic dependent of the kernel before it on the stream: its
// first stage of weights loads while that kernel finishes (see allow_dependents).
template <int NT, bool VECTOR>
cudaError_t launch(bf16* out, const bf16* x, const bf16* w, int M, int N, int K, int sm_count, bool overlap, cudaStream_t stream) {
  size_t shared_bytes = 0;
  const int tile_rounds = tile_rounds_for(M, K, &shared_bytes);
  if (shared_bytes > (48 << 10)) {
    if (const cudaError_t error = allow_shared_memory<NT, VECTOR>(); error != cudaSuccess) return error;
  }
  const int row_blocks = (N + kRowsPerBlock - 1) / kRowsPerBlock;
  const int resident = (sm_count > 0 ? sm_count : 1) * kBlocksPerSm;
  const int grid = row_blocks < resident ? row_blocks : resident;
  if (!overlap) {
    gemv_kernel<NT, VECTOR><<<grid, kThreads, shared_bytes, stream>>>(out, x, w, M, N, K, tile_rounds);
    return cudaGetLastError();
  }
  cudaLaunchConfig_t config = {};
  config.gridDim = dim3(grid);
  config.blockDim = dim3(kThreads);
  config.dynamicSmemBytes = shared_bytes;
  config.stream = stream;
  cudaLaunchAttribute dependent[1];
  dependent[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  dependent[0].val.programmaticStreamSerializationAllowed = 1;
  config.attrs = dependent;
  config.numAttrs = 1;
  return cudaLaunchKernelEx(&config, gemv_kernel<NT, VECTOR>, out, x, w, M, N, K, tile_rounds);
}

}  // namespace
}  // namespace gemv

// out[M,N] = x[M,K] @ w[N,K]^T for 1 <= M <= kGemvMaxRows, rows of x and w contiguous (strides K,
// N for out), on a grid of one block per SM (sm_count). 16-byte loads where K % 8 == 0 and x and w
// are 16-byte aligned, else element loads with the same arithmetic (same bits).
inline cudaError_t gemv_matmul(bf16* out, const bf16* x, const bf16* w, int M, int N, int K, int sm_count, bool overlap, cudaStream_t stream) {
  if (M == 0 || N == 0) return cudaSuccess;
  if (M < 0 || M > kGemvMaxRows || N < 0 || K < 0) return cudaErrorInvalidValue;
  if (K == 0) return cudaMemsetAsync(out, 0, (size_t)M * N * sizeof(bf16), stream);  // empty sums
  const bool aligned = K % gemv::kChunk == 0 && reinterpret_cast<uintptr_t>(x) % 16 == 0 && reinterpret_cast<uintptr_t>(w) % 16 == 0;
  if (M <= 8) {
    return aligned ? gemv::launch<1, true>(out, x, w, M, N, K, sm_count, overlap, stream) : gemv::launch<1, false>(out, x, w, M, N, K, sm_count, overlap, stream);
  }
  return aligned ? gemv::launch<2, true>(out, x, w, M, N, K, sm_count, overlap, stream) : gemv::launch<2, false>(out, x, w, M, N, K, sm_count, overlap, stream);
}

}  // namespace tsr
