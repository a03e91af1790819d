#include "context.cuh"
#include "kv_cache.cuh"

using tsr::check;

extern "C" int tsr_kv_write(tsr_context* ctx, tsr_bf16* kCache, tsr_bf16* vCache, const tsr_bf16* k, const tsr_bf16* v,
                            const int32_t* slots, int T, int Hkv, int D, int kStride, int vStride) {
  TSR_REQUIRE_CONTEXT(ctx);
  TSR_REQUIRE(T >= 0 && Hkv > 0 && D > 0, "kv_write: T=%d Hkv=%d D=%d", T, Hkv, D);
  return check(tsr::kv_write(kCache, vCache, k, v, slots, T, Hkv, D, kStride, vStride, ctx->stream), "kv_write");
}
