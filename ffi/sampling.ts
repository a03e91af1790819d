/**
 * bun:ffi binding of tsr_sample_rows and tsr_logprobs_rows_bf16 (cuda/sampler.h): the GPU ports of
 * src/sampling/sampler.ts and src/sampling/logprobs.ts.
 * A table of its own, beside the catalog's (ffi/library.ts `symbols`, which
 * test/cuda-abi.test.ts checks against tessera_cuda.h alone); it opens the same library file.
 */
import { dlopen, FFIType, type FFIFunction, type Pointer } from "bun:ffi"
import { openLibrary, type NativeLibrary } from "./library.ts"

export const samplerSymbols = {
  /** int tsr_sample_rows(tsr_context* ctx, const float* logits, int rows, int vocab, const double* temperature,
   *  const double* top_p, const int32_t* top_k, const double* min_p, const uint32_t* seed_lo, const uint32_t* seed_hi,
   *  const int32_t* position, const int32_t* sample_index, const int32_t* edit_offsets, const int32_t* edit_ids,
   *  const double* edit_values, int32_t* out_tokens) */
  tsr_sample_rows: {
    args: [
      FFIType.ptr, FFIType.ptr, FFIType.i32, FFIType.i32, FFIType.ptr, FFIType.ptr, FFIType.ptr, FFIType.ptr,
      FFIType.ptr, FFIType.ptr, FFIType.ptr, FFIType.ptr, FFIType.ptr, FFIType.ptr, FFIType.ptr, FFIType.ptr
    ],
    returns: FFIType.i32
  },
  /** int tsr_sample_rows_bf16(tsr_context* ctx, const tsr_bf16* logits, int rows, int vocab, const double* temperature,
   *  const double* top_p, const int32_t* top_k, const double* min_p, const uint32_t* seed_lo, const uint32_t* seed_hi,
   *  const int32_t* position, const int32_t* sample_index, const int32_t* edit_offsets, const int32_t* edit_ids,
   *  const double* edit_values, int32_t* out_tokens) */
  tsr_sample_rows_bf16: {
    args: [
      FFIType.ptr, FFIType.ptr, FFIType.i32, FFIType.i32, FFIType.ptr, FFIType.ptr, FFIType.ptr, FFIType.ptr,
      FFIType.ptr, FFIType.ptr, FFIType.ptr, FFIType.ptr, FFIType.ptr, FFIType.ptr, FFIType.ptr, FFIType.ptr
    ],
    returns: FFIType.i32
  },
  /** int tsr_logprobs_rows_bf16(tsr_context* ctx, const tsr_bf16* logits, int rows, int vocab, const int32_t* tokens, int num_top,
   *  double* out_logprob, int32_t* out_rank, int32_t* out_top_ids, double* out_top_logprobs) */
  tsr_logprobs_rows_bf16: {
    args: [FFIType.ptr, FFIType.ptr, FFIType.i32, FFIType.i32, FFIType.ptr, FFIType.i32, FFIType.ptr, FFIType.ptr, FFIType.ptr, FFIType.ptr],
    returns: FFIType.i32
  }
} as const satisfies Record<string, FFIFunction>

/** device addresses (tsr_malloc) of the per-row arrays, `rows` entries each */
export interface SampleRowsArgs {
  readonly logits: number
  readonly rows: number
  readonly vocab: number
  readonly temperature: number
  readonly topP: number
  readonly topK: number
  readonly minP: number
  readonly seedLo: number
  readonly seedHi: number
  readonly position: number
  readonly sampleIndex: number
  /** the rows' logits edits (src/sampling/logitsEdits.ts): offsets [rows * 4 + 1], ids, values; 0: none */
  readonly editOffsets: number
  readonly editIds: number
  readonly editValues: number
  readonly outTokens: number
}

/** device addresses for tsr_logprobs_rows_bf16: `rows` logits rows and tokens, outputs of `rows` and `rows * numTop` */
export interface LogprobsRowsArgs {
  readonly logits: number
  readonly rows: number
  readonly vocab: number
  readonly tokens: number
  readonly numTop: number
  readonly outLogprob: number
  readonly outRank: number
  readonly outTopIds: number
  readonly outTopLogprobs: number
}

export interface NativeSampler {
  readonly native: NativeLibrary
  /** enqueues tsr_sample_rows (f32 logits) on the context's stream; throws the CudaError of a failed call */
  sampleRows(ctx: Pointer, args: SampleRowsArgs): void
  /** the same from bf16 logits (tsr_sample_rows_bf16) */
  sampleRowsBf16(ctx: Pointer, args: SampleRowsArgs): void
  /** enqueues tsr_logprobs_rows_bf16 (src/sampling/logprobs.ts on the device) */
  logprobsRowsBf16(ctx: Pointer, args: LogprobsRowsArgs): void
}

export const openSampler = (path?: string): NativeSampler => {
  const native = openLibrary(path)
  const { symbols } = dlopen(native.path, samplerSymbols)
  const p = (address: number): Pointer => address as Pointer
  const call = (name: "tsr_sample_rows" | "tsr_sample_rows_bf16") => (ctx: Pointer, a: SampleRowsArgs) =>
    native.check(
      name,
      symbols[name](ctx, p(a.logits), a.rows, a.vocab, p(a.temperature), p(a.topP), p(a.topK), p(a.minP), p(a.seedLo), p(a.seedHi), p(a.position), p(a.sampleIndex), p(a.editOffsets), p(a.editIds), p(a.editValues), p(a.outTokens))
    )
  const logprobsRowsBf16 = (ctx: Pointer, a: LogprobsRowsArgs) =>
    native.check(
      "tsr_logprobs_rows_bf16",
      symbols.tsr_logprobs_rows_bf16(ctx, p(a.logits), a.rows, a.vocab, p(a.tokens), a.numTop, p(a.outLogprob), p(a.outRank), p(a.outTopIds), p(a.outTopLogprobs))
    )
  return { native, sampleRows: call("tsr_sample_rows"), sampleRowsBf16: call("tsr_sample_rows_bf16"), logprobsRowsBf16 }
}
