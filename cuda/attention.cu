// The catalog's one paged_attention: prefill, chunked prefill and decode in one call. Two
// launches split the query tokens between them on the device (prefill_owns), so a mixed
// batch needs no host-side plan.
//
// Head dimensions that are multiples of 16 (with 16-byte aligned q rows and cache, and shared
// memory enough) take the tensor-core kernels, compiled for D up to 64, 128 and 256; any other
// takes the CUDA-core ones. The choice depends on the model and device alone, never on the
// batch, so a captured step and an eager one compute alike.
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "attention_decode.cuh"
#include "attention_prefill.cuh"
#include "context.cuh"

using tsr::check;
namespace attn = tsr::attention;

namespace {

// the context's flash-decoding scratch, or none where TSR_DECODE_SPLIT=0
attn::DecodeScratch decode_scratch(const tsr_context* ctx) {
  if (!ctx->decode_split) return {nullptr, 0};
  return {ctx->attention_scratch, ctx->attention_scratch_floats};
}

template <int DPL>
cudaError_t cuda_core_attention(tsr::bf16* out, const tsr::bf16* q, const tsr::bf16* k_cache, const tsr::bf16* v_cache,
                                const int* query_to_seq, const int* positions, const int* block_tables, int T, int Hq, int Hkv, int D,
                                int q_stride, int max_blocks, int block_size, float scale, bool prefill, const tsr_context* ctx) {
  cudaStream_t stream = ctx->stream;
  const float scale_log2 = scale * attn::kLog2e;
  if (prefill) {
    const cudaError_t error = attn::prefill<DPL>(out, q, k_cache, v_cache, query_to_seq, positions, block_tables, T, Hq, Hkv, D, q_stride,
                                                 max_blocks, block_size, scale_log2, stream);
    if (error != cudaSuccess) return error;
  }
  return attn::decode<DPL>(out, q, k_cache, v_cache, query_to_seq, positions, block_tables, T, Hq, Hkv, D, q_stride, max_blocks,
                           block_size, scale_log2, decode_scratch(ctx), 2 * ctx->sm_count, prefill, ctx->overlap_attention && !prefill, stream);
}

// TSR_ATTENTION_P_BF16=1: P rounded once to bf16 for the prefill P.V (attention_mma.cuh)
bool prefill_p_bf16() {
  static const bool on = [] {
    const char* value = getenv("TSR_ATTENTION_P_BF16");
    return value != nullptr && strcmp(value, "0") != 0;
  }();
  return on;
}

template <int DMAX>
cudaError_t tensor_core_attention(tsr::bf16* out, const tsr::bf16* q, const tsr::bf16* k_cache, const tsr::bf16* v_cache,
                                  const int* query_to_seq, const int* positions, const int* block_tables, int T, int Hq, int Hkv, int D,
                                  int q_stride, int max_blocks, int block_size, float scale, int max_query_len, bool prefill,
                                  const tsr_context* ctx) {
  cudaStream_t stream = ctx->stream;
  const float scale_log2 = scale * attn::kLog2e;
  if (prefill) {
    const cudaError_t error =
        prefill_p_bf16()
            ? attn::prefill_mma<DMAX, false>(out, q, k_cache, v_cache, query_to_seq, positions, block_tables, T, Hq, Hkv, D, q_stride,
                                             max_blocks, block_size, scale_log2, stream)
            : attn::prefill_mma<DMAX, true>(out, q, k_cache, v_cache, query_to_seq, positions, block_tables, T, Hq, Hkv, D, q_stride,
                                            max_blocks, block_size, scale_log2, stream);
    if (error != cudaSuccess) return error;
  }
  // split until the blocks fill the GPU once (context.cuh: decode_blocks_per_sm)
  return attn::decode_mma<DMAX>(out, q, k_cache, v_cache, query_to_seq, positions, block_tables, T, Hq, Hkv, D, q_stride, max_blocks,
                                block_size, scale_log2, decode_scratch(ctx),
                                ctx->decode_target_blocks > 0 ? ctx->decode_target_blocks : ctx->decode_blocks_per_sm * ctx->sm_count,
                                max_query_len > 1 ? max_query_len : 1, prefill,
                                ctx->overlap_attention && !prefill, stream);
}

bool aligned(const void* p, uintptr_t bytes) { return reinterpret_cast<uintptr_t>(p) % bytes == 0; }

// whether both tensor-core kernels' shared memory fits a block on this device (227 KiB on
// H100; GPUs with about 100 KiB take the CUDA-core kernels at the larger head dimensions)
template <int DMAX>
bool tensor_cores_fit(int D, int device) {
  int optin = 0;
  if (cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device) != cudaSuccess) return false;
  return attn::PrefillShape<DMAX>::shared_bytes(D) <= (size_t)optin && attn::DecodeShape<DMAX>::shared_bytes(D) <= (size_t)optin;
}

int tensor_core_build(int D) { return D <= 64 ? 64 : D <= 128 ? 128 : 256; }

}  // namespace

extern "C" int tsr_paged_attention(tsr_context* ctx, tsr_bf16* out, const tsr_bf16* q, const tsr_bf16* kCache, const tsr_bf16* vCache,
                                   const int32_t* queryToSeq, const int32_t* positions, const int32_t* blockTables, int T, int Hq,
                                   int Hkv, int D, int qStride, int maxBlocks, int blockSize, float scale,
                                   int maxQueryLen) {
  TSR_REQUIRE_CONTEXT(ctx);
  TSR_REQUIRE(T >= 0 && Hkv > 0 && Hq > 0 && Hq % Hkv == 0, "paged_attention: Hq=%d is not a multiple of Hkv=%d", Hq, Hkv);
  TSR_REQUIRE(D > 0 && D <= attn::kMaxHeadDim, "paged_attention: head dimension %d (supported: 1..%d)", D, attn::kMaxHeadDim);
  TSR_REQUIRE(maxBlocks > 0 && blockSize > 0, "paged_attention: maxBlocks=%d blockSize=%d", maxBlocks, blockSize);
  TSR_REQUIRE(qStride >= Hq * D, "paged_attention: qStride=%d < Hq*D=%d", qStride, Hq * D);
  TSR_REQUIRE(maxQueryLen >= 0 && maxQueryLen <= T, "paged_attention: maxQueryLen=%d outside 0..T=%d", maxQueryLen, T);
  // no sequence with a prefill tile's worth of tokens: the prefill kernel would only check and
  // exit (a launch, a few microseconds a layer at every decode batch of 16 and up)
  const bool prefill = maxQueryLen >= attn::kPrefillTokens;
  // the tensor-core kernels copy q rows and cache rows in 16-byte pieces and store bf16 pairs
  const int build = tensor_core_build(D);
  const bool tensor_cores = D % 16 == 0 && qStride % 8 == 0 && aligned(q, 16) && aligned(kCache, 16) && aligned(vCache, 16) &&
                            aligned(out, 4) &&
                            (build == 64 ? tensor_cores_fit<64>(D, ctx->device)
                                         : build == 128 ? tensor_cores_fit<128>(D, ctx->device) : tensor_cores_fit<256>(D, ctx->device));
  cudaError_t error;
  if (tensor_cores) {
    switch (build) {
      case 64: error = tensor_core_attention<64>(out, q, kCache, vCache, queryToSeq, positions, blockTables, T, Hq, Hkv, D, qStride, maxBlocks, blockSize, scale, maxQueryLen, prefill, ctx); break;
      case 128: error = tensor_core_attention<128>(out, q, kCache, vCache, queryToSeq, positions, blockTables, T, Hq, Hkv, D, qStride, maxBlocks, blockSize, scale, maxQueryLen, prefill, ctx); break;
      default: error = tensor_core_attention<256>(out, q, kCache, vCache, queryToSeq, positions, blockTables, T, Hq, Hkv, D, qStride, maxBlocks, blockSize, scale, maxQueryLen, prefill, ctx); break;
    }
    return check(error, "paged_attention");
  }
  switch (attn::dims_per_lane(D)) {
    case 1: error = cuda_core_attention<1>(out, q, kCache, vCache, queryToSeq, positions, blockTables, T, Hq, Hkv, D, qStride, maxBlocks, blockSize, scale, prefill, ctx); break;
    case 2: error = cuda_core_attention<2>(out, q, kCache, vCache, queryToSeq, positions, blockTables, T, Hq, Hkv, D, qStride, maxBlocks, blockSize, scale, prefill, ctx); break;
    case 4: error = cuda_core_attention<4>(out, q, kCache, vCache, queryToSeq, positions, blockTables, T, Hq, Hkv, D, qStride, maxBlocks, blockSize, scale, prefill, ctx); break;
    default: error = cuda_core_attention<8>(out, q, kCache, vCache, queryToSeq, positions, blockTables, T, Hq, Hkv, D, qStride, maxBlocks, blockSize, scale, prefill, ctx); break;
  }
  return check(error, "paged_attention");
}
