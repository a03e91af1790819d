// The catalog's one paged_attention: prefill, chunked prefill and decode in one call. Two
// launches split the query tokens between them on the device (prefill_owns), so a mixed
// batch needs no host-side plan.
#include "attention_decode.cuh"
#include "attention_prefill.cuh"
#include "context.cuh"

using tsr::check;
namespace attn = tsr::attention;

namespace {

template <int DPL>
cudaError_t paged_attention(tsr::bf16* out, const tsr::bf16* q, const tsr::bf16* k_cache, const tsr::bf16* v_cache,
                            const int* query_to_seq, const int* positions, const int* block_tables, int T, int Hq, int Hkv, int D,
                            int q_stride, int max_blocks, int block_size, float scale, const tsr_context* ctx) {
  cudaStream_t stream = ctx->stream;
  const float scale_log2 = scale * attn::kLog2e;
  cudaError_t error = attn::prefill<DPL>(out, q, k_cache, v_cache, query_to_seq, positions, block_tables, T, Hq, Hkv, D, q_stride,
                                         max_blocks, block_size, scale_log2, stream);
  if (error != cudaSuccess) return error;
  return attn::decode<DPL>(out, q, k_cache, v_cache, query_to_seq, positions, block_tables, T, Hq, Hkv, D, q_stride, max_blocks,
                           block_size, scale_log2, ctx->decode_split ? ctx->attention_scratch : nullptr, ctx->attention_scratch_floats,
                           2 * ctx->sm_count, stream);
}

}  // namespace

extern "C" int tsr_paged_attention(tsr_context* ctx, tsr_bf16* out, const tsr_bf16* q, const tsr_bf16* kCache, const tsr_bf16* vCache,
                                   const int32_t* queryToSeq, const int32_t* positions, const int32_t* blockTables, int T, int Hq,
                                   int Hkv, int D, int qStride, int maxBlocks, int blockSize, float scale) {
  TSR_REQUIRE_CONTEXT(ctx);
  TSR_REQUIRE(T >= 0 && Hkv > 0 && Hq > 0 && Hq % Hkv == 0, "paged_attention: Hq=%d is not a multiple of Hkv=%d", Hq, Hkv);
  TSR_REQUIRE(D > 0 && D <= attn::kMaxHeadDim, "paged_attention: head dimension %d (supported: 1..%d)", D, attn::kMaxHeadDim);
  TSR_REQUIRE(maxBlocks > 0 && blockSize > 0, "paged_attention: maxBlocks=%d blockSize=%d", maxBlocks, blockSize);
  TSR_REQUIRE(qStride >= Hq * D, "paged_attention: qStride=%d < Hq*D=%d", qStride, Hq * D);
  cudaError_t error;
  switch (attn::dims_per_lane(D)) {
    case 1: error = paged_attention<1>(out, q, kCache, vCache, queryToSeq, positions, blockTables, T, Hq, Hkv, D, qStride, maxBlocks, blockSize, scale, ctx); break;
    case 2: error = paged_attention<2>(out, q, kCache, vCache, queryToSeq, positions, blockTables, T, Hq, Hkv, D, qStride, maxBlocks, blockSize, scale, ctx); break;
    case 4: error = paged_attention<4>(out, q, kCache, vCache, queryToSeq, positions, blockTables, T, Hq, Hkv, D, qStride, maxBlocks, blockSize, scale, ctx); break;
    default: error = paged_attention<8>(out, q, kCache, vCache, queryToSeq, positions, blockTables, T, Hq, Hkv, D, qStride, maxBlocks, blockSize, scale, ctx); break;
  }
  return check(error, "paged_attention");
}
