#include "context.cuh"
#include "rope.cuh"

using tsr::check;

extern "C" int tsr_rope(tsr_context* ctx, tsr_bf16* q, tsr_bf16* k, const int32_t* positions, const float* invFreq, int T, int Hq,
                        int Hkv, int D, int qStride, int kStride) {
  TSR_REQUIRE_CONTEXT(ctx);
  // D/2 (cos, sin) pairs of 8 bytes must fit the default 48 KiB of shared memory
  TSR_REQUIRE(T >= 0 && Hq >= 0 && Hkv >= 0 && D > 0 && D % 2 == 0 && D <= 8192, "rope: T=%d Hq=%d Hkv=%d D=%d (D even, at most 8192)",
              T, Hq, Hkv, D);
  return check(tsr::rope(q, k, positions, invFreq, T, Hq, Hkv, D, qStride, kStride, ctx->stream), "rope");
}

extern "C" int tsr_rope_kv_write(tsr_context* ctx, tsr_bf16* q, tsr_bf16* k, tsr_bf16* kCache, tsr_bf16* vCache, const tsr_bf16* v,
                                 const int32_t* positions, const float* invFreq, const int32_t* slots, int T, int Hq, int Hkv, int D,
                                 int qStride, int kStride, int vStride) {
  TSR_REQUIRE_CONTEXT(ctx);
  TSR_REQUIRE(T >= 0 && Hq >= 0 && Hkv > 0 && D > 0 && D % 2 == 0 && D <= 8192,
              "rope_kv_write: T=%d Hq=%d Hkv=%d D=%d (D even, at most 8192)", T, Hq, Hkv, D);
  return check(tsr::rope_kv_write(q, k, kCache, vCache, v, positions, invFreq, slots, T, Hq, Hkv, D, qStride, kStride, vStride, ctx->stream),
               "rope_kv_write");
}
