// The context every entry point receives, and how entry points report failure.
//
// Host-side only: each .cu includes this and the header of its own kernels, so every kernel
// is defined in exactly one translation unit.
#pragma once

#include <cuda_runtime.h>

#include "tessera_cuda.h"

struct tsr_context {
  int device;
  cudaStream_t stream;
  // cuBLAS handle and its workspace (gemm.cu); null when built without cuBLAS
  void* blas;
  void* blas_workspace;
  // device f32 buffer that tsr_write_bf16 / tsr_read_bf16 convert through, grown on demand
  float* staging;
  size_t staging_elements;
  // flash-decoding partials (attention.cu), allocated with the context so that a captured
  // decode step never allocates; off (decode_split 0) where TSR_DECODE_SPLIT=0
  float* attention_scratch;
  size_t attention_scratch_floats;
  int decode_split;
  // tensor-core decode blocks per SM the flash-decoding split count aims for
  // (TSR_DECODE_BLOCKS_PER_SM, default 1: one wave; 4, two waves of the two blocks an SM holds,
  // was 3.6% slower at batch 64 on H100, splitting 512 blocks in two and adding the combine)
  int decode_blocks_per_sm;
  // or, where TSR_DECODE_TARGET_BLOCKS is set, this many blocks in all (0: unset)
  int decode_target_blocks;
  // the GEMV starts streaming weights while the kernel before it finishes (programmatic
  // dependent launch); off where TSR_OVERLAP_LAUNCHES=0
  int overlap_launches;
  // the norms too, as dependents of the GEMV before them (norm.cuh); off where
  // TSR_OVERLAP_NORMS=0 or overlap_launches is
  bool overlap_norms;
  // decode attention and its merge too, as dependents of the kernel before each (attention.cu);
  // off where TSR_OVERLAP_ATTENTION=0 or overlap_launches is
  bool overlap_attention;
  int sm_count;
  // decode-sized matmuls (M <= 8) go to the GEMV where w has at most this many bytes, to cuBLAS
  // above it (TSR_GEMV_MAX_MB, default 64)
  size_t gemv_max_bytes;
  // the GEMV's weights through bulk copies (gemv.cuh's gemv_bulk_kernel) where it applies; off
  // where TSR_GEMV_BULK=0
  bool gemv_bulk;
  // bulk GEMVs of weights this large or larger take the deeper ring where x fits beside it
  // (gemv.cuh's kDeepSlots; TSR_GEMV_DEEP_MB, default kGemvDeepMb)
  size_t gemv_deep_bytes;
  // tsr_qkv_rope_kv_write and tsr_gate_up_silu as one kernel each where the bulk GEMV applies
  // (fused_gemv.cuh); off where TSR_FUSED_GEMV=0 (the projection, then its next kernel)
  bool fused_gemv;
  // tsr_add_rmsnorm_qkv_rope_kv_write and tsr_add_rmsnorm_gate_up_silu as one kernel each where
  // the fused GEMV applies (gemv.cuh's NormedResidualInput); off where TSR_FUSED_NORMS=0 (the norm
  // kernel, then the fused projection)
  bool fused_norms;
  // the sampler's per-row work arrays (sampler.cu), grown to the largest call and kept: at batch
  // 256 they are 690 MB, which an allocation per call mapped and released every step
  void* sampler_scratch;
  size_t sampler_scratch_bytes;
};

namespace tsr {

// Decode-sized matmuls whose weights are larger than this go to cuBLAS where the bulk-copy GEMV
// does not apply (tsr_matmul; TSR_GEMV_MAX_MB overrides it): on H200, alternating in one call, 64
// MB (the GEMV for Llama-3-8B's qkv and o, cuBLAS for gate_up, down and lm_head) made the decode
// step 6.6% faster at batch 1 and 13% at batch 8 than the GEMV for all, and all to cuBLAS 4.5%
// and 12% (bench/README.md); cuBLAS streamed the large weights at 4.1-4.4 TB/s there, the
// register GEMV at 3.6-3.9.
constexpr long kGemvMaxMb = 64;

// Bulk GEMVs of at least this many MB take the deeper ring (gemv.cuh's kDeepSlots) where x fits
// beside it (TSR_GEMV_DEEP_MB; -1: none). All of them: on H200, alternating in one call against
// none, 0 MB made the decode step 3.7% faster at batch 1 and 2.9% at 2, 64 MB (gate_up, down and
// lm_head only) 2.6% and 2.3%, 200 MB 0.9% and 2.3% (bench/README.md).
constexpr long kGemvDeepMb = 0;

// The most rows of x that go to gemv.cuh; more go to cuBLAS. gemv.cuh's one 8-column mma tile
// covers M = 1..8 at the cost of M = 1 (a pure weight stream), and its result for a row does not
// depend on M, so every decode batch up to 8 gets the same bits per row. At 9..16 it takes a
// second mma tile and twice the x traffic, while cuBLAS already streams weights at ~92% of the
// copy bandwidth at M = 8 for 4096 -> 14336 on H100 (bench/results/gpu-kernels-*): kept on
// cuBLAS until cuda/build/gemm_bench shows the GEMV ahead there too (it times both at M = 16).
// Batch invariance holds on each side of this line, not across it: a row's bits at M = 9 are
// cuBLAS's, not the GEMV's. The bulk-copy GEMV gives the GEMV's bits; where it does not apply
// (x too large for its shared memory: Llama-3-8B's down projection past 3 rows), weights over
// gemv_max_bytes go to cuBLAS, whose bits for a row may depend on M.
#ifndef TSR_GEMV_CROSSOVER_ROWS  // an experiment's override (make EXTRA_FLAGS=-DTSR_GEMV_CROSSOVER_ROWS=16)
#define TSR_GEMV_CROSSOVER_ROWS 8
#endif
constexpr int kGemvCrossoverRows = TSR_GEMV_CROSSOVER_ROWS;

// Records `format` as this thread's last error and returns `status`, so that an entry point
// can `return fail(...)`.
int fail(int status, const char* format, ...) __attribute__((format(printf, 2, 3)));

// TSR_OK, or TSR_CUDA_ERROR with `what` and CUDA's message recorded.
int check(cudaError_t error, const char* what);

// allocates ctx->staging once (memory.cu); before a graph capture, which may not allocate
int ensure_staging(tsr_context* ctx);

// *out := ctx->sampler_scratch, grown to at least `bytes` first (a reallocation waits for the
// device: only when a larger batch than any before is sampled)
int sampler_scratch(tsr_context* ctx, size_t bytes, void** out);

// cuBLAS lives in gemm.cu alone, so that every other file builds without its headers.
int gemm_create(tsr_context* ctx);
void gemm_destroy(tsr_context* ctx);

}  // namespace tsr

#define TSR_REQUIRE(condition, ...)                                          \
  do {                                                                       \
    if (!(condition)) return ::tsr::fail(TSR_INVALID_ARGUMENT, __VA_ARGS__); \
  } while (0)

#define TSR_REQUIRE_CONTEXT(ctx) TSR_REQUIRE((ctx) != nullptr, "%s: null context", __func__)
