#include "activation.cuh"
#include "context.cuh"

using tsr::check;

extern "C" int tsr_silu_mul(tsr_context* ctx, tsr_bf16* out, const tsr_bf16* gateUp, int T, int I) {
  TSR_REQUIRE_CONTEXT(ctx);
  TSR_REQUIRE(T >= 0 && I >= 0, "silu_mul: T=%d I=%d", T, I);
  return check(tsr::silu_mul(out, gateUp, T, I, ctx->stream), "silu_mul");
}
