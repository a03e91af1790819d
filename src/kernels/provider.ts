import type { DType, Kernels } from "./catalog.ts"
import type { RowSampling } from "../stages/stepPlan.ts"
import type { RowLogprobs } from "../sampling/logprobs.ts"

/**
 * Memory of a kernel provider. Pointers are byte offsets (WASM linear memory) or device
 * addresses (CUDA); host code moves data in and out only through `write` and `read`, so the
 * same stage code drives both providers.
 *
 * Host values are always f32 or i32. A catalog `float` tensor is stored in the provider's
 * float format, `floatBytes` wide (f32 on the CPU, bf16 on GPUs): `write` and `read` convert,
 * and host code sizes float tensors and steps through them with `floatBytes`.
 */
export interface DeviceMemory {
  /** bytes of one element of a `float` tensor: 4 (f32) or 2 (bf16) */
  readonly floatBytes: number
  /** allocate `bytes` (64-byte aligned); throws a clear error when the memory is exhausted */
  alloc(bytes: number): number
  free(ptr: number): void
  /**
   * copy host values to the tensor at `ptr`: a Float32Array fills a `float` tensor, or an
   * `f32` one when `dtype` says so; an Int32Array fills an `i32` tensor
   */
  write(ptr: number, src: Float32Array | Int32Array, dtype?: DType): void
  /** copy the tensor at `ptr` to the host, converting as `write` does */
  read(ptr: number, dst: Float32Array | Int32Array, dtype?: DType): void
  /** bytes currently allocated */
  readonly usedBytes: number
  /**
   * Where `float` tensors are bf16: copies bf16 values as they are stored (bit patterns), so a
   * bf16 checkpoint reaches the device without a round trip through f32.
   */
  writeBf16Bits?(ptr: number, bits: Uint16Array): void
}

/** Sampling where the logits are (the CUDA provider), with the CPU sampler's semantics. */
export interface DeviceSampler {
  /** the token of each of `rows` logits rows (`float`, `[rows, vocab]` at `logits`), left at `out` (`i32`, `[rows]`) too */
  sample(logits: number, rows: number, vocab: number, params: RowSampling, out: number): Int32Array
  /** computeLogprobs (src/sampling/logprobs.ts) of each row's token `tokens[r]`, with `numTop` most likely tokens */
  logprobs(logits: number, rows: number, vocab: number, tokens: Int32Array, numTop: number): RowLogprobs
}

export interface KernelProvider {
  readonly name: "wasm" | "cuda"
  readonly kernels: Kernels
  readonly memory: DeviceMemory
  readonly sampler?: DeviceSampler
  /** threads (CPU) or streams (GPU) the kernels are spread over */
  readonly parallelism: number
  close(): void
}

/** bytes of `elements` values of `dtype` in `memory` */
export const bytesOf = (memory: DeviceMemory, dtype: DType, elements: number): number =>
  elements * (dtype === "float" ? memory.floatBytes : 4)
