// Times the decode-sized GEMMs of Llama-3-8B three ways, beside the memory ceiling measured in the
// same run, and checks each against a float64 reference. Exit status 0 only when every result is
// within tolerance and batch invariant.
//
//   cuda/build/gemm_bench
//
// Per layer (K -> N: qkv 4096 -> 6144, o 4096 -> 4096, gate_up 4096 -> 28672, down 14336 -> 4096,
// lm_head 4096 -> 128256) and M in {1, 2, 4, 8, 16}:
// - tsr_matmul: the C ABI, whichever path it takes at that M (gemv.cuh up to its crossover, cuBLAS
//   past it);
// - gemv: gemv.cuh's kernel launched directly at every M it takes (up to 16), which is how the
//   crossover in gemm.cu is measured;
// - cuBLAS: cublasGemmEx as gemm.cu calls it, where cuBLAS is present at build time.
// Each time is the median over 25 samples of the mean of 8 back-to-back calls (after 3 warm-up
// calls), CUDA events; GB/s counts the weight bytes. The weights rotate over enough copies that
// each call reads them from HBM, not from the 50 MB L2 (x and the output stay in L2, as in a
// decode step). Ceilings: a device-to-device copy ((read + write) / time) and a read-only stream
// of 16-byte loads; beside them the bulk GEMV's weight stream alone (its copies and slots, no
// math), with two and three slots, in its copies' shape and as one 8 KB copy a stage.
//
// Checks: inputs uniform in [-1, 1], w scaled by 1/sqrt(K) so outputs are O(1); every output within
// 2^-8 |ref| + 1e-3 of a float64 reference (one bf16 rounding is at most 2^-8 |ref|; the 1e-3
// covers f32 and tensor-core accumulation). Batch invariance: every row of the GEMV's result at
// every M equals, bit for bit, its result at M = 1 for that row alone; row 0 of tsr_matmul at
// M = 2, 4, 8 equals tsr_matmul at M = 1 where tsr_matmul takes the GEMV (gemm.cu's dispatch). Odd shapes (K % 8 != 0, unaligned pointers, N not a
// multiple of the row tile, K = 0) are checked too, untimed, and the vector and scalar load paths
// must agree bit for bit.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "context.cuh"
#include "gemv.cuh"
#include "matmul_path.cuh"
#include "tessera_cuda.h"

#if __has_include(<cublas_v2.h>)
#include <cublas_v2.h>
#define HAVE_CUBLAS 1
#else
#define HAVE_CUBLAS 0
#endif

namespace {

using tsr::bf16;

// an API failure ends the run: there is nothing to measure after it
#define TSR_OK_OR_DIE(call)                                                                \
  do {                                                                                     \
    if (int status_ = (call)) {                                                            \
      std::fprintf(stderr, "%s failed (%d): %s\n", #call, status_, tsr_last_error());    \
      std::exit(2);                                                                        \
    }                                                                                      \
  } while (0)
#define CUDA_OK_OR_DIE(call)                                                               \
  do {                                                                                     \
    cudaError_t error_ = (call);                                                           \
    if (error_ != cudaSuccess) {                                                           \
      std::fprintf(stderr, "%s failed: %s\n", #call, cudaGetErrorString(error_));        \
      std::exit(2);                                                                        \
    }                                                                                      \
  } while (0)

constexpr int kMaxRows = tsr::kGemvMaxRows;
constexpr int kWarmupCalls = 3;
constexpr int kSamples = 25;
constexpr int kCallsPerSample = 8;

// ---- kernels ----

// ref[m, n] = sum_k x[m, k] w[n, k] in float64, one warp per n
__global__ void reference_kernel(float* ref, const bf16* x, const bf16* w, int M, int N, int K) {
  const int n = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x & 31;
  if (n >= N) return;
  double acc[kMaxRows] = {};
  for (int k = lane; k < K; k += 32) {
    const double wk = __bfloat162float(w[(size_t)n * K + k]);
#pragma unroll
    for (int m = 0; m < kMaxRows; ++m) {
      if (m < M) acc[m] += wk * (double)__bfloat162float(x[(size_t)m * K + k]);
    }
  }
#pragma unroll
  for (int m = 0; m < kMaxRows; ++m) {
    double v = acc[m];
    for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
    if (lane == 0 && m < M) ref[(size_t)m * N + n] = (float)v;
  }
}

// Reads n 16-byte vectors once, as the GEMV reads weights; the xor only keeps the loads alive.
__global__ void read_kernel(const uint4* p, size_t n, unsigned* sink) {
  unsigned acc = 0;
  const size_t stride = (size_t)gridDim.x * blockDim.x;
  size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
  for (; i + 3 * stride < n; i += 4 * stride) {
    uint4 v[4];
#pragma unroll
    for (int u = 0; u < 4; ++u) v[u] = tsr::gemv::load_streaming(reinterpret_cast<const bf16*>(p + i + u * stride));
#pragma unroll
    for (int u = 0; u < 4; ++u) acc ^= v[u].x ^ v[u].y ^ v[u].z ^ v[u].w;
  }
  for (; i < n; i += stride) {
    const uint4 v = tsr::gemv::load_streaming(reinterpret_cast<const bf16*>(p + i));
    acc ^= v.x ^ v.y ^ v.z ^ v.w;
  }
  if (acc == 0x9e3779b9u) *sink = acc;
}

// ---- timing ----

// Events on the tool's own stream (gemv, cuBLAS, copies)
struct StreamClock {
  cudaStream_t stream;
  std::vector<cudaEvent_t> events;
  StreamClock(cudaStream_t s, int n) : stream(s), events(n) {
    for (auto& e : events) CUDA_OK_OR_DIE(cudaEventCreate(&e));
  }
  ~StreamClock() {
    for (auto e : events) cudaEventDestroy(e);
  }
  void record(int i) { CUDA_OK_OR_DIE(cudaEventRecord(events[i], stream)); }
  float ms(int a, int b) {
    float ms = 0;
    CUDA_OK_OR_DIE(cudaEventSynchronize(events[b]));
    CUDA_OK_OR_DIE(cudaEventElapsedTime(&ms, events[a], events[b]));
    return ms;
  }
};

// Events on the context's stream, through the C ABI (tsr_matmul)
struct ContextClock {
  tsr_context* ctx;
  std::vector<void*> events;
  ContextClock(tsr_context* c, int n) : ctx(c), events(n) {
    for (auto& e : events) TSR_OK_OR_DIE(tsr_event_create(ctx, &e));
  }
  ~ContextClock() {
    for (auto e : events) tsr_event_destroy(ctx, e);
  }
  void record(int i) { TSR_OK_OR_DIE(tsr_event_record(ctx, events[i])); }
  float ms(int a, int b) {
    float ms = 0;
    TSR_OK_OR_DIE(tsr_event_elapsed(ctx, events[a], events[b], &ms));
    return ms;
  }
};

// Median over kSamples of the mean time of kCallsPerSample back-to-back calls, in microseconds;
// call(i) runs the i-th call (i picks the weight copy).
template <class Clock, class Call>
double median_us(Clock& clock, Call call) {
  int i = 0;
  for (int c = 0; c < kWarmupCalls; ++c) call(i++);
  for (int s = 0; s < kSamples; ++s) {
    clock.record(2 * s);
    for (int c = 0; c < kCallsPerSample; ++c) call(i++);
    clock.record(2 * s + 1);
  }
  std::vector<double> us(kSamples);
  for (int s = 0; s < kSamples; ++s) us[s] = 1e3 * clock.ms(2 * s, 2 * s + 1) / kCallsPerSample;
  std::nth_element(us.begin(), us.begin() + kSamples / 2, us.end());
  return us[kSamples / 2];
}

// ---- device buffers and checks ----

struct Device {
  tsr_context* ctx;
  cudaStream_t stream;
  int sm_count;
#if HAVE_CUBLAS
  cublasHandle_t blas;
#endif
};

bf16* device_bf16(tsr_context* ctx, size_t n) {
  void* p = nullptr;
  TSR_OK_OR_DIE(tsr_malloc(ctx, &p, std::max<size_t>(n, 1) * sizeof(bf16)));
  return static_cast<bf16*>(p);
}

std::vector<unsigned short> read_bits(const Device& d, const bf16* p, size_t n) {
  std::vector<unsigned short> bits(n);
  TSR_OK_OR_DIE(tsr_synchronize(d.ctx));
  CUDA_OK_OR_DIE(cudaStreamSynchronize(d.stream));
  TSR_OK_OR_DIE(tsr_read(d.ctx, bits.data(), p, n * sizeof(bf16)));
  return bits;
}

float bf16_bits_to_float(unsigned short bits) {
  const unsigned u = (unsigned)bits << 16;
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

struct Error {
  double max_abs = 0;
  bool ok = true;
};

// out (rows [0, M) of an [M, N] result) against ref[M, N]
Error compare(const std::vector<unsigned short>& out, const std::vector<float>& ref, int M, int N) {
  Error e;
  for (size_t i = 0; i < (size_t)M * N; ++i) {
    const double got = bf16_bits_to_float(out[i]), want = ref[i];
    const double diff = std::fabs(got - want);
    if (!(diff <= 0x1p-8 * std::fabs(want) + 1e-3)) e.ok = false;
    e.max_abs = std::max(e.max_abs, std::isnan(diff) ? INFINITY : diff);
  }
  return e;
}

std::vector<float> reference(const Device& d, const bf16* x, const bf16* w, int M, int N, int K) {
  float* ref = nullptr;
  TSR_OK_OR_DIE(tsr_synchronize(d.ctx));
  CUDA_OK_OR_DIE(cudaMalloc(&ref, std::max<size_t>((size_t)M * N, 1) * sizeof(float)));
  reference_kernel<<<(N + 7) / 8, 256, 0, d.stream>>>(ref, x, w, M, N, K);
  CUDA_OK_OR_DIE(cudaGetLastError());
  std::vector<float> host((size_t)M * N);
  CUDA_OK_OR_DIE(cudaStreamSynchronize(d.stream));
  CUDA_OK_OR_DIE(cudaMemcpy(host.data(), ref, host.size() * sizeof(float), cudaMemcpyDeviceToHost));
  CUDA_OK_OR_DIE(cudaFree(ref));
  return host;
}

void gemv(const Device& d, bf16* out, const bf16* x, const bf16* w, int M, int N, int K, bool bulk = false) {
  CUDA_OK_OR_DIE(tsr::gemv_matmul(out, x, w, M, N, K, tsr::GemvLaunch{d.sm_count, false, d.stream}, bulk));
}

// tsr_matmul's status: TSR_UNSUPPORTED (no cuBLAS past the crossover) is reported, not fatal
int matmul(const Device& d, bf16* out, const bf16* x, const bf16* w, int M, int N, int K) {
  const int status = tsr_matmul(d.ctx, out, x, w, M, N, K);
  if (status != TSR_OK && status != TSR_UNSUPPORTED) {
    std::fprintf(stderr, "tsr_matmul M=%d N=%d K=%d failed (%d): %s\n", M, N, K, status, tsr_last_error());
    std::exit(2);
  }
  return status;
}

#if HAVE_CUBLAS
void blas(const Device& d, bf16* out, const bf16* x, const bf16* w, int M, int N, int K) {
  const float alpha = 1.f, beta = 0.f;  // as gemm.cu: column-major out^T[N,M] = w[N,K] x^T[K,M]
  const cublasStatus_t status = cublasGemmEx(d.blas, CUBLAS_OP_T, CUBLAS_OP_N, N, M, K, &alpha, w, CUDA_R_16BF, K, x, CUDA_R_16BF, K,
                                             &beta, out, CUDA_R_16BF, N, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
  if (status != CUBLAS_STATUS_SUCCESS) {
    std::fprintf(stderr, "cublasGemmEx M=%d N=%d K=%d: %s\n", M, N, K, cublasGetStatusString(status));
    std::exit(2);
  }
}
#endif

bool same_bits(const unsigned short* a, const unsigned short* b, size_t n) { return std::memcmp(a, b, n * sizeof *a) == 0; }

// ---- ceilings ----

struct Ceilings {
  double copy_gbs, read_gbs;
};

Ceilings measure_ceilings(const Device& d) {
  const size_t bytes = size_t(1) << 30;
  void *src = nullptr, *dst = nullptr;
  unsigned* sink = nullptr;
  CUDA_OK_OR_DIE(cudaMalloc(&src, bytes));
  CUDA_OK_OR_DIE(cudaMalloc(&dst, bytes));
  CUDA_OK_OR_DIE(cudaMalloc(&sink, sizeof(unsigned)));
  CUDA_OK_OR_DIE(cudaMemsetAsync(src, 1, bytes, d.stream));
  StreamClock clock(d.stream, 2 * kSamples);
  const double copy_us =
      median_us(clock, [&](int) { CUDA_OK_OR_DIE(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, d.stream)); });
  const double read_us = median_us(clock, [&](int) {
    read_kernel<<<d.sm_count * 8, 256, 0, d.stream>>>(static_cast<const uint4*>(src), bytes / sizeof(uint4), sink);
    CUDA_OK_OR_DIE(cudaGetLastError());
  });
  CUDA_OK_OR_DIE(cudaFree(src));
  CUDA_OK_OR_DIE(cudaFree(dst));
  CUDA_OK_OR_DIE(cudaFree(sink));
  return {2.0 * bytes / copy_us / 1e3, bytes / read_us / 1e3};
}

// ---- odd shapes: correctness only ----

// x (and w) at an offset of `x_offset` (`w_offset`) elements into their buffers: an odd offset
// makes the rows unaligned, so the scalar load path runs
struct OddCase {
  int K, N, x_offset, w_offset;
};

bool check_odd_shapes(const Device& d) {
  const OddCase cases[] = {{1, 1, 0, 0},     {7, 5, 0, 0},      {8, 33, 0, 0},     {83, 769, 0, 0}, {769, 83, 0, 0},
                           {520, 40, 0, 0},  {5125, 300, 0, 0}, {14343, 40, 0, 0}, {0, 10, 0, 0},   {4096, 100, 1, 0},
                           {4096, 100, 0, 1}, {4096, 100, 0, 8}, {3000, 777, 0, 0}, {1024, 2000, 0, 0}, {3584, 1000, 0, 0}};
  const int gemv_rows[] = {1, 3, 8};  // the library's calls (kGemvCrossoverRows)
  const int matmul_rows[] = {1, 3, 8};
  bool all_ok = true;
  std::printf("odd shapes (correctness and batch invariance; M = 1, 3, 8 through gemv and through tsr_matmul):\n");
  for (const OddCase& c : cases) {
    bf16* x_buffer = device_bf16(d.ctx, (size_t)kMaxRows * c.K + c.x_offset);
    bf16* w_buffer = device_bf16(d.ctx, (size_t)c.N * c.K + c.w_offset);
    bf16* x = x_buffer + c.x_offset;
    bf16* w = w_buffer + c.w_offset;
    if (c.K > 0) {
      TSR_OK_OR_DIE(tsr_fill_uniform(d.ctx, x, kMaxRows, c.K, c.K, 0, 11, 0.f, 1.f));
      TSR_OK_OR_DIE(tsr_fill_uniform(d.ctx, w, c.N, c.K, c.K, 0, 12, 0.f, 1.f / std::sqrt((float)c.K)));
    }
    const std::vector<float> ref = reference(d, x, w, kMaxRows, c.N, c.K);
    bf16* out = device_bf16(d.ctx, (size_t)kMaxRows * c.N);
    bool ok = true;
    double worst = 0;
    std::vector<unsigned short> first_row;  // row 0 of the GEMV at M = 1, the bits every run must give
    // `what` at M rows against the reference, and its row 0 against first_row
    auto check_rows = [&](const char* what, int M) {
      const std::vector<unsigned short> got = read_bits(d, out, (size_t)M * c.N);
      const Error e = compare(got, ref, M, c.N);
      ok = ok && e.ok;
      worst = std::max(worst, e.max_abs);
      if (first_row.empty()) first_row = got;
      if (!same_bits(got.data(), first_row.data(), c.N)) {
        std::printf("  K=%d N=%d: %s row 0 at M=%d differs from the gemv at M=1\n", c.K, c.N, what, M);
        ok = false;
      }
    };
    for (int M : gemv_rows) {
      gemv(d, out, x, w, M, c.N, c.K);
      check_rows("gemv", M);
      gemv(d, out, x, w, M, c.N, c.K, true);  // the bulk-copy GEMV where it applies: the same bits
      check_rows("bulk gemv", M);
    }
    for (int M : matmul_rows) {
      matmul(d, out, x, w, M, c.N, c.K);
      check_rows("tsr_matmul", M);
    }
    // an unaligned case must give the bits of the aligned (vector) path on the same values
    if (c.x_offset % 8 != 0 || c.w_offset % 8 != 0) {
      bf16* x_aligned = device_bf16(d.ctx, (size_t)kMaxRows * c.K);
      bf16* w_aligned = device_bf16(d.ctx, (size_t)c.N * c.K);
      TSR_OK_OR_DIE(tsr_synchronize(d.ctx));
      CUDA_OK_OR_DIE(cudaMemcpy(x_aligned, x, (size_t)kMaxRows * c.K * sizeof(bf16), cudaMemcpyDeviceToDevice));
      CUDA_OK_OR_DIE(cudaMemcpy(w_aligned, w, (size_t)c.N * c.K * sizeof(bf16), cudaMemcpyDeviceToDevice));
      gemv(d, out, x, w, 8, c.N, c.K);
      const std::vector<unsigned short> scalar = read_bits(d, out, (size_t)8 * c.N);
      gemv(d, out, x_aligned, w_aligned, 8, c.N, c.K);
      const std::vector<unsigned short> vector = read_bits(d, out, (size_t)8 * c.N);
      if (!same_bits(scalar.data(), vector.data(), scalar.size())) {
        std::printf("  K=%d N=%d: the scalar and vector load paths differ\n", c.K, c.N);
        ok = false;
      }
      TSR_OK_OR_DIE(tsr_free(d.ctx, x_aligned));
      TSR_OK_OR_DIE(tsr_free(d.ctx, w_aligned));
    }
    std::printf("  K=%-5d N=%-4d x+%d w+%d: max |err| %.2e %s\n", c.K, c.N, c.x_offset, c.w_offset, worst, ok ? "ok" : "FAILED");
    all_ok = all_ok && ok;
    TSR_OK_OR_DIE(tsr_free(d.ctx, x_buffer));
    TSR_OK_OR_DIE(tsr_free(d.ctx, w_buffer));
    TSR_OK_OR_DIE(tsr_free(d.ctx, out));
  }
  return all_ok;
}

// ---- the layers of Llama-3-8B ----

// Copies of a random w[N, K] (scaled by 1/sqrt(K)), enough of them (two at least) that a call
// rotating over them finds its weights evicted from L2 by the calls since their last use
std::vector<bf16*> weight_copies(const Device& d, int N, int K, size_t l2_bytes) {
  const size_t weight_bytes = (size_t)N * K * sizeof(bf16);
  std::vector<bf16*> w(std::max<size_t>(2, (3 * l2_bytes + weight_bytes - 1) / weight_bytes));
  for (auto& copy : w) {
    copy = device_bf16(d.ctx, (size_t)N * K);
    TSR_OK_OR_DIE(tsr_fill_uniform(d.ctx, copy, N, K, K, 0, 1, 0.f, 1.f / std::sqrt((float)K)));
  }
  return w;
}

struct Layer {
  const char* name;
  int K, N;
};

bool bench_layer(const Device& d, const Layer& layer, const Ceilings& ceilings, size_t l2_bytes) {
  const int K = layer.K, N = layer.N;
  const size_t weight_bytes = (size_t)N * K * sizeof(bf16);
  const std::vector<bf16*> w = weight_copies(d, N, K, l2_bytes);
  const int copies = (int)w.size();
  bf16* x = device_bf16(d.ctx, (size_t)kMaxRows * K);
  TSR_OK_OR_DIE(tsr_fill_uniform(d.ctx, x, kMaxRows, K, K, 0, 2, 0.f, 1.f));
  bf16* out = device_bf16(d.ctx, (size_t)kMaxRows * N);
  const std::vector<float> ref = reference(d, x, w[0], kMaxRows, N, K);

  // the GEMV's result for each row of x alone: what every M must reproduce
  std::vector<unsigned short> alone((size_t)kMaxRows * N);
  for (int m = 0; m < kMaxRows; ++m) {
    gemv(d, out, x + (size_t)m * K, w[0], 1, N, K);
    const std::vector<unsigned short> row = read_bits(d, out, N);
    std::copy(row.begin(), row.end(), alone.begin() + (size_t)m * N);
  }
  std::vector<unsigned short> matmul_row0;
  // the sizes at which tsr_matmul gives the GEMV's bits (its dispatch, with this context's
  // settings); cuBLAS's bits for a row may depend on M
  const auto through_gemv = [&](int M) { return tsr::matmul_path(d.ctx, x, w[0], M, N, K) != tsr::MatmulPath::kBlas; };

  bool ok = true;
  const double gb = weight_bytes / 1e9;
  for (int M : {1, 2, 4, 8, 16}) {
    // correctness, on copy 0
    const int matmul_status = matmul(d, out, x, w[0], M, N, K);
    Error matmul_error;
    if (matmul_status == TSR_OK) {
      const std::vector<unsigned short> got = read_bits(d, out, (size_t)M * N);
      matmul_error = compare(got, ref, M, N);
      if (M == 1) matmul_row0.assign(got.begin(), got.begin() + N);
      // batch invariance is the GEMV's
      if (M > 1 && through_gemv(1) && through_gemv(M) && !same_bits(got.data(), matmul_row0.data(), N)) {
        std::printf("  %s M=%d: tsr_matmul row 0 differs from M=1 (batch invariance)\n", layer.name, M);
        ok = false;
      }
    }
    // the GEMV as the library calls it: up to kGemvCrossoverRows rows
    const bool direct = M <= tsr::kGemvCrossoverRows;
    Error gemv_error;
    std::vector<unsigned short> gemv_out;
    if (direct) {
      gemv(d, out, x, w[0], M, N, K);
      gemv_out = read_bits(d, out, (size_t)M * N);
      gemv_error = compare(gemv_out, ref, M, N);
    }
    if (direct && !same_bits(gemv_out.data(), alone.data(), (size_t)M * N)) {
      std::printf("  %s M=%d: a row of the GEMV differs from that row at M=1 (batch invariance)\n", layer.name, M);
      ok = false;
    }
#if HAVE_CUBLAS
    blas(d, out, x, w[0], M, N, K);
    const Error blas_error = compare(read_bits(d, out, (size_t)M * N), ref, M, N);
#endif

    // timings, rotating the weight copies
    double matmul_us = NAN;
    if (matmul_status == TSR_OK) {
      ContextClock clock(d.ctx, 2 * kSamples);
      matmul_us = median_us(clock, [&](int i) { matmul(d, out, x, w[i % copies], M, N, K); });
    }
    StreamClock clock(d.stream, 2 * kSamples);
    const double gemv_us = direct ? median_us(clock, [&](int i) { gemv(d, out, x, w[i % copies], M, N, K); }) : NAN;
    // the bulk-copy GEMV: the same bits as the GEMV, and its time
    double bulk_us = NAN;
    bool bulk_same = true;
    if (direct) {
      gemv(d, out, x, w[0], M, N, K, true);
      bulk_same = same_bits(read_bits(d, out, (size_t)M * N).data(), gemv_out.data(), (size_t)M * N);
      if (!bulk_same) std::printf("  %s M=%d: the bulk-copy GEMV differs from the GEMV\n", layer.name, M);
      bulk_us = median_us(clock, [&](int i) { gemv(d, out, x, w[i % copies], M, N, K, true); });
    }
    const bool row_ok = (matmul_status != TSR_OK || matmul_error.ok) && (!direct || gemv_error.ok) && bulk_same;
    std::printf("%-8s %5d x %6d %2d |", layer.name, K, N, M);
    if (matmul_status == TSR_OK) {
      std::printf(" %8.2f %6.0f %5.1f%% |", matmul_us, gb / matmul_us * 1e6, 100 * gb / matmul_us * 1e6 / ceilings.copy_gbs);
    } else {
      std::printf(" %22s |", "unsupported");
    }
    std::printf(" %8.2f %6.0f %5.1f%% |", gemv_us, gb / gemv_us * 1e6, 100 * gb / gemv_us * 1e6 / ceilings.copy_gbs);
#if HAVE_CUBLAS
    const double blas_us = median_us(clock, [&](int i) { blas(d, out, x, w[i % copies], M, N, K); });
    std::printf(" %8.2f %6.0f %5.1f%% |", blas_us, gb / blas_us * 1e6, 100 * gb / blas_us * 1e6 / ceilings.copy_gbs);
    const bool blas_ok = blas_error.ok;
#else
    std::printf(" %22s |", "no cuBLAS");
    const bool blas_ok = true;
#endif
    if (matmul_status == TSR_OK) std::printf(" %7.1e", matmul_error.max_abs);
    else std::printf(" %7s", "-");
    std::printf(" %7.1e", gemv_error.max_abs);
#if HAVE_CUBLAS
    std::printf(" %7.1e", blas_error.max_abs);
#else
    std::printf(" %7s", "-");
#endif
    std::printf(" %s | bulk %8.2f %6.0f\n", row_ok && blas_ok ? "ok" : "FAILED", bulk_us, gb / bulk_us * 1e6);
    ok = ok && row_ok && blas_ok;
  }
  for (bf16* copy : w) TSR_OK_OR_DIE(tsr_free(d.ctx, copy));
  TSR_OK_OR_DIE(tsr_free(d.ctx, x));
  TSR_OK_OR_DIE(tsr_free(d.ctx, out));
  return ok;
}

// ---- where a GEMV's time goes: a fixed cost a call, and the last wave ----

// ---- the bulk GEMV's weight stream alone ----
//
// What the bulk-copy GEMV's stream reaches without its math, and whether the shape of its copies
// limits it: every warp keeps SLOTS stages of 16 rows x 512 bytes in flight as gemv_bulk_kernel
// does, reads each landed stage into registers and refills its slot. Rows: 16 copies of 512 bytes
// a stage, one per weight row (the GEMV's copies); whole: one copy of 8 KB of contiguous bytes (the
// same stream were the weights stored in the GEMV's stage order). Both read N x K x 2 bytes once.
template <int SLOTS, bool WHOLE>
__global__ void __launch_bounds__(tsr::gemv::kThreads, 1) stream_probe_kernel(const bf16* w, int N, int K, unsigned* sink) {
  using namespace tsr::gemv;
  extern __shared__ __align__(128) unsigned char probe_ring[];
  __shared__ __align__(8) uint64_t bars[kWarps][SLOTS];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
  const int rounds = (K + kRoundK - 1) / kRoundK;
  const int row_blocks = (N + kRowsPerBlock - 1) / kRowsPerBlock;
  const int items = (row_blocks - (int)blockIdx.x + (int)gridDim.x - 1) / (int)gridDim.x * rounds;
  const WarpRing<SLOTS> ring(probe_ring, &bars[warp][0], warp, lane);
  auto issue = [&](int item) {
    if (item >= items) return;
    const Piece p(item, rounds, warp, N, K);
    if (!WHOLE) return ring.issue(item, p, StoreRows{nullptr, N}, w, K, lane);  // the GEMV's copies
    const size_t stage = ((size_t)p.rb * rounds + item % rounds) * kWarps + warp;
    const uint32_t bar = ring.bar0 + 8 * (item % SLOTS);
    if (lane == 0) {
      mbarrier_expect(bar, p.rows * p.bytes);
      bulk_copy(ring.ring + (item % SLOTS) * kBulkWarpSlotBytes, w + stage * kRowsPerTile * kStageK, p.rows * p.bytes, bar);
    }
  };
  for (int i = 0; i < SLOTS; ++i) issue(i);
  unsigned acc = 0;
  for (int item = 0; item < items; ++item) {
    const int slot = item % SLOTS;
    ring.wait(item);
    const unsigned char* piece = probe_ring + (warp * SLOTS + slot) * kBulkWarpSlotBytes;
#pragma unroll
    for (int s = 0; s < kStageSteps; ++s) {
      const uint4 lo = *reinterpret_cast<const uint4*>(piece + bulk_row_offset(g) + (t + 4 * s) * 16);
      const uint4 hi = *reinterpret_cast<const uint4*>(piece + bulk_row_offset(g + 8) + (t + 4 * s) * 16);
      acc ^= lo.x ^ lo.y ^ lo.z ^ lo.w ^ hi.x ^ hi.y ^ hi.z ^ hi.w;
    }
    __syncwarp();
    issue(item + SLOTS);
  }
  if (acc == 0x9e3779b9u) *sink = acc;
}

template <int SLOTS, bool WHOLE>
double probe_us(const Device& d, const bf16* w, int N, int K, unsigned* sink) {
  constexpr auto kernel = stream_probe_kernel<SLOTS, WHOLE>;
  const int shared = tsr::gemv::kWarps * SLOTS * tsr::gemv::kBulkWarpSlotBytes;
  CUDA_OK_OR_DIE(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, shared));
  StreamClock clock(d.stream, 2 * kSamples);
  return median_us(clock, [&](int) {
    kernel<<<d.sm_count, tsr::gemv::kThreads, shared, d.stream>>>(w, N, K, sink);
    CUDA_OK_OR_DIE(cudaGetLastError());
  });
}

// 1 GiB of weights in two row lengths (lm_head's and down's K), each way
void probe_stream(const Device& d) {
  unsigned* sink = nullptr;
  CUDA_OK_OR_DIE(cudaMalloc(&sink, sizeof(unsigned)));
  std::printf("\nthe bulk GEMV's weight stream alone (no math), 1 GiB: GB/s\n%8s %8s %12s %12s %12s %12s\n", "K", "N", "rows, 2 slots",
              "whole, 2", "rows, 3", "whole, 3");
  for (const int K : {4096, 14336}) {
    const int N = (int)(((size_t)1 << 29) / K / 16 * 16);
    bf16* w = device_bf16(d.ctx, (size_t)N * K);
    CUDA_OK_OR_DIE(cudaMemsetAsync(w, 0, (size_t)N * K * sizeof(bf16), d.stream));
    const double bytes = (double)N * K * sizeof(bf16);
    std::printf("%8d %8d %12.0f %12.0f %12.0f %12.0f\n", K, N, bytes / probe_us<2, false>(d, w, N, K, sink) / 1e3,
                bytes / probe_us<2, true>(d, w, N, K, sink) / 1e3, bytes / probe_us<3, false>(d, w, N, K, sink) / 1e3,
                bytes / probe_us<3, true>(d, w, N, K, sink) / 1e3);
    TSR_OK_OR_DIE(tsr_free(d.ctx, w));
  }
  CUDA_OK_OR_DIE(cudaFree(sink));
}

// The GEMV at M = 1 over N = 16 x SMs x f rows for whole and fractional waves f: a straight line
// through the whole waves (time = fixed + bytes / bandwidth, least squares) gives what a call costs
// beyond its bytes; a fractional wave's excess over the line is what its uneven last wave costs.
void sweep_waves(const Device& d, size_t l2_bytes) {
  const double waves[] = {0.5, 1, 1.5, 2, 2.5, 3, 4, 6, 8, 12, 16};
  for (int K : {4096, 14336}) {
    std::printf("\nGEMV M=1, K=%d: time against rows (row blocks of 16; %d SMs)\n%8s %8s %10s %8s %8s\n", K, d.sm_count, "N", "waves", "us",
                "GB/s", "excess");
    std::vector<double> n_of, us_of;
    for (double f : waves) {
      const int N = (int)(f * d.sm_count) * 16;
      const std::vector<bf16*> w = weight_copies(d, N, K, l2_bytes);
      const int copies = (int)w.size();
      bf16* x = device_bf16(d.ctx, K);
      TSR_OK_OR_DIE(tsr_fill_uniform(d.ctx, x, 1, K, K, 0, 2, 0.f, 1.f));
      bf16* out = device_bf16(d.ctx, N);
      StreamClock clock(d.stream, 2 * kSamples);
      us_of.push_back(median_us(clock, [&](int i) { gemv(d, out, x, w[i % copies], 1, N, K); }));
      n_of.push_back(N);
      for (bf16* copy : w) TSR_OK_OR_DIE(tsr_free(d.ctx, copy));
      TSR_OK_OR_DIE(tsr_free(d.ctx, x));
      TSR_OK_OR_DIE(tsr_free(d.ctx, out));
    }
    // the line through the whole waves of 2 and more
    double sx = 0, sy = 0, sxx = 0, sxy = 0;
    int count = 0;
    for (size_t i = 0; i < n_of.size(); ++i) {
      if (waves[i] < 2 || waves[i] != std::floor(waves[i])) continue;
      const double bytes = n_of[i] * K * 2.0;
      sx += bytes, sy += us_of[i], sxx += bytes * bytes, sxy += bytes * us_of[i], ++count;
    }
    const double slope = (count * sxy - sx * sy) / (count * sxx - sx * sx), fixed = (sy - slope * sx) / count;
    for (size_t i = 0; i < n_of.size(); ++i) {
      const double bytes = n_of[i] * K * 2.0;
      std::printf("%8.0f %8.1f %10.2f %8.0f %8.2f\n", n_of[i], waves[i], us_of[i], bytes / us_of[i] / 1e3, us_of[i] - (fixed + slope * bytes));
    }
    std::printf("fit over whole waves >= 2: %.2f us a call + bytes at %.0f GB/s\n", fixed, 1e-3 / slope);
  }
}

}  // namespace

int main() {
  Device d{};
  TSR_OK_OR_DIE(tsr_context_create(0, &d.ctx));
  CUDA_OK_OR_DIE(cudaStreamCreateWithFlags(&d.stream, cudaStreamNonBlocking));
#if HAVE_CUBLAS
  // as gemm.cu: a fixed 32 MB workspace
  void* workspace = nullptr;
  CUDA_OK_OR_DIE(cudaMalloc(&workspace, size_t(32) << 20));
  if (cublasCreate(&d.blas) != CUBLAS_STATUS_SUCCESS || cublasSetStream(d.blas, d.stream) != CUBLAS_STATUS_SUCCESS ||
      cublasSetWorkspace(d.blas, workspace, size_t(32) << 20) != CUBLAS_STATUS_SUCCESS) {
    std::fprintf(stderr, "cuBLAS setup failed\n");
    return 2;
  }
#endif
  cudaDeviceProp props;
  CUDA_OK_OR_DIE(cudaGetDeviceProperties(&props, 0));
  d.sm_count = props.multiProcessorCount;

  const Ceilings ceilings = measure_ceilings(d);
  std::printf("%s: %d SMs, %d MB L2; ceilings: copy %.0f GB/s (read + write), read-only stream %.0f GB/s\n", props.name,
              props.multiProcessorCount, props.l2CacheSize >> 20, ceilings.copy_gbs, ceilings.read_gbs);
  std::printf("time: median of %d samples of %d back-to-back calls; GB/s of weight bytes; %% of the copy ceiling\n\n", kSamples,
              kCallsPerSample);

  sweep_waves(d, props.l2CacheSize);
  probe_stream(d);
  bool ok = check_odd_shapes(d);

  const Layer layers[] = {{"qkv", 4096, 6144}, {"o", 4096, 4096}, {"gate_up", 4096, 28672}, {"down", 14336, 4096}, {"lm_head", 4096, 128256}};
  std::printf("\n%-8s %14s %2s | %22s | %22s | %22s | max |err|: tsr_matmul, gemv, cuBLAS\n", "layer", "K x N", "M", "tsr_matmul: us GB/s %",
              "gemv: us GB/s %", "cuBLAS: us GB/s %");
  for (const Layer& layer : layers) ok = bench_layer(d, layer, ceilings, props.l2CacheSize) && ok;

#if HAVE_CUBLAS
  cublasDestroy(d.blas);
  cudaFree(workspace);
#endif
  cudaStreamDestroy(d.stream);
  TSR_OK_OR_DIE(tsr_context_destroy(d.ctx));
  std::printf("\ngemm_bench: %s\n", ok ? "ok" : "FAILED");
  return ok ? 0 : 1;
}
