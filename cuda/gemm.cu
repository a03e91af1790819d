// The GEMM of every linear layer: bf16 operands, f32 accumulation. Decode-sized M goes to the
// weight-streaming kernel of gemv.cuh, larger M to cuBLAS.
//
// The only file that needs cuBLAS. Where its header is missing (a machine with the CUDA
// compiler but no cuBLAS, as CI's), it still builds: small M still runs (gemv.cuh needs nothing
// but CUDA), and larger M reports TSR_UNSUPPORTED, so the other kernels stay usable and checkable.
#include "context.cuh"
#include "gemv.cuh"

#if __has_include(<cublas_v2.h>)
#include <cublas_v2.h>
#define TSR_HAVE_CUBLAS 1
#else
#define TSR_HAVE_CUBLAS 0
#endif

using tsr::check;
using tsr::fail;

namespace {

// The most rows of x that go to gemv.cuh; more go to cuBLAS. gemv.cuh's one 8-column mma tile
// covers M = 1..8 at the cost of M = 1 (a pure weight stream), and its result for a row does not
// depend on M, so every decode batch up to 8 gets the same bits per row. At 9..16 it takes a
// second mma tile and twice the x traffic, while cuBLAS already streams weights at ~92% of the
// copy bandwidth at M = 8 for 4096 -> 14336 on H100 (bench/results/gpu-kernels-*): kept on
// cuBLAS until cuda/build/gemm_bench shows the GEMV ahead there too (it times both at M = 16).
// Batch invariance holds on each side of this line, not across it: a row's bits at M = 9 are
// cuBLAS's, not the GEMV's. The bulk-copy GEMV gives the GEMV's bits; where it does not apply
// (x too large for its shared memory: Llama-3-8B's down projection past 2 rows), weights over
// gemv_max_bytes go to cuBLAS, whose bits for a row may depend on M.
constexpr int kGemvCrossoverRows = 8;
static_assert(kGemvCrossoverRows <= tsr::kGemvMaxRows, "gemv.cuh takes at most kGemvMaxRows rows");

}  // namespace

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
