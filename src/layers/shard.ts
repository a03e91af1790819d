import type { DeviceMemory } from "../kernels/provider.ts"
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

/**
 * Reads weights (or slices of them) from the model directory into device memory. One host
 * staging buffer is reused for every tensor, as pinned staging buffers are on a GPU. The loader
 * owns what it uploads: `release()` frees it all.
 */
export class WeightLoader {
  private staging = new Float32Array(0)
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
    const total = parts.reduce((n, p) => n + (p.rows[1] - p.rows[0]) * cols, 0)
    const host = this.stage(total)
    let offset = 0
    for (const part of parts) {
      const n = (part.rows[1] - part.rows[0]) * cols
      this.source.readInto(part.name, host.subarray(offset, offset + n), part.rows)
      offset += n
    }
    return this.upload(host)
  }

  /** columns `[c0, c1)` of a `[rows, *]` weight: a row-parallel weight */
  columns(name: string, rows: number, cols: [number, number]): number {
    const host = this.stage(rows * (cols[1] - cols[0]))
    this.source.readInto(name, host, undefined, cols)
    return this.upload(host)
  }

  /** a whole tensor */
  whole(name: string): number {
    const elements = this.source.info(name).shape.reduce((a, b) => a * b, 1)
    const host = this.stage(elements)
    this.source.readInto(name, host)
    return this.upload(host)
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

  private upload(host: Float32Array): number {
    const ptr = this.memory.alloc(host.length * this.memory.floatBytes)
    this.owned.push(ptr)
    this.memory.write(ptr, host)
    this.uploadedElements += host.length
    this.onProgress?.(this.uploadedElements)
    return ptr
  }
}
