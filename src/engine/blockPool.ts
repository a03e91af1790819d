import type { Brand } from "effect"

/** Index of a KV-cache block: slot = block * blockSize + offset. */
export type BlockId = number & Brand.Brand<"BlockId">

/** hash of the empty prefix, the parent of every sequence's first block */
export const ROOT_BLOCK_HASH = 0

const rotl = (x: number, r: number): number => (x << r) | (x >>> (32 - r))
const fmix32 = (h: number): number => {
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  return (h ^ (h >>> 16)) >>> 0
}

/**
 * Content hash of one full block, chained over the parent block's hash so equal token runs
 * at different prefixes differ. Two 32-bit murmur3 lanes give a 53-bit Map key. A hit is
 * verified against the stored tokens and parent (BlockPool.lookup), so a collision can only
 * cost a cache miss, never serve another prompt's KV.
 */
export const hashBlockTokens = (parentHash: number, tokens: ArrayLike<number>, start: number, length: number): number => {
  let a = (parentHash >>> 0) ^ 0x9747b28c
  let b = Math.floor(parentHash / 4294967296) ^ 0x3c6ef372
  for (let i = start; i < start + length; i++) {
    const t = tokens[i]
    a ^= Math.imul(rotl(Math.imul(t, 0xcc9e2d51), 15), 0x1b873593)
    a = (Math.imul(rotl(a, 13), 5) + 0xe6546b64) | 0
    b ^= Math.imul(rotl(Math.imul(t, 0x85ebca77), 17), 0xc2b2ae3d)
    b = (Math.imul(rotl(b, 11), 9) + 0x27d4eb2f) | 0
  }
  return fmix32(a ^ length) * 2097152 + (fmix32(b ^ length) >>> 11)
}

/**
 * vLLM's BlockPool: every block with its reference count, a free queue ordered for eviction,
 * and the prefix cache (content hash -> block). A free block may still hold cached KV: it is
 * reusable by a prefix hit until allocation evicts it, least recently freed first.
 *
 * The free queue is a doubly linked list in typed arrays with a sentinel at index
 * `numBlocks`, so taking a cached block out of the middle on a hit is O(1).
 */
export class BlockPool {
  readonly refCount: Int32Array
  private readonly next: Int32Array
  private readonly prev: Int32Array
  private readonly sentinel: number
  private freeCount: number
  /** per block: content hash while cached, NaN otherwise */
  private readonly cachedHash: Float64Array
  /** per block: its parent block and that block's generation when this one was cached */
  private readonly cachedParent: Int32Array
  private readonly cachedParentGeneration: Int32Array
  /** per block: bumped on every reuse, so children cached under an old content go stale */
  private readonly generation: Int32Array
  private readonly cachedTokens: Int32Array
  private readonly cache = new Map<number, BlockId>()

  constructor(
    readonly numBlocks: number,
    readonly blockSize: number,
  ) {
    this.refCount = new Int32Array(numBlocks)
    this.next = new Int32Array(numBlocks + 1)
    this.prev = new Int32Array(numBlocks + 1)
    this.sentinel = numBlocks
    this.cachedHash = new Float64Array(numBlocks).fill(Number.NaN)
    this.cachedParent = new Int32Array(numBlocks)
    this.cachedParentGeneration = new Int32Array(numBlocks)
    this.generation = new Int32Array(numBlocks)
    this.cachedTokens = new Int32Array(numBlocks * blockSize)
    // initially the queue is 0, 1, ..., numBlocks - 1
    for (let i = 0; i <= numBlocks; i++) {
      this.next[i] = i === numBlocks ? 0 : i + 1
      this.prev[i] = i === 0 ? numBlocks : i - 1
    }
    if (numBlocks === 0) this.next[this.sentinel] = this.prev[this.sentinel] = this.sentinel
    this.freeCount = numBlocks
  }

  /** free blocks, cached ones included (they are evictable) */
  get numFreeBlocks(): number {
    return this.freeCount
  }

  get numCachedBlocks(): number {
    return this.cache.size
  }

  isCached(block: BlockId): boolean {
    return !Number.isNaN(this.cachedHash[block])
  }

  /** Takes `n` blocks from the front of the free queue (evicting their cached KV); all or nothing. */
  allocate(n: number, out: BlockId[]): boolean {
    if (n > this.freeCount) return false
    for (let i = 0; i < n; i++) {
      const block = this.next[this.sentinel] as BlockId
      this.unlink(block)
      this.evict(block)
      this.generation[block]++
      this.refCount[block] = 1
      out.push(block)
    }
    return true
  }

  /** Adds an owner to a block found in the prefix cache or shared by a fork. */
  touch(block: BlockId): void {
    if (this.refCount[block]++ === 0) this.unlink(block)
  }

  /** Drops one owner; a block left with none joins the tail of the free queue (evicted last). */
  release(block: BlockId): void {
    if (--this.refCount[block] > 0) return
    const last = this.prev[this.sentinel]
    this.next[last] = block
    this.prev[block] = last
    this.next[block] = this.sentinel
    this.prev[this.sentinel] = block
    this.freeCount++
  }

  /** The cached block holding `tokens[start, start + blockSize)` right after `parent` (-1: first block). */
  lookup(hash: number, tokens: ArrayLike<number>, start: number, parent: number): BlockId | undefined {
    const block = this.cache.get(hash)
    if (block === undefined) return undefined
    if (this.cachedParent[block] !== parent) return undefined
    if (parent >= 0 && this.cachedParentGeneration[block] !== this.generation[parent]) return undefined
    const base = block * this.blockSize
    for (let i = 0; i < this.blockSize; i++) if (this.cachedTokens[base + i] !== tokens[start + i]) return undefined
    return block
  }

  /** Publishes a full, computed block. A second block with the same content stays unpublished. */
  cacheBlock(block: BlockId, hash: number, tokens: ArrayLike<number>, start: number, parent: number): void {
    if (this.isCached(block) || this.cache.has(hash)) return
    this.cache.set(hash, block)
    this.cachedHash[block] = hash
    this.cachedParent[block] = parent
    this.cachedParentGeneration[block] = parent >= 0 ? this.generation[parent] : 0
    const base = block * this.blockSize
    for (let i = 0; i < this.blockSize; i++) this.cachedTokens[base + i] = tokens[start + i]
  }

  /** Drops every cached entry that no request holds (vLLM's reset_prefix_cache). */
  resetPrefixCache(): void {
    for (const block of this.cache.values()) if (this.refCount[block] === 0) this.evict(block)
  }

  /** The free queue from next-to-evict to last; for tests and metrics. */
  *freeQueue(): Generator<BlockId> {
    for (let b = this.next[this.sentinel]; b !== this.sentinel; b = this.next[b]) yield b as BlockId
  }

  private unlink(block: number): void {
    this.next[this.prev[block]] = this.next[block]
    this.prev[this.next[block]] = this.prev[block]
    this.freeCount--
  }

  private evict(block: BlockId): void {
    const hash = this.cachedHash[block]
    if (Number.isNaN(hash)) return
    this.cache.delete(hash)
    this.cachedHash[block] = Number.NaN
  }
}
