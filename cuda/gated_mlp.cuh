// The gated MLP of a decode batch in one persistent kernel: gate_up = x @ w_gate_up^T, then
// out = (silu(gate) * up) @ w_down^T, with a grid barrier between the two GEMVs.
//
// As two GEMVs and the activation between them, the step drains its weight stream twice a layer:
// the gate_up GEMV's tail, the activation kernel, and the down GEMV's start, whose blocks begin
// with nothing in flight. Here a block that issues its last gate_up loads issues its first stage of
// w_down next (gemv_rows's `following`), so those weights arrive while it finishes, waits at the
// barrier and makes its tile of the activation. The activation is made by every block for itself
// (silu_mul's arithmetic: the same bits), from gate_up rows that all blocks wrote before the
// barrier and that it reads through L2.
#pragma once

#include "gemv.cuh"

namespace tsr {
namespace gemv {
namespace {

// silu(gate) * up for rows 0..M-1 of gate_up ([M, 2I]: gate, then up), into a shared tile of x
// (gemv_rows's stage_x): gate copied into the tile and up into `up_tile` (an area of the tile's
// size), then combined in place. Synchronous: the tile is made when it returns.
struct SiluMulX {
  const bf16* gate_up;
  int M, I;
  uint4* up_tile;

  __device__ __forceinline__ void operator()(uint4* tile, int first, int tile_chunks, int stride) const {
    const int chunks = I / kChunk;
    for (int m = 0; m < M; ++m) {
      const bf16* gate = gate_up + (size_t)m * 2 * I;
      for (int i = threadIdx.x; i < tile_chunks; i += kThreads) {
        const int c = first + i;
        if (c < chunks) {
          cp_async_16(&tile[m * stride + i], gate + (size_t)c * kChunk);
          cp_async_16(&up_tile[m * stride + i], gate + I + (size_t)c * kChunk);
        } else {
          tile[m * stride + i] = make_uint4(0, 0, 0, 0);
        }
      }
    }
    cp_async_commit();
    cp_async_wait<0>();
    __syncthreads();
    for (int m = 0; m < M; ++m) {
      for (int i = threadIdx.x; i < tile_chunks && first + i < chunks; i += kThreads) {
        uint4 packed = tile[m * stride + i];
        const uint4 up_packed = up_tile[m * stride + i];
        bf16* gate8 = reinterpret_cast<bf16*>(&packed);
        const bf16* up8 = reinterpret_cast<const bf16*>(&up_packed);
#pragma unroll
        for (int e = 0; e < kChunk; ++e) {
          const float gate = load(gate8[e]);
          // silu_mul_kernel's expression (activation.cuh), so that both give the same bits
          gate8[e] = round_bf16(gate / (1.f + expf(-gate)) * load(up8[e]));
        }
        tile[m * stride + i] = packed;
      }
    }
  }
};

__global__ void __launch_bounds__(kThreads, kBlocksPerSm)
    gated_mlp_kernel(bf16* __restrict__ out, bf16* __restrict__ gate_up, const bf16* __restrict__ x, const bf16* __restrict__ w_gate_up,
                     const bf16* __restrict__ w_down, int M, int H, int I, int gate_up_tile_rounds, int down_tile_rounds, int up_tile_offset,
                     unsigned* barrier) {
  extern __shared__ __align__(16) uint4 x_tiles[];
  __shared__ float partial[kWarps][4][32];
  const GemvOp gate_up_op{gate_up, w_gate_up, 2 * I, H, gate_up_tile_rounds};
  const GemvOp down_op{out, w_down, H, I, down_tile_rounds};
  WeightStage<true> stage;
  stage.load(gate_up_op, blockIdx.x, 0);  // in flight while the kernel before this one finishes
  wait_for_prerequisites();
  gemv_rows<1, true>(gate_up_op, M, stage, x_tiles, partial, CopyX<true>{x, M, H}, &down_op);
  grid_barrier(barrier);  // every row of gate_up is written
  gemv_rows<1, true>(down_op, M, stage, x_tiles, partial, SiluMulX{gate_up, M, I, x_tiles + up_tile_offset}, nullptr);
}

// Whether this device holds one block of gated_mlp_kernel on every SM at once (the grid barrier
// needs the whole grid resident), with the shared memory allowed: checked once per device.
inline bool gated_mlp_fits() {
  constexpr int kDevices = 64;
  static std::atomic<int> fits[kDevices];  // 0 unknown, 1 yes, 2 no
  int device = 0;
  if (cudaGetDevice(&device) != cudaSuccess) return false;
  if (device < kDevices && fits[device].load(std::memory_order_acquire) != 0) return fits[device].load() == 1;
  int blocks = 0;
  const bool ok = cudaFuncSetAttribute(gated_mlp_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kMaxSharedBytes) == cudaSuccess &&
                  cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, gated_mlp_kernel, kThreads, kMaxSharedBytes) == cudaSuccess &&
                  blocks >= 1;
  if (device < kDevices) fits[device].store(ok ? 1 : 2, std::memory_order_release);
  return ok;
}

}  // namespace
}  // namespace gemv

// The fused gated MLP for 1 <= M <= 8 rows where H and I are multiples of 8, every pointer is
// 16-byte aligned and the device holds the persistent grid (sm_count blocks); false where it
// does not apply (the caller runs the two GEMVs and the activation instead).
inline bool gated_mlp_applies(const bf16* x, const bf16* w_gate_up, const bf16* w_down, const bf16* gate_up, int M, int H, int I) {
  const auto aligned = [](const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; };
  return M >= 1 && M <= 8 && H > 0 && I > 0 && H % gemv::kChunk == 0 && I % gemv::kChunk == 0 && aligned(x) && aligned(w_gate_up) &&
         aligned(w_down) && aligned(gate_up) && gemv::gated_mlp_fits();
}

// out[M, H] = (silu(gate) * up) @ w_down^T where gate_up[M, 2I] = x @ w_gate_up^T (also written);
// only where gated_mlp_applies. barrier: grid_barrier's state.
inline cudaError_t gated_mlp(bf16* out, bf16* gate_up, const bf16* x, const bf16* w_gate_up, const bf16* w_down, int M, int H, int I,
                             int sm_count, bool overlap, unsigned* barrier, cudaStream_t stream) {
  using namespace gemv;
  size_t gate_up_bytes = 0;
  const int gate_up_tile_rounds = tile_rounds_for(M, H, &gate_up_bytes);
  // the down projection's x tiles and, after them, the up tile SiluMulX uses: one whole tile of K
  // and its up tile where both fit, else two alternating tiles and an up tile in thirds of the space
  const size_t row_bytes_per_chunk = (size_t)M * sizeof(uint4);
  const int rounds = (I + kRoundK - 1) / kRoundK;
  const size_t whole = row_bytes_per_chunk * ((size_t)rounds * kRoundChunks + kRowPadChunks);
  int down_tile_rounds = rounds;
  size_t x_bytes = whole;
  if (2 * whole > (size_t)kMaxSharedBytes) {
    const int third_chunks = (int)((kMaxSharedBytes / 3) / row_bytes_per_chunk) - kRowPadChunks;
    down_tile_rounds = third_chunks >= kRoundChunks ? third_chunks / kRoundChunks : 1;
    x_bytes = 2 * row_bytes_per_chunk * ((size_t)down_tile_rounds * kRoundChunks + kRowPadChunks);
  }
  const size_t down_bytes = x_bytes + (down_tile_rounds == rounds ? whole : x_bytes / 2);
  const size_t shared_bytes = gate_up_bytes > down_bytes ? gate_up_bytes : down_bytes;

  cudaLaunchConfig_t config = {};
  config.gridDim = dim3(sm_count > 0 ? sm_count : 1);
  config.blockDim = dim3(kThreads);
  config.dynamicSmemBytes = shared_bytes;
  config.stream = stream;
  cudaLaunchAttribute dependent[1];
  dependent[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  dependent[0].val.programmaticStreamSerializationAllowed = 1;
  config.attrs = dependent;
  config.numAttrs = overlap ? 1 : 0;
  return cudaLaunchKernelEx(&config, gated_mlp_kernel, out, gate_up, x, w_gate_up, w_down, M, H, I, gate_up_tile_rounds, down_tile_rounds,
                            (int)(x_bytes / sizeof(uint4)), barrier);
}

}  // namespace tsr
