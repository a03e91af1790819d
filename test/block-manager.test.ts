import { Effect } from "effect"
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { BlockManager, numBlocksForBudget } from "../src/effects/BlockManager.ts"
import { BlockPool, type BlockId } from "../src/engine/blockPool.ts"
import { KVCacheManager } from "../src/engine/kvCacheManager.ts"
import { Request, RequestId } from "../src/engine/request.ts"

const range = (n: number, from = 0) => Array.from({ length: n }, (_, i) => from + i)

describe("numBlocksForBudget", () => {
  it("K and V for every layer, head and slot of a block", () => {
    // Llama-3-8B on one rank: 32 layers, 8 KV heads of 128, fp16: 128 KiB per token
    const shape = { numLayers: 32, numKvHeads: 8, headDim: 128, blockSize: 16, bytesPerElement: 2 }
    expect(numBlocksForBudget(2 * 1024 ** 3, shape)).toBe(1024)
    expect(numBlocksForBudget(2 * 1024 ** 3 - 1, shape)).toBe(1023)
    expect(numBlocksForBudget(0, shape)).toBe(0)
  })
})

describe("BlockPool", () => {
  it("allocates least recently freed first and keeps freed blocks' cache until reuse", () => {
    const pool = new BlockPool(4, 2)
    const got: BlockId[] = []
    expect(pool.allocate(4, got)).toBe(true)
    expect(pool.allocate(1, [])).toBe(false)
    pool.cacheBlock(got[0], 123, [5, 6], 0, -1)
    for (const b of [got[2], got[0], got[3], got[1]]) pool.release(b)
    expect([...pool.freeQueue()]).toEqual([got[2], got[0], got[3], got[1]])
    expect(pool.lookup(123, [5, 6], 0, -1)).toBe(got[0])
    // a hit takes the block out of the middle of the queue
    pool.touch(got[0])
    expect([...pool.freeQueue()]).toEqual([got[2], got[3], got[1]])
    pool.release(got[0])
    const next: BlockId[] = []
    pool.allocate(3, next)
    expect(next).toEqual([got[2], got[3], got[1]])
    expect(pool.isCached(got[0])).toBe(true)
    pool.allocate(1, next)
    // reuse evicts
    expect(pool.isCached(got[0])).toBe(false)
    expect(pool.lookup(123, [5, 6], 0, -1)).toBeUndefined()
  })

  it("a hash hit with other tokens or another parent is a miss, so collisions never serve foreign KV", () => {
    const pool = new BlockPool(3, 2)
    const b: BlockId[] = []
    pool.allocate(3, b)
    pool.cacheBlock(b[0], 1, [1, 2], 0, -1)
    pool.cacheBlock(b[1], 2, [3, 4], 0, b[0])
    expect(pool.lookup(1, [1, 9], 0, -1)).toBeUndefined()
    expect(pool.lookup(2, [3, 4], 0, b[2])).toBeUndefined()
    expect(pool.lookup(2, [3, 4], 0, b[0])).toBe(b[1])
    // once the parent is reused for other content, its old child is stale
    pool.release(b[0])
    const again: BlockId[] = []
    pool.allocate(1, again)
    expect(again[0]).toBe(b[0])
    pool.cacheBlock(b[0], 1, [1, 2], 0, -1)
    expect(pool.lookup(2, [3, 4], 0, b[0])).toBeUndefined()
  })
})

describe("KVCacheManager", () => {
  it("allocation is all or nothing, and counts prefix hits on free cached blocks", () => {
    const kv = new KVCacheManager({ numBlocks: 4, blockSize: 2, enablePrefixCaching: true })
    const a = new Request(RequestId("a"), range(6), 0)
    expect(kv.allocateSlots(a, 6)).toBe(true)
    kv.cacheFullBlocks(a, 6)
    kv.free(a.requestId)
    // b shares a's 3 cached (free) blocks and needs 2 more for 4 new tokens: 3 + 2 > 4
    const b = new Request(RequestId("b"), [...range(6), 9, 9, 9, 9], 1)
    const hits = kv.getComputedBlocks(b)
    expect(hits.length).toBe(3)
    expect(kv.allocateSlots(b, 4, hits)).toBe(false)
    expect(kv.blockTable(b.requestId)).toEqual([])
    expect(kv.numFreeBlocks).toBe(4)
    expect(kv.allocateSlots(b, 2, hits)).toBe(true)
    expect(kv.numFreeBlocks).toBe(0)
  })

  it("random operations keep refcounts equal to owners and every block free or owned", () => {
    const op = fc.oneof(
      fc.record({ kind: fc.constant("add" as const), prefix: fc.nat({ max: 2 }), len: fc.integer({ min: 1, max: 12 }) }),
      fc.record({ kind: fc.constant("grow" as const), who: fc.nat(), by: fc.integer({ min: 1, max: 5 }) }),
      fc.record({ kind: fc.constant("free" as const), who: fc.nat() }),
      fc.record({ kind: fc.constant("fork" as const), who: fc.nat() }),
    )
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 12 }), fc.constantFrom(1, 2, 4), fc.array(op, { maxLength: 60 }), (numBlocks, bs, ops) => {
        const kv = new KVCacheManager({ numBlocks, blockSize: bs, enablePrefixCaching: true })
        const live: Request[] = []
        let n = 0
        for (const o of ops) {
          if (o.kind === "add") {
            const r = new Request(RequestId(`r${n++}`), [...range(o.prefix * 4, 100 * o.prefix), ...range(o.len, n * 1000)], n)
            const hits = kv.getComputedBlocks(r)
            const computed = hits.length * bs
            if (kv.allocateSlots(r, r.numTokens - computed, hits)) {
              r.numComputedTokens = r.numTokens
              kv.cacheFullBlocks(r, r.numTokens)
              live.push(r)
            }
          } else if (live.length > 0) {
            const r = live[o.who % live.length]
            if (o.kind === "grow" && kv.allocateSlots(r, o.by)) {
              for (let i = 0; i < o.by; i++) r.appendOutputToken(i)
              r.numComputedTokens = r.numTokens
              kv.cacheFullBlocks(r, r.numTokens)
            } else if (o.kind === "free") {
              kv.free(r.requestId)
              live.splice(live.indexOf(r), 1)
            } else if (o.kind === "fork") {
              const child = new Request(RequestId(`r${n++}`), r.tokenIds, n)
              const shared = Math.floor((r.numTokens - 1) / bs)
              kv.fork(r, child, shared)
              child.numComputedTokens = shared * bs
              live.push(child)
            }
          }
          const owners = new Map<number, number>()
          for (const [, table] of kv.owners()) for (const b of table) owners.set(b, (owners.get(b) ?? 0) + 1)
          const free = new Set(kv.pool.freeQueue())
          expect(free.size).toBe(kv.numFreeBlocks)
          for (let b = 0; b < numBlocks; b++) {
            expect(kv.pool.refCount[b]).toBe(owners.get(b) ?? 0)
            expect(free.has(b as BlockId)).toBe(!owners.has(b))
          }
        }
        for (const r of live) kv.free(r.requestId)
        expect(kv.numFreeBlocks).toBe(numBlocks)
      }),
      { numRuns: 300 },
    )
  })
})

describe("BlockManager service", () => {
  it("reports usage and resets the prefix cache", async () => {
    const manager = BlockManager.make({ numBlocks: 8, blockSize: 4, enablePrefixCaching: true })
    const r = new Request(RequestId("a"), range(8), 0)
    manager.kvCache.allocateSlots(r, 8)
    manager.kvCache.cacheFullBlocks(r, 8)
    expect(await Effect.runPromise(manager.usage)).toEqual({ numBlocks: 8, numFreeBlocks: 6, numCachedBlocks: 2, usage: 0.25 })
    manager.kvCache.free(r.requestId)
    await Effect.runPromise(manager.resetPrefixCache)
    expect(await Effect.runPromise(manager.usage)).toEqual({ numBlocks: 8, numFreeBlocks: 8, numCachedBlocks: 0, usage: 0 })
  })
})
