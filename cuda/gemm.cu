// The GEMM of every linear layer: bf16 operands, f32 accumulation. Decode-sized M goes to the
// weight-streaming kernel of gemv.cuh, larger M to cuBLAS.
//
// The only file that needs cuBLAS. Where its header is missing (a machine with the CUDA
// compiler but no cuBLAS, as CI's), it still builds: small M still runs (gemv.cuh needs nothing
// but CUDA), and larger M reports TSR_UNSUPPORTED, so the other kernels stay usable and checkable.
#include <optional>

#include "context.cuh"
#include "fused_gemv.cuh"
#include "gemv.cuh"
#include "matmul_path.cuh"

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
  switch (tsr::matmul_path(ctx, x, w, M, N, K)) {
    case tsr::MatmulPath::kBulkGemv:
      return check(tsr::gemv_matmul(out, x, w, M, N, K, tsr::gemv_launch(ctx), true), "gemv_matmul (bulk)");
    case tsr::MatmulPath::kGemv:
      return check(tsr::gemv_matmul(out, x, w, M, N, K, tsr::gemv_launch(ctx)), "gemv_matmul");
    case tsr::MatmulPath::kBlas:
      break;
  }
  return blas_matmul(ctx, out, x, w, M, N, K);
}

namespace {

// where gemm.cu's fused kernels may run: decode sizes, with the bulk-copy GEMV and fusion on
bool fuses(const tsr_context* ctx, int T) { return ctx->fused_gemv && ctx->gemv_bulk && T <= kGemvCrossoverRows; }

// Where a projection's GEMV also makes the add_rmsnorm before it (gemv::NormedResidualInput): fusion
// and norm fusion on, up to kNormedRows rows, a residual stream written to another buffer than it
// is read from (the kernel's blocks read all of residualIn while each writes its share of
// residualOut), and 16-byte aligned residual and norm weight rows (x's alignment and K % 8 are the
// bulk GEMV's own conditions, checked with them); returns the input, or nullopt for the two kernels
std::optional<tsr::gemv::NormedResidualInput> normed_input(const tsr_context* ctx, int T, float* residualOut, const float* residualIn,
                                                           const tsr_bf16* x, const tsr_bf16* normWeight, float eps, int accumulate) {
  const auto aligned = [](const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; };
  if (!fuses(ctx, T) || !ctx->fused_norms || T > tsr::gemv::kNormedRows || residualOut == residualIn) return std::nullopt;
  if (!aligned(residualOut) || !aligned(residualIn) || !aligned(normWeight)) return std::nullopt;
  return tsr::gemv::NormedResidualInput{residualIn, residualOut, x, normWeight, eps, accumulate};
}

}  // namespace

extern "C" int tsr_qkv_rope_kv_write(tsr_context* ctx, tsr_bf16* qkv, const tsr_bf16* x, const tsr_bf16* w, tsr_bf16* kCache,
                                     tsr_bf16* vCache, const int32_t* positions, const float* invFreq, const int32_t* slots, int T, int K,
                                     int Hq, int Hkv, int D) {
  TSR_REQUIRE_CONTEXT(ctx);
  TSR_REQUIRE(T >= 0 && K >= 0 && Hq >= 0 && Hkv > 0 && D > 0 && D % 2 == 0 && D <= 8192,
              "qkv_rope_kv_write: T=%d K=%d Hq=%d Hkv=%d D=%d (D even, at most 8192)", T, K, Hq, Hkv, D);
  if (T == 0) return TSR_OK;
  // decode sizes, where the bulk GEMV would take the projection: one kernel
  if (fuses(ctx, T) && tsr::qkv_rope_fuses(x, w, T, K, D)) {
    return check(tsr::qkv_rope_kv_write(qkv, tsr::gemv::PlainInput{x}, w, kCache, vCache, positions, invFreq, slots, T, K, Hq, Hkv, D,
                                        tsr::gemv_launch(ctx)),
                 "qkv_rope_kv_write");
  }
  // anywhere else what the fused kernel stands for: the projection, then rope_kv_write over it
  const int width = (Hq + 2 * Hkv) * D;
  if (int status = tsr_matmul(ctx, qkv, x, w, T, width, K)) return status;
  return tsr_rope_kv_write(ctx, qkv, qkv + (size_t)Hq * D, kCache, vCache, qkv + (size_t)(Hq + Hkv) * D, positions, invFreq, slots, T, Hq,
                           Hkv, D, width, width, width);
}

extern "C" int tsr_gate_up_silu(tsr_context* ctx, tsr_bf16* out, tsr_bf16* gateUp, const tsr_bf16* x, const tsr_bf16* w, int T, int I, int K) {
  TSR_REQUIRE_CONTEXT(ctx);
  TSR_REQUIRE(T >= 0 && I >= 0 && K >= 0, "gate_up_silu: T=%d I=%d K=%d", T, I, K);
  if (T == 0 || I == 0) return TSR_OK;
  // decode sizes, where the bulk GEMV would take the projection: one kernel, gateUp not written
  if (fuses(ctx, T) && tsr::gate_up_fuses(x, w, T, I, K)) {
    return check(tsr::gate_up_silu(out, tsr::gemv::PlainInput{x}, w, T, I, K, tsr::gemv_launch(ctx)), "gate_up_silu");
  }
  if (int status = tsr_matmul(ctx, gateUp, x, w, T, 2 * I, K)) return status;
  return tsr_silu_mul(ctx, out, gateUp, T, I);
}

extern "C" int tsr_add_rmsnorm_qkv_rope_kv_write(tsr_context* ctx, tsr_bf16* qkv, tsr_bf16* normed, float* residualOut, const float* residualIn,
                                                 const tsr_bf16* x, const tsr_bf16* normWeight, const tsr_bf16* w, tsr_bf16* kCache,
                                                 tsr_bf16* vCache, const int32_t* positions, const float* invFreq, const int32_t* slots,
                                                 float eps, int accumulate, int T, int K, int Hq, int Hkv, int D) {
  TSR_REQUIRE_CONTEXT(ctx);
  TSR_REQUIRE(T >= 0 && K > 0 && Hq >= 0 && Hkv > 0 && D > 0 && D % 2 == 0 && D <= 8192,
              "add_rmsnorm_qkv_rope_kv_write: T=%d K=%d Hq=%d Hkv=%d D=%d (D even, at most 8192)", T, K, Hq, Hkv, D);
  if (T == 0) return TSR_OK;
  // decode sizes: one kernel makes the norm as it stages x, then the projection, rope and the cache write
  if (const auto input = normed_input(ctx, T, residualOut, residualIn, x, normWeight, eps, accumulate);
      input && tsr::qkv_rope_fuses(x, w, T, K, D, input->shared_bytes(K))) {
    return check(tsr::qkv_rope_kv_write(qkv, *input, w, kCache, vCache, positions, invFreq, slots, T, K, Hq, Hkv, D, tsr::gemv_launch(ctx)),
                 "add_rmsnorm_qkv_rope_kv_write");
  }
  if (int status = tsr_add_rmsnorm(ctx, normed, residualOut, residualIn, x, normWeight, T, K, eps, accumulate)) return status;
  return tsr_qkv_rope_kv_write(ctx, qkv, normed, w, kCache, vCache, positions, invFreq, slots, T, K, Hq, Hkv, D);
}

extern "C" int tsr_add_rmsnorm_gate_up_silu(tsr_context* ctx, tsr_bf16* out, tsr_bf16* gateUp, tsr_bf16* normed, float* residualOut,
                                            const float* residualIn, const tsr_bf16* x, const tsr_bf16* normWeight, const tsr_bf16* w, float eps,
                                            int accumulate, int T, int I, int K) {
  TSR_REQUIRE_CONTEXT(ctx);
  TSR_REQUIRE(T >= 0 && I >= 0 && K > 0, "add_rmsnorm_gate_up_silu: T=%d I=%d K=%d", T, I, K);
  if (T == 0) return TSR_OK;
  // decode sizes: one kernel makes the norm as it stages x, then the projection and the activation
  if (const auto input = normed_input(ctx, T, residualOut, residualIn, x, normWeight, eps, accumulate);
      input && tsr::gate_up_fuses(x, w, T, I, K, input->shared_bytes(K))) {
    return check(tsr::gate_up_silu(out, *input, w, T, I, K, tsr::gemv_launch(ctx)), "add_rmsnorm_gate_up_silu");
  }
  if (int status = tsr_add_rmsnorm(ctx, normed, residualOut, residualIn, x, normWeight, T, K, eps, accumulate)) return status;
  return tsr_gate_up_silu(ctx, out, gateUp, normed, w, T, I, K);
}
