#include "context.cuh"
#include "linear.cuh"

using tsr::check;

extern "C" int tsr_add_bias(tsr_context* ctx, tsr_bf16* x, const tsr_bf16* bias, int M, int N) {
  TSR_REQUIRE_CONTEXT(ctx);
  TSR_REQUIRE(M >= 0 && N > 0, "add_bias: M=%d N=%d", M, N);
  return check(tsr::add_bias(x, bias, M, N, ctx->stream), "add_bias");
}
