import type { Kernels } from "./catalog.ts"

/**
 * Memory of a kernel provider. Pointers are byte offsets (WASM linear memory) or device
 * addresses (CUDA); host code moves data in and out only through `write` and `read`, so the
 * same stage code drives both providers.
 */
export interface DeviceMemory {
  /** allocate `bytes` (64-byte aligned); throws a clear error when the memory is exhausted */
  alloc(bytes: number): number
  free(ptr: number): void
  write(ptr: number, src: Float32Array | Int32Array): void
  read(ptr: number, dst: Float32Array | Int32Array): void
  /** bytes currently allocated */
  readonly usedBytes: number
}

export interface KernelProvider {
  readonly name: "wasm" | "cuda"
  readonly kernels: Kernels
  readonly memory: DeviceMemory
  /** threads (CPU) or streams (GPU) the kernels are spread over */
  readonly parallelism: number
  close(): void
}
