// The context (device, stream, cuBLAS handle) and error reporting.
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>

#include "context.cuh"

namespace {
// per thread, as errno: a Bun worker's failure never overwrites the main thread's message
thread_local char last_error[1024] = "";
}  // namespace

namespace tsr {

int fail(int status, const char* format, ...) {
  va_list args;
  va_start(args, format);
  vsnprintf(last_error, sizeof last_error, format, args);
  va_end(args);
  return status;
}

int check(cudaError_t error, const char* what) {
  if (error == cudaSuccess) return TSR_OK;
  return fail(TSR_CUDA_ERROR, "%s: %s (%s)", what, cudaGetErrorString(error), cudaGetErrorName(error));
}

}  // namespace tsr

using tsr::check;
using tsr::fail;

extern "C" const char* tsr_last_error(void) { return last_error; }

extern "C" int tsr_context_create(int device, tsr_context** out) {
  TSR_REQUIRE(out != nullptr, "tsr_context_create: null out");
  *out = nullptr;
  int count = 0;
  if (int status = check(cudaGetDeviceCount(&count), "cudaGetDeviceCount")) return status;
  TSR_REQUIRE(device >= 0 && device < count, "tsr_context_create: device %d, but %d device(s) are visible", device, count);
  if (int status = check(cudaSetDevice(device), "cudaSetDevice")) return status;

  auto* ctx = new (std::nothrow) tsr_context{};
  if (ctx == nullptr) return fail(TSR_CUDA_ERROR, "tsr_context_create: out of host memory");
  ctx->device = device;
  // non-blocking: the legacy default stream must never serialise against our work
  int status = check(cudaStreamCreateWithFlags(&ctx->stream, cudaStreamNonBlocking), "cudaStreamCreateWithFlags");
  if (status == TSR_OK) status = tsr::gemm_create(ctx);
  if (status == TSR_OK) status = check(cudaDeviceGetAttribute(&ctx->sm_count, cudaDevAttrMultiProcessorCount, device), "cudaDeviceGetAttribute");
  if (status == TSR_OK) {
    const char* split = getenv("TSR_DECODE_SPLIT");
    ctx->decode_split = split == nullptr || strcmp(split, "0") != 0;
    const char* per_sm = getenv("TSR_DECODE_BLOCKS_PER_SM");
    ctx->decode_blocks_per_sm = per_sm == nullptr ? 1 : atoi(per_sm);
    const char* target = getenv("TSR_DECODE_TARGET_BLOCKS");
    ctx->decode_target_blocks = target == nullptr ? 0 : atoi(target);
    const char* overlap = getenv("TSR_OVERLAP_LAUNCHES");
    ctx->overlap_launches = overlap == nullptr || strcmp(overlap, "0") != 0;
    const char* overlap_norms = getenv("TSR_OVERLAP_NORMS");
    ctx->overlap_norms = ctx->overlap_launches && (overlap_norms == nullptr || strcmp(overlap_norms, "0") != 0);
    const char* overlap_attention = getenv("TSR_OVERLAP_ATTENTION");
    ctx->overlap_attention = ctx->overlap_launches && (overlap_attention == nullptr || strcmp(overlap_attention, "0") != 0);
    const char* bulk = getenv("TSR_GEMV_BULK");
    ctx->gemv_bulk = bulk == nullptr || strcmp(bulk, "0") != 0;
    const char* fused = getenv("TSR_FUSED_GEMV");
    ctx->fused_gemv = fused == nullptr || strcmp(fused, "0") != 0;
    const char* fused_norms = getenv("TSR_FUSED_NORMS");
    ctx->fused_norms = fused_norms == nullptr || strcmp(fused_norms, "0") != 0;
    const char* gemv_mb = getenv("TSR_GEMV_MAX_MB");
    ctx->gemv_max_bytes = (size_t)(gemv_mb == nullptr ? tsr::kGemvMaxMb : atol(gemv_mb)) << 20;
    const char* deep_mb = getenv("TSR_GEMV_DEEP_MB");  // -1: never
    const long deep = deep_mb == nullptr ? tsr::kGemvDeepMb : atol(deep_mb);
    ctx->gemv_deep_bytes = deep < 0 ? SIZE_MAX : (size_t)deep << 20;
    ctx->attention_scratch_floats = size_t(4) << 20;  // 16 MiB: far more than a split small batch needs
    status = check(cudaMalloc(&ctx->attention_scratch, ctx->attention_scratch_floats * sizeof(float)), "cudaMalloc (attention scratch)");
  }
  if (status != TSR_OK) {
    // keep the first failure's message: destroying may fail too, and would overwrite it
    char message[sizeof last_error];
    snprintf(message, sizeof message, "%s", last_error);
    tsr_context_destroy(ctx);
    return fail(status, "%s", message);
  }
  *out = ctx;
  return TSR_OK;
}

extern "C" int tsr_context_destroy(tsr_context* ctx) {
  if (ctx == nullptr) return TSR_OK;
  int status = TSR_OK;
  if (ctx->stream != nullptr) status = check(cudaStreamSynchronize(ctx->stream), "cudaStreamSynchronize");
  tsr::gemm_destroy(ctx);
  if (ctx->sampler_scratch != nullptr) cudaFree(ctx->sampler_scratch);
  if (ctx->staging != nullptr) cudaFree(ctx->staging);
  if (ctx->attention_scratch != nullptr) cudaFree(ctx->attention_scratch);
  if (ctx->stream != nullptr) cudaStreamDestroy(ctx->stream);
  delete ctx;
  return status;
}

int tsr::sampler_scratch(tsr_context* ctx, size_t bytes, void** out) {
  if (bytes > ctx->sampler_scratch_bytes) {
    if (ctx->sampler_scratch != nullptr) {
      // cudaFree waits for the device, so no kernel still reads the old buffer
      if (int status = check(cudaFree(ctx->sampler_scratch), "cudaFree (sampler scratch)")) return status;
      ctx->sampler_scratch = nullptr;
      ctx->sampler_scratch_bytes = 0;
    }
    if (int status = check(cudaMalloc(&ctx->sampler_scratch, bytes), "cudaMalloc (sampler scratch)")) return status;
    ctx->sampler_scratch_bytes = bytes;
  }
  *out = ctx->sampler_scratch;
  return TSR_OK;
}

extern "C" int tsr_synchronize(tsr_context* ctx) {
  TSR_REQUIRE_CONTEXT(ctx);
  return check(cudaStreamSynchronize(ctx->stream), "cudaStreamSynchronize");
}

extern "C" int tsr_device_name(tsr_context* ctx, char* name, int bytes) {
  TSR_REQUIRE_CONTEXT(ctx);
  TSR_REQUIRE(name != nullptr && bytes > 0, "tsr_device_name: no buffer");
  cudaDeviceProp props;
  if (int status = check(cudaGetDeviceProperties(&props, ctx->device), "cudaGetDeviceProperties")) return status;
  snprintf(name, (size_t)bytes, "%s", props.name);
  return TSR_OK;
}

extern "C" int tsr_mem_info(tsr_context* ctx, size_t* free_bytes, size_t* total_bytes) {
  TSR_REQUIRE_CONTEXT(ctx);
  TSR_REQUIRE(free_bytes != nullptr && total_bytes != nullptr, "tsr_mem_info: null out");
  return check(cudaMemGetInfo(free_bytes, total_bytes), "cudaMemGetInfo");
}
