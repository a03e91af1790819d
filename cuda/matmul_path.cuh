// Which GEMM tsr_matmul (gemm.cu) runs for a call: written once, for the library and for
// cuda/build/gemm_bench, which checks batch invariance where the GEMV's bits are promised.
#pragma once

#include "context.cuh"
#include "gemv.cuh"

namespace tsr {

enum class MatmulPath { kBulkGemv, kGemv, kBlas };

// Decode sizes (kGemvCrossoverRows): the bulk-copy GEMV wherever it applies, whatever the weights'
// size (on H200 it streams the large ones about as fast as cuBLAS, and in a step it overlaps the
// kernel before it); else the GEMV for weights up to gemv_max_bytes (or where there is no cuBLAS),
// cuBLAS past them. Larger M: cuBLAS.
inline MatmulPath matmul_path(const tsr_context* ctx, const bf16* x, const bf16* w, int M, int N, int K) {
  if (M > kGemvCrossoverRows) return MatmulPath::kBlas;
  if (ctx->gemv_bulk && gemv_bulk_applies(x, w, M, K)) return MatmulPath::kBulkGemv;
  if (ctx->blas == nullptr || (size_t)N * K * sizeof(bf16) <= ctx->gemv_max_bytes) return MatmulPath::kGemv;
  return MatmulPath::kBlas;
}

// how the library launches its GEMVs (the context's settings)
inline GemvLaunch gemv_launch(const tsr_context* ctx) { return {ctx->sm_count, ctx->overlap_launches != 0, ctx->stream, ctx->gemv_deep_bytes}; }

}  // namespace tsr
