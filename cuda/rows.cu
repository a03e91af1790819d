#include "context.cuh"
#include "rows.cuh"

using tsr::check;

extern "C" int tsr_embedding(tsr_context* ctx, tsr_bf16* out, const int32_t* ids, const tsr_bf16* table, int T, int H, int vocabStart,
                             int vocabEnd) {
  TSR_REQUIRE_CONTEXT(ctx);
  TSR_REQUIRE(T >= 0 && H > 0 && vocabStart <= vocabEnd, "embedding: T=%d H=%d vocab [%d, %d)", T, H, vocabStart, vocabEnd);
  return check(tsr::embedding(out, ids, table, T, H, vocabStart, vocabEnd, ctx->stream), "embedding");
}

extern "C" int tsr_gather_rows(tsr_context* ctx, tsr_bf16* out, const tsr_bf16* x, const int32_t* indices, int R, int H) {
  TSR_REQUIRE_CONTEXT(ctx);
  TSR_REQUIRE(R >= 0 && H > 0, "gather_rows: R=%d H=%d", R, H);
  return check(tsr::gather_rows(out, x, indices, R, H, ctx->stream), "gather_rows");
}

extern "C" int tsr_copy(tsr_context* ctx, tsr_bf16* out, const tsr_bf16* x, int n) {
  TSR_REQUIRE_CONTEXT(ctx);
  TSR_REQUIRE(n >= 0, "copy: n=%d", n);
  return check(tsr::copy(out, x, n, ctx->stream), "copy");
}

extern "C" int tsr_take_tokens(tsr_context* ctx, int32_t* ids, const int32_t* from, const int32_t* argmax, const int32_t* drawn, int T) {
  TSR_REQUIRE_CONTEXT(ctx);
  TSR_REQUIRE(T >= 0, "take_tokens: T=%d", T);
  return check(tsr::take_tokens(ids, from, argmax, drawn, T, ctx->stream), "take_tokens");
}
