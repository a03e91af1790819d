#include "context.cuh"
#include "norm.cuh"

using tsr::check;

extern "C" int tsr_rmsnorm(tsr_context* ctx, tsr_bf16* out, const tsr_bf16* x, const tsr_bf16* w, int T, int H, float eps) {
  TSR_REQUIRE_CONTEXT(ctx);
  TSR_REQUIRE(T >= 0 && H > 0, "rmsnorm: T=%d H=%d", T, H);
  return check(tsr::rmsnorm(out, x, w, T, H, eps, ctx->overlap_norms, ctx->stream), "rmsnorm");
}

extern "C" int tsr_add_rmsnorm(tsr_context* ctx, tsr_bf16* out, float* residualOut, const float* residualIn, const tsr_bf16* x, const tsr_bf16* w,
                               int T, int H, float eps, int accumulate) {
  TSR_REQUIRE_CONTEXT(ctx);
  TSR_REQUIRE(T >= 0 && H > 0, "add_rmsnorm: T=%d H=%d", T, H);
  return check(tsr::add_rmsnorm(out, residualOut, residualIn, x, w, T, H, eps, accumulate != 0, ctx->overlap_norms, ctx->stream),
               "add_rmsnorm");
}

extern "C" int tsr_head_rmsnorm(tsr_context* ctx, tsr_bf16* x, const tsr_bf16* w, int T, int nHeads, int D, int stride, float eps) {
  TSR_REQUIRE_CONTEXT(ctx);
  TSR_REQUIRE(T >= 0 && nHeads >= 0 && D > 0 && stride >= nHeads * D, "head_rmsnorm: T=%d nHeads=%d D=%d stride=%d", T, nHeads,
              D, stride);
  return check(tsr::head_rmsnorm(x, w, T, nHeads, D, stride, eps, ctx->stream), "head_rmsnorm");
}
