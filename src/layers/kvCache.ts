import type { DeviceMemory } from "../kernels/provider.ts"

/** One layer's paged cache: K and V, each `[numBlocks * blockSize, kvHeads, headDim]`. */
export interface LayerKvCache {
  readonly k: number
  readonly v: number
}

export interface KvCacheShape {
  readonly numLayers: number
  readonly numBlocks: number
  readonly blockSize: number
  /** KV heads of this rank */
  readonly kvHeads: number
  readonly headDim: number
  readonly bytesPerElement: number
}

/** The paged KV cache of every layer of this rank. */
export class KvCacheStorage {
  readonly layers: ReadonlyArray<LayerKvCache>
  constructor(
    private readonly memory: DeviceMemory,
    readonly shape: KvCacheShape
  ) {
    const bytes = shape.numBlocks * shape.blockSize * shape.kvHeads * shape.headDim * shape.bytesPerElement
    this.layers = Array.from({ length: shape.numLayers }, () => ({ k: memory.alloc(bytes), v: memory.alloc(bytes) }))
  }

  release(): void {
    for (const layer of this.layers) {
      this.memory.free(layer.k)
      this.memory.free(layer.v)
    }
  }
}
