// Weights into L2 ahead of the kernel that reads them, beside the kernels in flight.
//
// At decode sizes a step alternates between GEMVs, which keep HBM busy, and kernels that barely
// touch it (rope, kv_write, attention, the norms: a fifth of a batch-1 step on H100). A prefetch
// issued before such a run of kernels fills L2 with the next GEMV's weights while they work, so
// that GEMV reads them from L2. It runs on a stream of its own, forked from the context's stream
// where it is called (so it starts once the kernels before it are done) and joined back only
// where it must be: before a graph capture ends, in tsr_synchronize, before the context goes.
// The kernels after it never wait for it; it only reads weights, so nothing races with it.
#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "context.cuh"

using tsr::check;

namespace {

// a thread's share of a prefetch: one cp.async.bulk.prefetch of up to this many bytes
constexpr size_t kPiece = 32 << 10;
constexpr int kThreads = 256;

__global__ void prefetch_l2_kernel(const char* p, size_t bytes) {
  const size_t step = (size_t)gridDim.x * blockDim.x * kPiece;
  for (size_t offset = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) * kPiece; offset < bytes; offset += step) {
    const unsigned piece = (unsigned)(bytes - offset < kPiece ? bytes - offset : kPiece);
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;" ::"l"(p + offset), "r"(piece) : "memory");
#endif
  }
}

}  // namespace

int tsr::prefetch_create(tsr_context* ctx) {
  const char* setting = getenv("TSR_PREFETCH_L2");
  if (setting != nullptr && strcmp(setting, "0") == 0) return TSR_OK;  // off: tsr_prefetch does nothing
  int l2_bytes = 0;
  if (int status = check(cudaDeviceGetAttribute(&l2_bytes, cudaDevAttrL2CacheSize, ctx->device), "cudaDeviceGetAttribute")) return status;
  // the rest of L2 keeps what the kernels in flight read (activations, the KV cache)
  ctx->prefetch_limit = (size_t)l2_bytes * 3 / 4;
  if (int status = check(cudaStreamCreateWithFlags(&ctx->prefetch_stream, cudaStreamNonBlocking), "cudaStreamCreateWithFlags")) return status;
  if (int status = check(cudaEventCreateWithFlags(&ctx->prefetch_fork, cudaEventDisableTiming), "cudaEventCreate")) return status;
  return check(cudaEventCreateWithFlags(&ctx->prefetch_join, cudaEventDisableTiming), "cudaEventCreate");
}

int tsr::prefetch_join(tsr_context* ctx) {
  if (!ctx->prefetch_pending) return TSR_OK;
  ctx->prefetch_pending = false;
  if (int status = check(cudaEventRecord(ctx->prefetch_join, ctx->prefetch_stream), "cudaEventRecord (prefetch join)")) return status;
  return check(cudaStreamWaitEvent(ctx->stream, ctx->prefetch_join, 0), "cudaStreamWaitEvent (prefetch join)");
}

void tsr::prefetch_destroy(tsr_context* ctx) {
  if (ctx->prefetch_stream != nullptr) {
    cudaStreamSynchronize(ctx->prefetch_stream);
    cudaStreamDestroy(ctx->prefetch_stream);
  }
  if (ctx->prefetch_fork != nullptr) cudaEventDestroy(ctx->prefetch_fork);
  if (ctx->prefetch_join != nullptr) cudaEventDestroy(ctx->prefetch_join);
  ctx->prefetch_stream = nullptr;
  ctx->prefetch_fork = ctx->prefetch_join = nullptr;
}

extern "C" int tsr_prefetch(tsr_context* ctx, const tsr_bf16* x, int n) {
  TSR_REQUIRE_CONTEXT(ctx);
  TSR_REQUIRE(n >= 0, "prefetch: n=%d", n);
  if (ctx->prefetch_stream == nullptr || n == 0) return TSR_OK;
  // whole 16-byte pieces only (the instruction's unit), up to the limit
  const uintptr_t begin = (reinterpret_cast<uintptr_t>(x) + 15) & ~uintptr_t(15);
  const uintptr_t end = reinterpret_cast<uintptr_t>(x + n) & ~uintptr_t(15);
  if (end <= begin) return TSR_OK;
  const size_t bytes = std::min((size_t)(end - begin), ctx->prefetch_limit);
  if (int status = check(cudaEventRecord(ctx->prefetch_fork, ctx->stream), "cudaEventRecord (prefetch fork)")) return status;
  if (int status = check(cudaStreamWaitEvent(ctx->prefetch_stream, ctx->prefetch_fork, 0), "cudaStreamWaitEvent (prefetch fork)")) return status;
  ctx->prefetch_pending = true;
  const size_t pieces = (bytes + kPiece - 1) / kPiece;
  const unsigned blocks = (unsigned)std::max<size_t>(1, std::min<size_t>(64, (pieces + kThreads - 1) / kThreads));
  prefetch_l2_kernel<<<blocks, kThreads, 0, ctx->prefetch_stream>>>(reinterpret_cast<const char*>(begin), bytes);
  return check(cudaGetLastError(), "prefetch");
}
