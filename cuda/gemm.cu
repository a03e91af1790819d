// The GEMM of every linear layer: bf16 operands, f32 accumulation. Decode-sized M goes to the
// weight-streaming kernel of gemv.cuh, larger M to cuBLAS.
//
// The only file that needs cuBLAS. Where its header is missing (a machine with the CUDA
// compiler but no cuBLAS, as CI's), it still builds: small M still runs (gemv.cuh needs nothing
// but CUDA), and larger M reports TSR_UNSUPPORTED, so the other kernels stay usable and checkable.
#include "context.cuh"
#include "gemv.cuh"
#include "fused_gemv.cuh"

#if __has_include(<cublas_v2.h>)
#include <cublas_v2.h>
#define TSR_HAVE_CUBLAS 1
#else
#define TSR_HAVE_CUBLAS 0
#endif

using tsr::check;
using tsr::fail;

using tsr::kGemvCrossoverRows;
static_assert(kGemvCrossoverRows <= tsr::kGemvMaxRows, "gemv.cuh takes at most kGemvMaxRows rows");

#if TSR_HAVE_CUBLAS

namespace {

// cuBLAS's own advice for Hopper; a fixed workspace also keeps it from allocating inside a
// CUDA graph capture
constexpr size_t kWorkspaceBytes = size_t(32) << 20;

int check_blas(cublasStatus_t status, const char* what) {
  if (status == CUBLAS_STATUS_SUCCESS) return TSR_OK;
  return fail(TSR_BLAS_ERROR, "%s: %s (%s)", what, cublasGetStatusString(status), cublasGetStatusName(status));
}

cublasHandle_t handle_of(tsr_context* ctx) { return static_cast<cublasHandle_t>(ctx->blas); }

int blas_matmul(tsr_context* ctx, tsr_bf16* out, const tsr_bf16* x, const tsr_bf16* w, int M, int N, int K) {
  // cuBLAS is column-major. Row-major out[M,N] is column-major out^T[N,M] = w[N,K] x^T[K,M]:
  // row-major w[N,K] read column-major is w^T (K x N, ld K), so op(A) = T; row-major x[M,K]
  // read column-major is already x^T (K x M, ld K), so op(B) = N.
  const float alpha = 1.f, beta = 0.f;
  return check_blas(cublasGemmEx(handle_of(ctx), CUBLAS_OP_T, CUBLAS_OP_N, N, M, K, &alpha, w, CUDA_R_16BF, K, x, CUDA_R_16BF, K,
                                 &beta, out, CUDA_R_16BF, N, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                    "cublasGemmEx");
}

}  // namespace

int tsr::gemm_create(tsr_context* ctx) {
  cublasHandle_t handle = nullptr;
  if (int status = check_blas(cublasCreate(&handle), "cublasCreate")) return status;
  ctx->blas = handle;
  if (int status = check_blas(cublasSetStream(handle, ctx->stream), "cublasSetStream")) return status;
  if (int status = check(cudaMalloc(&ctx->blas_workspace, kWorkspaceBytes), "cudaMalloc (cuBLAS workspace)")) return status;
  return check_blas(cublasSetWorkspace(handle, ctx->blas_workspace, kWorkspaceBytes), "cublasSetWorkspace");
}

void tsr::gemm_destroy(tsr_context* ctx) {
  if (ctx->blas != nullptr) cublasDestroy(handle_of(ctx));
  if (ctx->blas_workspace != nullptr) cudaFree(ctx->blas_workspace);
  ctx->blas = nullptr;
  ctx->blas_workspace = nullptr;
}

#else

int tsr::gemm_create(tsr_context*) { return TSR_OK; }
void tsr::gemm_destroy(tsr_context*) {}

namespace {

int blas_matmul(tsr_context*, tsr_bf16*, const tsr_bf16*, const tsr_bf16*, int M, int, int) {
  return fail(TSR_UNSUPPORTED, "matmul: M=%d needs cuBLAS (more than %d rows), and libtessera_cuda was built without it (cublas_v2.h was not found)",
              M, kGemvCrossoverRows);
}

}  // namespace

#endif

extern "C" int tsr_matmul(tsr_context* ctx, tsr_bf16* out, const tsr_bf16* x, const tsr_bf16* w, int M, int N, int K) {
  TSR_REQUIRE_CONTEXT(ctx);
  TSR_REQUIRE(M >= 0 && N >= 0 && K >= 0, "matmul: M=%d N=%d K=%d", M, N, K);
  if (M == 0 || N == 0) return TSR_OK;
  // decode sizes: the bulk-copy GEMV wherever it applies, whatever the weights' size (on H200 it
  // streams the large ones about as fast as cuBLAS, and in a step it overlaps the kernel before
  // it); else the GEMV for weights up to gemv_max_bytes, cuBLAS past them
  const bool small = M <= kGemvCrossoverRows;
  if (small && ctx->gemv_bulk && tsr::gemv_bulk_applies(x, w, M, K)) {
    return check(tsr::gemv_matmul(out, x, w, M, N, K, ctx->sm_count, ctx->overlap_launches, ctx->stream, true), "gemv_matmul (bulk)");
  }
  const bool gemv = small && (ctx->blas == nullptr || (size_t)N * K * sizeof(tsr_bf16) <= ctx->gemv_max_bytes);
  if (gemv) return check(tsr::gemv_matmul(out, x, w, M, N, K, ctx->sm_count, ctx->overlap_launches, ctx->stream), "gemv_matmul");
  return blas_matmul(ctx, out, x, w, M, N, K);
}

// ---- projections that make their next kernel as they store (fused_gemv.cuh) ----
//
// Each entry point runs its composite catalog kernel as one bulk-copy GEMV at decode sizes and
// otherwise as the sequence that defines it (src/kernels/composite.ts); the two give the same
// bits. `norm_` variants take their input as the residual stream's RMSNorm: made by the GEMV
// itself where the residual is complete (kResidualKeep), else by add_rmsnorm first.

namespace {

// where a fused kernel may run: decode sizes, the bulk GEMV on, fusion on
bool fuses(const tsr_context* ctx, int T) { return ctx->fused_gemv && ctx->gemv_bulk && T >= 1 && T <= kGemvCrossoverRows; }

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

}  // namespace

extern "C" int tsr_qkv_rope_kv_write(tsr_context* ctx, tsr_bf16* qkv, const tsr_bf16* x, const tsr_bf16* w, tsr_bf16* kCache,
                                     tsr_bf16* vCache, const int32_t* positions, const float* invFreq, const int32_t* slots, int T, int K,
                                     int Hq, int Hkv, int D) {
  TSR_REQUIRE_CONTEXT(ctx);
  TSR_REQUIRE(T >= 0 && K >= 0 && Hq >= 0 && Hkv > 0 && D > 0 && D % 2 == 0 && D <= 8192,
              "qkv_rope_kv_write: T=%d K=%d Hq=%d Hkv=%d D=%d (D even, at most 8192)", T, K, Hq, Hkv, D);
  if (T == 0) return TSR_OK;
  if (fuses(ctx, T) && tsr::qkv_rope_fuses(x, w, T, K, D)) {
    return check(tsr::qkv_rope_kv_write(qkv, tsr::gemv::XRows{x}, w, kCache, vCache, positions, invFreq, slots, T, K, Hq, Hkv, D,
                                        ctx->sm_count, ctx->overlap_launches, ctx->stream),
                 "qkv_rope_kv_write");
  }
  // the projection, then rope_kv_write over it
  const int width = (Hq + 2 * Hkv) * D;
  if (int status = tsr_matmul(ctx, qkv, x, w, T, width, K)) return status;
  return tsr_rope_kv_write(ctx, qkv, qkv + (size_t)Hq * D, kCache, vCache, qkv + (size_t)(Hq + Hkv) * D, positions, invFreq, slots, T, Hq,
                           Hkv, D, width, width, width);
}

extern "C" int tsr_norm_qkv_rope_kv_write(tsr_context* ctx, tsr_bf16* qkv, tsr_bf16* normed, float* residual, const tsr_bf16* x,
                                          const tsr_bf16* normW, const tsr_bf16* w, tsr_bf16* kCache, tsr_bf16* vCache,
                                          const int32_t* positions, const float* invFreq, const int32_t* slots, int T, int K, int Hq, int Hkv,
                                          int D, float eps, int residualMode) {
  TSR_REQUIRE_CONTEXT(ctx);
  TSR_REQUIRE(T >= 0 && K > 0 && Hq >= 0 && Hkv > 0 && D > 0 && D % 2 == 0 && D <= 8192,
              "norm_qkv_rope_kv_write: T=%d K=%d Hq=%d Hkv=%d D=%d (D even, at most 8192)", T, K, Hq, Hkv, D);
  if (T == 0) return TSR_OK;
  if (residualMode == tsr::kResidualKeep && fuses(ctx, T) && aligned16(normW) && tsr::qkv_rope_fuses(residual, w, T, K, D)) {
    return check(tsr::qkv_rope_kv_write(qkv, tsr::NormedResidual{residual, normW, eps}, w, kCache, vCache, positions, invFreq, slots, T, K,
                                        Hq, Hkv, D, ctx->sm_count, ctx->overlap_launches, ctx->stream),
                 "norm_qkv_rope_kv_write");
  }
  if (int status = tsr_add_rmsnorm(ctx, normed, residual, x, normW, T, K, eps, residualMode)) return status;
  return tsr_qkv_rope_kv_write(ctx, qkv, normed, w, kCache, vCache, positions, invFreq, slots, T, K, Hq, Hkv, D);
}

extern "C" int tsr_gate_up_silu(tsr_context* ctx, tsr_bf16* out, tsr_bf16* gateUp, const tsr_bf16* x, const tsr_bf16* w, int T, int I, int K) {
  TSR_REQUIRE_CONTEXT(ctx);
  TSR_REQUIRE(T >= 0 && I >= 0 && K >= 0, "gate_up_silu: T=%d I=%d K=%d", T, I, K);
  if (T == 0 || I == 0) return TSR_OK;
  // gateUp is not written by the fused kernel
  if (fuses(ctx, T) && I % 8 == 0 && tsr::gemv_bulk_applies(x, w, T, K)) {
    return check(tsr::gate_up_silu(out, tsr::gemv::XRows{x}, w, T, I, K, ctx->sm_count, ctx->overlap_launches, ctx->stream), "gate_up_silu");
  }
  if (int status = tsr_matmul(ctx, gateUp, x, w, T, 2 * I, K)) return status;
  return tsr_silu_mul(ctx, out, gateUp, T, I);
}

extern "C" int tsr_norm_gate_up_silu(tsr_context* ctx, tsr_bf16* out, tsr_bf16* gateUp, tsr_bf16* normed, float* residual, const tsr_bf16* x,
                                     const tsr_bf16* normW, const tsr_bf16* w, int T, int I, int K, float eps, int residualMode) {
  TSR_REQUIRE_CONTEXT(ctx);
  TSR_REQUIRE(T >= 0 && I >= 0 && K > 0, "norm_gate_up_silu: T=%d I=%d K=%d", T, I, K);
  if (T == 0) return TSR_OK;
  if (residualMode == tsr::kResidualKeep && fuses(ctx, T) && I % 8 == 0 && aligned16(normW) && tsr::gemv_bulk_applies(residual, w, T, K)) {
    return check(tsr::gate_up_silu(out, tsr::NormedResidual{residual, normW, eps}, w, T, I, K, ctx->sm_count, ctx->overlap_launches, ctx->stream),
                 "norm_gate_up_silu");
  }
  if (int status = tsr_add_rmsnorm(ctx, normed, residual, x, normW, T, K, eps, residualMode)) return status;
  return tsr_gate_up_silu(ctx, out, gateUp, normed, w, T, I, K);
}

extern "C" int tsr_matmul_residual_add(tsr_context* ctx, float* residual, tsr_bf16* out, const tsr_bf16* x, const tsr_bf16* w, int M, int N, int K) {
  TSR_REQUIRE_CONTEXT(ctx);
  TSR_REQUIRE(M >= 0 && N >= 0 && K >= 0, "matmul_residual_add: M=%d N=%d K=%d", M, N, K);
  if (M == 0 || N == 0) return TSR_OK;
  // out is not written by the fused kernel
  if (fuses(ctx, M) && tsr::gemv_bulk_applies(x, w, M, K)) {
    return check(tsr::matmul_residual_add(residual, x, w, M, N, K, ctx->sm_count, ctx->overlap_launches, ctx->stream), "matmul_residual_add");
  }
  if (int status = tsr_matmul(ctx, out, x, w, M, N, K)) return status;
  return tsr_residual_add(ctx, residual, out, M * N);
}
