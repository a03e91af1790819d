// What cuBLASLt's other algorithms would gain over cublasGemmEx's choice for the decode GEMMs of
// Llama-3-8B (out[M, N] = x[M, K] @ w[N, K]^T, bf16, f32 accumulation, as gemm.cu calls it): for
// each layer and M, the time of cublasGemmEx, of cuBLASLt's first heuristic, and of the fastest
// of its first 16. Weights rotate over copies that exceed L2, as in gemm_bench; each time is the
// mean of 20 calls after 3, CUDA events. Built only where cuBLAS is (make tools).
//
//   cuda/build/lt_bench
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <vector>

#define CHECK_CUDA(call)                                                                  \
  do {                                                                                    \
    cudaError_t e = (call);                                                               \
    if (e != cudaSuccess) { std::fprintf(stderr, "%s: %s\n", #call, cudaGetErrorString(e)); std::exit(2); } \
  } while (0)
#define CHECK_BLAS(call)                                                                  \
  do {                                                                                    \
    cublasStatus_t s = (call);                                                            \
    if (s != CUBLAS_STATUS_SUCCESS) { std::fprintf(stderr, "%s: %d\n", #call, (int)s); std::exit(2); } \
  } while (0)

namespace {

constexpr size_t kWorkspace = size_t(32) << 20;
constexpr int kCalls = 20;

template <class Call>
float mean_us(cudaStream_t stream, Call call) {
  cudaEvent_t start, stop;
  CHECK_CUDA(cudaEventCreate(&start));
  CHECK_CUDA(cudaEventCreate(&stop));
  for (int i = 0; i < 3; ++i) call(i);
  CHECK_CUDA(cudaEventRecord(start, stream));
  for (int i = 0; i < kCalls; ++i) call(i);
  CHECK_CUDA(cudaEventRecord(stop, stream));
  CHECK_CUDA(cudaEventSynchronize(stop));
  float ms = 0;
  CHECK_CUDA(cudaEventElapsedTime(&ms, start, stop));
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  return 1e3f * ms / kCalls;
}

}  // namespace

int main() {
  cudaStream_t stream;
  CHECK_CUDA(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  cublasHandle_t blas;
  cublasLtHandle_t lt;
  CHECK_BLAS(cublasCreate(&blas));
  CHECK_BLAS(cublasSetStream(blas, stream));
  CHECK_BLAS(cublasLtCreate(&lt));
  void* workspace;
  CHECK_CUDA(cudaMalloc(&workspace, kWorkspace));
  CHECK_BLAS(cublasSetWorkspace(blas, workspace, kWorkspace));
  cudaDeviceProp props;
  CHECK_CUDA(cudaGetDeviceProperties(&props, 0));
  std::printf("%s; us per call (GB/s of weights): cublasGemmEx, cuBLASLt heuristic 0, fastest of the first 16\n", props.name);

  struct Layer { const char* name; int K, N; };
  const Layer layers[] = {{"qkv", 4096, 6144}, {"o", 4096, 4096}, {"gate_up", 4096, 28672}, {"down", 14336, 4096}, {"lm_head", 4096, 128256}};
  for (const Layer& layer : layers) {
    const int K = layer.K, N = layer.N;
    const size_t weight_bytes = (size_t)N * K * 2;
    const int copies = (int)std::max<size_t>(2, (3 * (size_t)props.l2CacheSize + weight_bytes - 1) / weight_bytes);
    std::vector<__nv_bfloat16*> w(copies);
    for (auto& p : w) {
      CHECK_CUDA(cudaMalloc(&p, weight_bytes));
      CHECK_CUDA(cudaMemset(p, 0x3c, weight_bytes));  // 0x3c3c: about 0.0115, finite
    }
    __nv_bfloat16 *x, *out;
    CHECK_CUDA(cudaMalloc(&x, (size_t)256 * K * 2));
    CHECK_CUDA(cudaMalloc(&out, (size_t)256 * N * 2));
    CHECK_CUDA(cudaMemset(x, 0x3c, (size_t)256 * K * 2));
    for (int M : {1, 8, 16, 64, 256}) {
      const float alpha = 1.f, beta = 0.f;
      const float gemm_ex = mean_us(stream, [&](int i) {
        CHECK_BLAS(cublasGemmEx(blas, CUBLAS_OP_T, CUBLAS_OP_N, N, M, K, &alpha, w[i % copies], CUDA_R_16BF, K, x, CUDA_R_16BF, K, &beta, out,
                                CUDA_R_16BF, N, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
      });
      cublasLtMatmulDesc_t desc;
      CHECK_BLAS(cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
      const cublasOperation_t transa = CUBLAS_OP_T, transb = CUBLAS_OP_N;
      CHECK_BLAS(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &transa, sizeof transa));
      CHECK_BLAS(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &transb, sizeof transb));
      cublasLtMatrixLayout_t a, b, c;
      CHECK_BLAS(cublasLtMatrixLayoutCreate(&a, CUDA_R_16BF, K, N, K));
      CHECK_BLAS(cublasLtMatrixLayoutCreate(&b, CUDA_R_16BF, K, M, K));
      CHECK_BLAS(cublasLtMatrixLayoutCreate(&c, CUDA_R_16BF, N, M, N));
      cublasLtMatmulPreference_t preference;
      CHECK_BLAS(cublasLtMatmulPreferenceCreate(&preference));
      CHECK_BLAS(cublasLtMatmulPreferenceSetAttribute(preference, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &kWorkspace, sizeof kWorkspace));
      cublasLtMatmulHeuristicResult_t results[16];
      int found = 0;
      CHECK_BLAS(cublasLtMatmulAlgoGetHeuristic(lt, desc, a, b, c, c, preference, 16, results, &found));
      float first = 0, best = 1e30f;
      int best_index = -1;
      for (int r = 0; r < found; ++r) {
        if (results[r].state != CUBLAS_STATUS_SUCCESS) continue;
        bool ok = true;
        const float us = mean_us(stream, [&](int i) {
          if (!ok) return;
          ok = cublasLtMatmul(lt, desc, &alpha, w[i % copies], a, x, b, &beta, out, c, out, c, &results[r].algo, workspace, kWorkspace, stream) ==
               CUBLAS_STATUS_SUCCESS;
        });
        if (!ok) continue;
        if (r == 0) first = us;
        if (us < best) best = us, best_index = r;
      }
      const double gb = weight_bytes / 1e3;
      std::printf("%-8s M=%3d  GemmEx %8.2f (%5.0f)  Lt[0] %8.2f (%5.0f)  best Lt[%2d] of %2d %8.2f (%5.0f)  best/GemmEx %.3f\n", layer.name, M,
                  gemm_ex, gb / gemm_ex, first, gb / first, best_index, found, best, gb / best, best / gemm_ex);
      cublasLtMatmulPreferenceDestroy(preference);
      cublasLtMatrixLayoutDestroy(a);
      cublasLtMatrixLayoutDestroy(b);
      cublasLtMatrixLayoutDestroy(c);
      cublasLtMatmulDescDestroy(desc);
    }
    for (auto* p : w) cudaFree(p);
    cudaFree(x);
    cudaFree(out);
  }
  cublasLtDestroy(lt);
  cublasDestroy(blas);
  return 0;
}
