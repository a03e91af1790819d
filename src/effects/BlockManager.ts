import { Context, Effect, Layer } from "effect"
import { KVCacheManager, type KVCacheConfig } from "../engine/kvCacheManager.ts"
import { ExecutorService } from "./ExecutorService.ts"

/** What one block of KV costs: the shape of the cache on one rank. */
export interface KVCacheShape {
  readonly numLayers: number
  /** KV heads on this rank (the model's KV heads / TP size) */
  readonly numKvHeads: number
  readonly headDim: number
  readonly blockSize: number
  /** 2 for fp16/bf16, 1 for fp8, 4 for fp32 */
  readonly bytesPerElement: number
}

/** Blocks that fit in `bytes`: each holds K and V for blockSize tokens in every layer. */
export const numBlocksForBudget = (bytes: number, shape: KVCacheShape): number => {
  const bytesPerBlock =
    2 * shape.numLayers * shape.numKvHeads * shape.headDim * shape.blockSize * shape.bytesPerElement
  return Math.max(0, Math.floor(bytes / bytesPerBlock))
}

export interface KVCacheUsage {
  readonly numBlocks: number
  readonly numFreeBlocks: number
  readonly numCachedBlocks: number
  /** fraction of blocks held by requests */
  readonly usage: number
}

export interface BlockManagerService {
  /** the synchronous core; only the scheduler mutates it, between steps */
  readonly kvCache: KVCacheManager
  readonly usage: Effect.Effect<KVCacheUsage>
  /** drops cached KV no request holds (after a weight reload, cached KV is wrong) */
  readonly resetPrefixCache: Effect.Effect<void>
}

/** The paged KV cache's bookkeeping: blocks, free queue, block tables, prefix cache. */
export class BlockManager extends Context.Tag("Tessera/BlockManager")<BlockManager, BlockManagerService>() {
  static readonly make = (config: KVCacheConfig): BlockManagerService => {
    const kvCache = new KVCacheManager(config)
    return {
      kvCache,
      usage: Effect.sync(() => ({
        numBlocks: config.numBlocks,
        numFreeBlocks: kvCache.numFreeBlocks,
        numCachedBlocks: kvCache.pool.numCachedBlocks,
        usage: kvCache.usage,
      })),
      resetPrefixCache: Effect.sync(() => kvCache.resetPrefixCache()),
    }
  }

  static readonly layer = (config: KVCacheConfig): Layer.Layer<BlockManager> =>
    Layer.sync(BlockManager, () => BlockManager.make(config))

  /** sized by the executor, which allocated the KV tensors these blocks index */
  static readonly layerFromExecutor = (options: {
    readonly enablePrefixCaching: boolean
  }): Layer.Layer<BlockManager, never, ExecutorService> =>
    Layer.effect(
      BlockManager,
      Effect.map(ExecutorService, (executor) =>
        BlockManager.make({
          numBlocks: executor.numBlocks,
          blockSize: executor.blockSize,
          enablePrefixCaching: options.enablePrefixCaching,
        }),
      ),
    )
}
