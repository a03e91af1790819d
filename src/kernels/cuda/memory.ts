/**
 * Device memory of the CUDA provider: cudaMalloc'd tensors, owned by whoever allocated them.
 *
 * `float` tensors are bf16 on the device: a Float32Array written to one is rounded there (to
 * nearest even, by a kernel, at copy bandwidth), and read back widened to f32. `f32` and `i32`
 * tensors are copied as they are. Pointers are device addresses, JavaScript numbers (CUDA
 * addresses fit in 48 bits, far under 2^53), so stage code steps through them as on the CPU.
 */
import { toArrayBuffer, type Pointer } from "bun:ffi"
import { CudaError } from "../../../ffi/errors.ts"
import type { NativeLibrary } from "../../../ffi/library.ts"
import type { DType } from "../catalog.ts"
import type { DeviceMemory } from "../provider.ts"

export const devicePointer = (address: number): Pointer => address as Pointer

/**
 * Values a host buffer stands for but does not hold, made on the device when that buffer is
 * written (dummy weights): element i of the `[rows, cols]` slice starting at element `first`
 * of a `[*, width]` tensor is `offset + (2u - 1) * scale`, u = hash(seed, index).
 */
export interface DeviceFill {
  readonly rows: number
  readonly cols: number
  readonly width: number
  readonly first: number
  readonly seed: number
  readonly offset: number
  readonly scale: number
}

/** pinned host memory: `bytes` at `ptr`, seen from JavaScript through `buffer` */
export interface PinnedBuffer {
  readonly ptr: number
  readonly buffer: ArrayBuffer
}

/** bytes of each of the two pinned buffers bf16 weights stream through */
const weightStagingBytes = 32 << 20

export class CudaMemory implements DeviceMemory {
  readonly floatBytes = 2
  /** pinned buffers for writeBf16Bits, made on first use, and the one the next chunk fills */
  private weightStaging: PinnedBuffer[] = []
  private weightStagingTurn = 0
  private readonly sizes = new Map<number, number>()
  private used = 0
  private closed = false
  private readonly out = new BigUint64Array(1)
  /** deferred fills by the host buffer (and element offset in it) that stands for them */
  private readonly fills = new WeakMap<ArrayBuffer, Map<number, DeviceFill>>()
  /**
   * While set, every read of a float tensor is offered here first (CUDA graph capture turns
   * reads into enqueued copies to pinned memory); true means it was handled.
   */
  readInterceptor: ((ptr: number, dst: Float32Array | Int32Array, dtype?: DType) => boolean) | undefined

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
    if (src instanceof Float32Array && this.isFloat(src, dtype) && this.writeFills(ptr, src)) return
    if (this.isFloat(src, dtype)) {
      this.native.check("tsr_write_bf16", symbols.tsr_write_bf16(this.ctx, devicePointer(ptr), src, src.length))
    } else {
      this.native.check("tsr_write", symbols.tsr_write(this.ctx, devicePointer(ptr), src, src.byteLength))
    }
  }

  read(ptr: number, dst: Float32Array | Int32Array, dtype?: DType): void {
    this.ensureOpen("read")
    if (dst.length === 0) return
    if (this.readInterceptor?.(ptr, dst, dtype)) return
    const { symbols } = this.native
    if (this.isFloat(dst, dtype)) {
      this.native.check("tsr_read_bf16", symbols.tsr_read_bf16(this.ctx, dst, devicePointer(ptr), dst.length))
    } else {
      this.native.check("tsr_read", symbols.tsr_read(this.ctx, dst, devicePointer(ptr), dst.byteLength))
    }
  }

  /**
   * Marks `dst` (a view of a host buffer) as standing for `fill`: when a write covers it, the
   * values are made on the device instead of copied, and `dst` itself is never read.
   */
  deferFill(dst: Float32Array, fill: DeviceFill): void {
    if (fill.rows * fill.cols !== dst.length) throw new RangeError(`deferFill: ${fill.rows}x${fill.cols} does not fill ${dst.length} elements`)
    let map = this.fills.get(dst.buffer as ArrayBuffer)
    if (!map) this.fills.set(dst.buffer as ArrayBuffer, (map = new Map()))
    map.set(dst.byteOffset / 4, fill)
  }

  /** makes `fill` in the bf16 tensor at `ptr`, on the device */
  fill(ptr: number, f: DeviceFill): void {
    this.ensureOpen("fill")
    this.native.check(
      "tsr_fill_uniform",
      this.native.symbols.tsr_fill_uniform(this.ctx, devicePointer(ptr), f.rows, f.cols, f.width, f.first, f.seed | 0, f.offset, f.scale)
    )
  }

  /**
   * bf16 values as stored (a checkpoint's bits) to the tensor at `ptr`, through two pinned
   * buffers in turn. A chunk is filled, then the stream waited for, then its copy enqueued: so
   * filling one buffer overlaps the copy out of the other, and a buffer's last copy has finished
   * (at the wait before the other buffer's copy) by the time it is filled again.
   */
  writeBf16Bits(ptr: number, bits: Uint16Array): void {
    this.ensureOpen("writeBf16Bits")
    if (this.weightStaging.length === 0) this.weightStaging = [this.allocPinned(weightStagingBytes), this.allocPinned(weightStagingBytes)]
    const chunk = weightStagingBytes / 2
    for (let done = 0; done < bits.length; done += chunk) {
      const n = Math.min(chunk, bits.length - done)
      const staging = this.weightStaging[this.weightStagingTurn]
      this.weightStagingTurn ^= 1
      new Uint16Array(staging.buffer, 0, n).set(bits.subarray(done, done + n))
      // the copy before this one reads the other buffer; the one before that read this buffer
      this.native.check("tsr_synchronize", this.native.symbols.tsr_synchronize(this.ctx))
      this.writeAsync(ptr + 2 * done, staging.ptr, 2 * n)
    }
  }

  /** pinned host memory, for asynchronous copies (and copies inside CUDA graphs) */
  allocPinned(bytes: number): PinnedBuffer {
    this.ensureOpen("allocPinned")
    this.native.check("tsr_host_alloc", this.native.symbols.tsr_host_alloc(this.ctx, this.out, bytes))
    const ptr = Number(this.out[0])
    return { ptr, buffer: toArrayBuffer(devicePointer(ptr), 0, bytes) }
  }

  freePinned(buffer: PinnedBuffer): void {
    this.native.check("tsr_host_free", this.native.symbols.tsr_host_free(this.ctx, devicePointer(buffer.ptr)))
  }

  /** enqueues host (pinned) -> device bytes; the source must stay untouched until the stream reaches it */
  writeAsync(ptr: number, srcPtr: number, bytes: number): void {
    if (bytes === 0) return
    this.native.check("tsr_write", this.native.symbols.tsr_write(this.ctx, devicePointer(ptr), devicePointer(srcPtr), bytes))
  }

  /** enqueues device -> pinned host bytes as they are (valid after the next synchronize) */
  readBytesAsync(dstPtr: number, ptr: number, bytes: number): void {
    if (bytes === 0) return
    this.native.check("tsr_read_async", this.native.symbols.tsr_read_async(this.ctx, devicePointer(dstPtr), devicePointer(ptr), bytes))
  }

  /** enqueues device bf16 -> pinned host f32, n elements (valid after the next synchronize) */
  readAsync(dstPtr: number, ptr: number, n: number): void {
    if (n === 0) return
    this.native.check("tsr_read_bf16_async", this.native.symbols.tsr_read_bf16_async(this.ctx, devicePointer(dstPtr), devicePointer(ptr), n))
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
      this.native.check("tsr_synchronize", this.native.symbols.tsr_synchronize(this.ctx))
      for (const staging of this.weightStaging.splice(0)) this.freePinned(staging)
    } finally {
      this.closed = true
    }
    return left
  }

  /**
   * Makes the deferred fills that `src` covers and reports whether they cover all of it (then
   * nothing is copied). Fills are consumed: the loader reuses its staging buffer.
   */
  private writeFills(ptr: number, src: Float32Array): boolean {
    const map = this.fills.get(src.buffer as ArrayBuffer)
    if (!map || map.size === 0) return false
    const begin = src.byteOffset / 4
    const end = begin + src.length
    let covered = 0
    for (const [at, f] of [...map]) {
      const n = f.rows * f.cols
      if (at < begin || at + n > end) continue
      this.fill(ptr + (at - begin) * this.floatBytes, f)
      map.delete(at)
      covered += n
    }
    if (covered === 0) return false
    if (covered !== src.length) throw new Error(`write: deferred fills cover ${covered} of ${src.length} elements`)
    return true
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
