import type { DeviceMemory } from "../kernels/provider.ts"
import { selectBlock } from "../model/safetensors.ts"
import type { WeightSource } from "../model/weights.ts"

/** Where a rank sits in its tensor-parallel group. */
export interface TpShard {
  readonly rank: number
  readonly size: number
}

export const singleShard: TpShard = { rank: 0, size: 1 }

/** The `[begin, end)` slice of `extent` that `shard` owns; the extent must divide evenly. */
export const shardRange = (extent: number, shard: TpShard, what: string): [number, number] => {
  if (extent % shard.size !== 0) {
    throw new Error(`${what}: ${extent} does not split over tensor-parallel size ${shard.size}`)
  }
  const part = extent / shard.size
  return [shard.rank * part, (shard.rank + 1) * part]
}

/** A block of a stored tensor: rows `[r0, r1)` (all when absent), columns `[c0, c1)` of a 2-D one. */
interface Slice {
  readonly name: string
  readonly rows?: [number, number]
  readonly cols?: [number, number]
}

/**
 * Reads weights (or slices of them) from the model directory into device memory. One host
 * staging buffer is reused for every tensor. Where the device stores bf16 and the checkpoint
 * is bf16, the stored values go as they are (`writeBf16Bits`: through pinned staging on a GPU),
 * a row slice straight from the mapped file; anything else is converted to f32 on the host
 * first. The loader owns what it uploads: `release()` frees it all.
 */
export class WeightLoader {
  private staging = new Float32Array(0)
  private bits = new Uint16Array(0)
  private readonly owned: number[] = []
  constructor(
    readonly source: WeightSource,
    readonly memory: DeviceMemory,
    /** called with the elements uploaded so far, after each tensor */
    private readonly onProgress?: (elements: number) => void
  ) {}
  private uploadedElements = 0

  private stage(elements: number): Float32Array {
    if (this.staging.length < elements) this.staging = new Float32Array(elements)
    return this.staging.subarray(0, elements)
  }

  /** rows `[r0, r1)` of each named 2-D weight (or 1-D bias), stacked in order: a column-parallel weight */
  rows(parts: ReadonlyArray<{ name: string; rows: [number, number] }>, cols: number): number {
    return this.load(parts.map((part) => ({ ...part, elements: (part.rows[1] - part.rows[0]) * cols })))
  }

  /** columns `[c0, c1)` of a `[rows, *]` weight: a row-parallel weight */
  columns(name: string, rows: number, cols: [number, number]): number {
    return this.load([{ name, cols, elements: rows * (cols[1] - cols[0]) }])
  }

  /** a whole tensor */
  whole(name: string): number {
    return this.load([{ name, elements: this.source.info(name).shape.reduce((a, b) => a * b, 1) }])
  }

  /** the slices, stacked in order, into one new tensor */
  private load(slices: ReadonlyArray<Slice & { readonly elements: number }>): number {
    const total = slices.reduce((n, s) => n + s.elements, 0)
    const ptr = this.memory.alloc(total * this.memory.floatBytes)
    this.owned.push(ptr)
    const writeBits = this.memory.floatBytes === 2 ? this.memory.writeBf16Bits?.bind(this.memory) : undefined
    if (writeBits && slices.every((s) => this.storedAsBf16(s.name))) {
      let offset = 0
      for (const s of slices) {
        writeBits(ptr + 2 * offset, this.storedBf16(s))
        offset += s.elements
      }
    } else {
      const host = this.stage(total)
      let offset = 0
      for (const s of slices) {
        this.source.readInto(s.name, host.subarray(offset, offset + s.elements), s.rows, s.cols)
        offset += s.elements
      }
      this.memory.write(ptr, host)
    }
    this.uploadedElements += total
    this.onProgress?.(this.uploadedElements)
    return ptr
  }

  /** whether the tensor is stored as bf16 where a view can read it (2-byte aligned) */
  private storedAsBf16(name: string): boolean {
    return this.source.info(name).dtype === "BF16" && this.source.rawBytes(name).byteOffset % 2 === 0
  }

  /**
   * The slice's stored bf16 values: a view of the mapped file for whole rows, gathered row by
   * row (into a buffer the next call reuses) for a column range.
   */
  private storedBf16({ name, rows, cols }: Slice): Uint16Array {
    const { shape, file } = this.source.info(name)
    const raw = this.source.rawBytes(name)
    const all = new Uint16Array(raw.buffer, raw.byteOffset, raw.byteLength / 2)
    const { r0, r1, c0, c1, rowLength } = selectBlock(file, name, shape, rows, cols)
    if (cols === undefined) return all.subarray(r0 * rowLength, r1 * rowLength)
    const width = c1 - c0
    if (this.bits.length < (r1 - r0) * width) this.bits = new Uint16Array((r1 - r0) * width)
    const out = this.bits.subarray(0, (r1 - r0) * width)
    for (let r = r0; r < r1; r++) out.set(all.subarray(r * rowLength + c0, r * rowLength + c1), (r - r0) * width)
    return out
  }

  /** a table that stays f32 on every provider (rope's inverse frequencies) */
  f32(values: Float32Array): number {
    const ptr = this.memory.alloc(values.byteLength)
    this.owned.push(ptr)
    this.memory.write(ptr, values, "f32")
    return ptr
  }

  /** frees every tensor this loader uploaded */
  release(): void {
    for (const ptr of this.owned.splice(0)) this.memory.free(ptr)
  }

}
