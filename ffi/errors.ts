import { Data } from "effect"

/** The status codes of tessera_cuda.h. */
export const nativeStatus = {
  0: "TSR_OK",
  1: "TSR_INVALID_ARGUMENT",
  2: "TSR_CUDA_ERROR",
  3: "TSR_BLAS_ERROR",
  4: "TSR_UNSUPPORTED"
} as const satisfies Record<number, string>

/**
 * A native call of libtessera_cuda failed: `call` is the symbol, `status` its code, and
 * `message` the library's own text (tsr_last_error), e.g. "cudaMalloc: out of memory ...".
 */
export class CudaError extends Data.TaggedError("CudaError")<{
  readonly call: string
  readonly status: number
  readonly message: string
}> {
  get statusName(): string {
    return (nativeStatus as Record<number, string>)[this.status] ?? `status ${this.status}`
  }
}

/** The library could not be found or loaded (not built, wrong machine, missing CUDA libraries). */
export class CudaLibraryError extends Data.TaggedError("CudaLibraryError")<{
  readonly path: string
  readonly message: string
}> {}
