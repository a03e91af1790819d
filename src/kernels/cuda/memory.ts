/**
 * Device memory of the CUDA provider: cudaMalloc'd tensors, owned by whoever allocated them.
 *
 * `float` tensors are bf16 on the device: a Float32Array written to one is rounded there (to
 * nearest even, by a kernel, at copy bandwidth), and read back widened to f32. `f32` and `i32`
 * tensors are copied as they are. Pointers are device addresses, JavaScript numbers (CUDA
 * addresses fit in 48 bits, far under 2^53), so stage code steps through them as on the CPU.
 */
import type { Pointer } from "bun:ffi"
import { CudaError } from "../../../ffi/errors.ts"
import type { NativeLibrary } from "../../../ffi/library.ts"
import type { DType } from "../catalog.ts"
import type { DeviceMemory } from "../provider.ts"

export const devicePointer = (address: number): Pointer => address as Pointer

export class CudaMemory implements DeviceMemory {
  readonly floatBytes = 2
  private readonly sizes = new Map<number, number>()
  private used = 0
  private closed = false
  private readonly out = new BigUint64Array(1)

  constructor(
    private readonly native: NativeLibrary,
    private readonly ctx: Pointer
  ) {}

  get usedBytes(): number {
    return this.used
  }

  /** live allocations: pointer -> bytes */
  get allocations(): ReadonlyMap<number, number> {
    return this.sizes
  }

  alloc(bytes: number): number {
    this.ensureOpen("alloc")
    if (!Number.isInteger(bytes) || bytes < 0) throw new RangeError(`alloc: ${bytes} is not a byte count`)
    try {
      this.native.check("tsr_malloc", this.native.symbols.tsr_malloc(this.ctx, this.out, bytes))
    } catch (error) {
      if (!(error instanceof CudaError)) throw error
      throw new CudaError({ ...error, message: `alloc(${bytes}) with ${this.used} bytes in use: ${error.message}` })
    }
    const ptr = Number(this.out[0])
    this.sizes.set(ptr, bytes)
    this.used += bytes
    return ptr
  }

  free(ptr: number): void {
    this.ensureOpen("free")
    const bytes = this.sizes.get(ptr)
    if (bytes === undefined) throw new Error(`free: 0x${ptr.toString(16)} is not a pointer returned by alloc (or was already freed)`)
    this.sizes.delete(ptr)
    this.used -= bytes
    this.native.check("tsr_free", this.native.symbols.tsr_free(this.ctx, devicePointer(ptr)))
  }

  write(ptr: number, src: Float32Array | Int32Array, dtype?: DType): void {
    this.ensureOpen("write")
    if (src.length === 0) return
    const { symbols } = this.native
    if (this.isFloat(src, dtype)) {
      this.native.check("tsr_write_bf16", symbols.tsr_write_bf16(this.ctx, devicePointer(ptr), src, src.length))
    } else {
      this.native.check("tsr_write", symbols.tsr_write(this.ctx, devicePointer(ptr), src, src.byteLength))
    }
  }

  read(ptr: number, dst: Float32Array | Int32Array, dtype?: DType): void {
    this.ensureOpen("read")
    if (dst.length === 0) return
    const { symbols } = this.native
    if (this.isFloat(dst, dtype)) {
      this.native.check("tsr_read_bf16", symbols.tsr_read_bf16(this.ctx, dst, devicePointer(ptr), dst.length))
    } else {
      this.native.check("tsr_read", symbols.tsr_read(this.ctx, dst, devicePointer(ptr), dst.byteLength))
    }
  }

  /**
   * Frees every allocation still live and refuses further use: the provider's close() calls it
   * before destroying the context. Returns how many allocations were left.
   */
  releaseAll(): number {
    if (this.closed) return 0
    const left = this.sizes.size
    try {
      for (const ptr of [...this.sizes.keys()]) this.free(ptr)
    } finally {
      this.closed = true
    }
    return left
  }

  /** a Float32Array goes to a bf16 `float` tensor unless the caller says it is an `f32` one */
  private isFloat(values: Float32Array | Int32Array, dtype: DType | undefined): boolean {
    if (values instanceof Int32Array) {
      if (dtype !== undefined && dtype !== "i32") throw new TypeError(`an Int32Array cannot fill a ${dtype} tensor`)
      return false
    }
    if (dtype === "i32") throw new TypeError("a Float32Array cannot fill an i32 tensor")
    return dtype !== "f32"
  }

  private ensureOpen(what: string): void {
    if (this.closed) throw new CudaError({ call: what, status: -1, message: `${what}: the CUDA provider is closed` })
  }
}
