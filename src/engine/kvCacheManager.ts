import { BlockPool, type BlockId } from "./blockPool.ts"
import type { Request, RequestId } from "./request.ts"

export interface KVCacheConfig {
  readonly numBlocks: number
  /** tokens per block (16 is vLLM's default on GPUs) */
  readonly blockSize: number
  readonly enablePrefixCaching: boolean
}

/**
 * vLLM's KVCacheManager: the block table of every request, on top of the BlockPool.
 * Blocks enter a request's table by allocation, by a prefix-cache hit, or by a fork of an
 * n > 1 sibling, and leave it only all at once (finish, abort, preemption).
 */
export class KVCacheManager {
  readonly pool: BlockPool
  readonly blockSize: number
  private readonly tables = new Map<RequestId, BlockId[]>()
  /** per request: how many leading blocks are already published in the prefix cache */
  private readonly numPublished = new Map<RequestId, number>()

  constructor(readonly config: KVCacheConfig) {
    this.pool = new BlockPool(config.numBlocks, config.blockSize)
    this.blockSize = config.blockSize
  }

  get numFreeBlocks(): number {
    return this.pool.numFreeBlocks
  }

  /** fraction of blocks some request holds (free cached blocks count as free) */
  get usage(): number {
    return this.config.numBlocks === 0 ? 0 : 1 - this.pool.numFreeBlocks / this.config.numBlocks
  }

  blockTable(requestId: RequestId): ReadonlyArray<BlockId> {
    return this.tables.get(requestId) ?? []
  }

  /** the requests holding blocks; for tests */
  owners(): IterableIterator<[RequestId, ReadonlyArray<BlockId>]> {
    return this.tables.entries()
  }

  /**
   * The longest cached prefix of a request that holds no blocks, in whole blocks. At least
   * the last token is always left to compute: the step must produce its logits.
   */
  getComputedBlocks(request: Request): BlockId[] {
    const hits: BlockId[] = []
    if (!this.config.enablePrefixCaching) return hits
    const bs = this.blockSize
    const maxHits = Math.floor((request.numTokens - 1) / bs)
    let parent = -1
    for (let j = 0; j < maxHits; j++) {
      const block = this.pool.lookup(request.blockHash(j, bs), request.tokenIds, j * bs, parent)
      if (block === undefined) break
      hits.push(block)
      parent = block
    }
    return hits
  }

  /**
   * Makes room for `numNewTokens` more tokens after the request's computed ones (plus
   * `newComputedBlocks` of prefix hits, taken now). All or nothing: false leaves no trace.
   */
  allocateSlots(request: Request, numNewTokens: number, newComputedBlocks: ReadonlyArray<BlockId> = []): boolean {
    let table = this.tables.get(request.requestId)
    const numHeld = (table?.length ?? 0) + newComputedBlocks.length
    const numTokensAfter = request.numComputedTokens + newComputedBlocks.length * this.blockSize + numNewTokens
    const numNeeded = Math.max(0, Math.ceil(numTokensAfter / this.blockSize) - numHeld)
    // a hit on a free cached block takes it out of the free queue, so it cannot also be allocated
    let numHitsInFreeQueue = 0
    for (const block of newComputedBlocks) if (this.pool.refCount[block] === 0) numHitsInFreeQueue++
    if (numNeeded > this.pool.numFreeBlocks - numHitsInFreeQueue) return false
    if (table === undefined) {
      table = []
      this.tables.set(request.requestId, table)
    }
    for (const block of newComputedBlocks) {
      this.pool.touch(block)
      table.push(block)
    }
    if (newComputedBlocks.length > 0) this.numPublished.set(request.requestId, table.length)
    // the count above guarantees this; a failure is a bookkeeping defect, not a full cache
    if (!this.pool.allocate(numNeeded, table)) throw new Error("BlockPool ran out of blocks it reported free")
    return true
  }

  /**
   * Publishes the request's full blocks up to `numComputedTokens`. Called after the step
   * that computed them, so a hit never reads KV a concurrent step is still writing.
   */
  cacheFullBlocks(request: Request, numComputedTokens: number): void {
    if (!this.config.enablePrefixCaching) return
    const table = this.tables.get(request.requestId)
    if (table === undefined) return
    const bs = this.blockSize
    const numFull = Math.min(Math.floor(numComputedTokens / bs), table.length)
    for (let j = this.numPublished.get(request.requestId) ?? 0; j < numFull; j++) {
      const parent = j === 0 ? -1 : table[j - 1]
      this.pool.cacheBlock(table[j], request.blockHash(j, bs), request.tokenIds, j * bs, parent)
    }
    this.numPublished.set(request.requestId, numFull)
  }

  /**
   * Gives the first `numBlocks` blocks of `parent` to `child` as well (n > 1 siblings).
   * Only full, computed blocks may be shared: nobody writes to them again.
   */
  fork(parent: Request, child: Request, numBlocks: number): void {
    const source = this.tables.get(parent.requestId) ?? []
    const table = source.slice(0, numBlocks)
    for (const block of table) this.pool.touch(block)
    this.tables.set(child.requestId, table)
  }

  /** Releases every block of the request, tail first so that its prefix is evicted last. */
  free(requestId: RequestId): void {
    const table = this.tables.get(requestId)
    if (table === undefined) return
    for (let j = table.length - 1; j >= 0; j--) this.pool.release(table[j])
    this.tables.delete(requestId)
    this.numPublished.delete(requestId)
  }

  resetPrefixCache(): void {
    this.pool.resetPrefixCache()
  }
}
