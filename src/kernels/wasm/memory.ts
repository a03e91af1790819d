/**
 * Device memory of the WASM provider: one shared `WebAssembly.Memory` that every kernel
 * thread's instance works on, carved up by a first-fit free list.
 *
 * The address space above `top` is one free run; below it, freed blocks are kept as holes,
 * sorted by address and coalesced with their neighbours, and a hole that reaches `top` is
 * given back to it. The memory grows (in whole pages) when `top` passes its end. Shared
 * memory never moves when it grows, so pointers and views stay valid.
 */
import type { DeviceMemory } from "../provider.ts"

/** cache-line alignment: no two tensors share a line, so threads never false-share */
export const alignment = 64
const pageBytes = 65536

interface Hole {
  start: number
  size: number
}

export class WasmMemory implements DeviceMemory {
  /** floats are f32 here, so `write` and `read` copy bytes for every dtype */
  readonly floatBytes = 4
  private bytes: Uint8Array
  private readonly holes: Hole[] = []
  private readonly sizes = new Map<number, number>()
  private top: number
  private used = 0

  constructor(
    readonly wasm: WebAssembly.Memory,
    /** first byte past the module's static data */
    heapBase: number,
    /** the memory's maximum size, in bytes */
    readonly maxBytes: number
  ) {
    this.bytes = new Uint8Array(wasm.buffer)
    this.top = alignUp(heapBase)
  }

  get usedBytes(): number {
    return this.used
  }

  alloc(bytes: number): number {
    if (!Number.isInteger(bytes) || bytes < 0) throw new RangeError(`alloc: ${bytes} is not a byte count`)
    const size = alignUp(Math.max(bytes, 1))
    const i = this.holes.findIndex((hole) => hole.size >= size)
    let ptr: number
    if (i >= 0) {
      const hole = this.holes[i]
      ptr = hole.start
      if (hole.size === size) this.holes.splice(i, 1)
      else {
        hole.start += size
        hole.size -= size
      }
    } else {
      ptr = this.top
      this.reserve(ptr + size, bytes)
      this.top += size
    }
    this.sizes.set(ptr, size)
    this.used += size
    return ptr
  }

  free(ptr: number): void {
    const size = this.sizes.get(ptr)
    if (size === undefined) throw new Error(`free: ${ptr} is not a pointer returned by alloc (or was already freed)`)
    this.sizes.delete(ptr)
    this.used -= size
    let start = ptr
    let end = ptr + size
    let i = this.firstHoleAfter(ptr)
    const before = this.holes[i - 1]
    if (before && before.start + before.size === start) {
      start = before.start
      this.holes.splice(--i, 1)
    }
    const after = this.holes[i]
    if (after && after.start === end) {
      end = after.start + after.size
      this.holes.splice(i, 1)
    }
    if (end === this.top) this.top = start
    else this.holes.splice(i, 0, { start, size: end - start })
  }

  write(ptr: number, src: Float32Array | Int32Array): void {
    this.bytes.set(new Uint8Array(src.buffer, src.byteOffset, src.byteLength), ptr)
  }

  read(ptr: number, dst: Float32Array | Int32Array): void {
    new Uint8Array(dst.buffer, dst.byteOffset, dst.byteLength).set(this.bytes.subarray(ptr, ptr + dst.byteLength))
  }

  /**
   * A Float32Array over `length` floats at `ptr`, for host code on the CPU path only (the
   * CUDA provider has no such view: portable code uses `write` and `read`). It aliases the
   * kernels' memory: it sees their writes, and stays valid until `ptr` is freed.
   */
  f32View(ptr: number, length: number): Float32Array {
    return new Float32Array(this.bytes.buffer, ptr, length)
  }

  /** An Int32Array over `length` ints at `ptr`; CPU path only, as `f32View`. */
  i32View(ptr: number, length: number): Int32Array {
    return new Int32Array(this.bytes.buffer, ptr, length)
  }

  /** index of the first hole that starts after `ptr` (binary search) */
  private firstHoleAfter(ptr: number): number {
    let lo = 0
    let hi = this.holes.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (this.holes[mid].start < ptr) lo = mid + 1
      else hi = mid
    }
    return lo
  }

  /** grows the memory so that it holds `end` bytes */
  private reserve(end: number, requested: number): void {
    const have = this.bytes.byteLength
    if (end <= have) return
    const exhausted = () =>
      `WASM memory exhausted: alloc(${requested}) needs ${end} bytes of address space, ` +
      `${this.used} bytes are in use, the limit is ${this.maxBytes} bytes`
    if (end > this.maxBytes) throw new Error(exhausted())
    try {
      this.wasm.grow(Math.ceil((end - have) / pageBytes))
    } catch (cause) {
      throw new Error(`${exhausted()}; growing failed: ${String(cause)}`)
    }
    this.bytes = new Uint8Array(this.wasm.buffer)
  }
}

const alignUp = (n: number): number => Math.ceil(n / alignment) * alignment
