// Device memory: allocation and copies between host and device.
#include "context.cuh"
#include "memory.cuh"

using tsr::check;

namespace {

// 8 Mi elements (32 MiB of f32) per staged chunk: large enough to run at copy bandwidth,
// small enough to be a negligible share of any GPU this runs on
constexpr size_t kStagingElements = size_t(8) << 20;

}  // namespace

int tsr::ensure_staging(tsr_context* ctx) {
  if (ctx->staging != nullptr) return TSR_OK;
  void* p = nullptr;
  if (int status = check(cudaMalloc(&p, kStagingElements * sizeof(float)), "cudaMalloc (staging)")) return status;
  ctx->staging = static_cast<float*>(p);
  ctx->staging_elements = kStagingElements;
  return TSR_OK;
}

extern "C" int tsr_malloc(tsr_context* ctx, void** out, size_t bytes) {
  TSR_REQUIRE_CONTEXT(ctx);
  TSR_REQUIRE(out != nullptr, "tsr_malloc: null out");
  *out = nullptr;
  // cudaMalloc(0) gives no pointer; callers may allocate empty tensors and free them later
  return check(cudaMalloc(out, bytes == 0 ? 1 : bytes), "cudaMalloc");
}

extern "C" int tsr_free(tsr_context* ctx, void* ptr) {
  TSR_REQUIRE_CONTEXT(ctx);
  return check(cudaFree(ptr), "cudaFree");
}

extern "C" int tsr_write(tsr_context* ctx, void* dst, const void* src, size_t bytes) {
  TSR_REQUIRE_CONTEXT(ctx);
  if (bytes == 0) return TSR_OK;
  // from pageable memory, the copy returns once src has been staged: src may be reused
  return check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, ctx->stream), "cudaMemcpyAsync (write)");
}

extern "C" int tsr_read(tsr_context* ctx, void* dst, const void* src, size_t bytes) {
  TSR_REQUIRE_CONTEXT(ctx);
  if (bytes == 0) return TSR_OK;
  if (int status = check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, ctx->stream), "cudaMemcpyAsync (read)")) {
    return status;
  }
  return check(cudaStreamSynchronize(ctx->stream), "cudaStreamSynchronize (read)");
}

extern "C" int tsr_write_bf16(tsr_context* ctx, tsr_bf16* dst, const float* src, size_t n) {
  TSR_REQUIRE_CONTEXT(ctx);
  if (n == 0) return TSR_OK;
  if (int status = tsr::ensure_staging(ctx)) return status;
  // the stream orders each chunk's conversion before the next chunk overwrites the staging buffer
  for (size_t done = 0; done < n; done += ctx->staging_elements) {
    const size_t count = n - done < ctx->staging_elements ? n - done : ctx->staging_elements;
    if (int status = check(cudaMemcpyAsync(ctx->staging, src + done, count * sizeof(float), cudaMemcpyHostToDevice, ctx->stream),
                           "cudaMemcpyAsync (write_bf16)")) {
      return status;
    }
    if (int status = check(tsr::f32_to_bf16(dst + done, ctx->staging, count, ctx->stream), "f32_to_bf16")) return status;
  }
  return TSR_OK;
}

extern "C" int tsr_read_async(tsr_context* ctx, void* dst, const void* src, size_t bytes) {
  TSR_REQUIRE_CONTEXT(ctx);
  if (bytes == 0) return TSR_OK;
  return check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, ctx->stream), "cudaMemcpyAsync (read_async)");
}

extern "C" int tsr_read_bf16_async(tsr_context* ctx, float* dst, const tsr_bf16* src, size_t n) {
  TSR_REQUIRE_CONTEXT(ctx);
  if (n == 0) return TSR_OK;
  if (int status = tsr::ensure_staging(ctx)) return status;
  // one stream orders each chunk's copy out before the next chunk's conversion reuses the staging buffer
  for (size_t done = 0; done < n; done += ctx->staging_elements) {
    const size_t count = n - done < ctx->staging_elements ? n - done : ctx->staging_elements;
    if (int status = check(tsr::bf16_to_f32(ctx->staging, src + done, count, ctx->stream), "bf16_to_f32")) return status;
    if (int status = check(cudaMemcpyAsync(dst + done, ctx->staging, count * sizeof(float), cudaMemcpyDeviceToHost, ctx->stream),
                           "cudaMemcpyAsync (read_bf16_async)")) {
      return status;
    }
  }
  return TSR_OK;
}

// the asynchronous read, then a wait (into pageable memory each copy is also staged by the driver)
extern "C" int tsr_read_bf16(tsr_context* ctx, float* dst, const tsr_bf16* src, size_t n) {
  if (int status = tsr_read_bf16_async(ctx, dst, src, n)) return status;
  return check(cudaStreamSynchronize(ctx->stream), "cudaStreamSynchronize (read_bf16)");
}

extern "C" int tsr_host_alloc(tsr_context* ctx, void** out, size_t bytes) {
  TSR_REQUIRE_CONTEXT(ctx);
  TSR_REQUIRE(out != nullptr, "tsr_host_alloc: null out");
  *out = nullptr;
  return check(cudaMallocHost(out, bytes == 0 ? 1 : bytes), "cudaMallocHost");
}

extern "C" int tsr_host_free(tsr_context* ctx, void* ptr) {
  TSR_REQUIRE_CONTEXT(ctx);
  return check(cudaFreeHost(ptr), "cudaFreeHost");
}

extern "C" int tsr_fill_uniform(tsr_context* ctx, tsr_bf16* dst, size_t rows, size_t cols, size_t width, size_t first, int seed,
                                float offset, float scale) {
  TSR_REQUIRE_CONTEXT(ctx);
  TSR_REQUIRE(cols <= width, "tsr_fill_uniform: %zu columns of a row of %zu", cols, width);
  return check(tsr::fill_uniform(dst, rows, cols, width, first, (unsigned)seed, offset, scale, ctx->stream), "fill_uniform");
}
