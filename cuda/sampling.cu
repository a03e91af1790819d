#include "context.cuh"
#include "sampling.cuh"

using tsr::check;

extern "C" int tsr_argmax(tsr_context* ctx, int32_t* out, const tsr_bf16* logits, int M, int V) {
  TSR_REQUIRE_CONTEXT(ctx);
  TSR_REQUIRE(M >= 0 && V > 0, "argmax: M=%d V=%d", M, V);
  return check(tsr::argmax(out, logits, M, V, ctx->stream), "argmax");
}

extern "C" int tsr_softmax(tsr_context* ctx, tsr_bf16* x, int M, int V, float temperature) {
  TSR_REQUIRE_CONTEXT(ctx);
  TSR_REQUIRE(M >= 0 && V > 0, "softmax: M=%d V=%d", M, V);
  return check(tsr::softmax(x, M, V, temperature, ctx->stream), "softmax");
}
