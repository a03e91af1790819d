import { describe, expect, it } from "vitest"
import { KVCacheManager } from "../src/engine/kvCacheManager.ts"
import { RequestId } from "../src/engine/request.ts"
import { SchedulerCore, type SchedulerConfig, type SchedulerOutput } from "../src/engine/scheduler.ts"

/** Hand-built cases for the policy choices: who runs, who yields, what is shared. */

const range = (n: number, from = 0) => Array.from({ length: n }, (_, i) => from + i)

const setup = (config: Partial<SchedulerConfig>, numBlocks: number, blockSize = 4, enablePrefixCaching = true) => {
  const kv = new KVCacheManager({ numBlocks, blockSize, enablePrefixCaching })
  const core = new SchedulerCore(
    { maxNumSeqs: 8, maxNumBatchedTokens: 64, maxModelLen: numBlocks * blockSize, enableChunkedPrefill: true, ...config },
    kv,
  )
  /** runs one step in which every sampled sequence gets token 7 */
  const step = (): SchedulerOutput => {
    const out = core.schedule()
    core.update(out, out.sampled.map(() => 7))
    return out
  }
  return { kv, core, step }
}

const ids = (out: SchedulerOutput) => out.plan.seqs.map((s) => s.requestId)
const counts = (out: SchedulerOutput) => out.plan.seqs.map((s) => s.numScheduledTokens)

describe("scheduling policy", () => {
  it("chunks a long prompt under the token budget, decodes first, admits in arrival order", () => {
    const { core, step } = setup({ maxNumBatchedTokens: 8 }, 16)
    core.addRequest("a", range(10))
    core.addRequest("b", range(3))
    let out = step()
    expect(ids(out)).toEqual(["a"])
    expect(counts(out)).toEqual([8])
    expect(out.plan.sampleRows.length).toBe(0)
    out = step()
    // a finishes its prompt (2 tokens) and samples; b fills the remaining budget
    expect(ids(out)).toEqual(["a", "b"])
    expect(counts(out)).toEqual([2, 3])
    expect(out.plan.seqs.map((s) => s.sample)).toEqual([true, true])
    out = step()
    expect(counts(out)).toEqual([1, 1])
  })

  it("respects maxNumSeqs: the third request waits until one finishes", () => {
    const { core, step } = setup({ maxNumSeqs: 2 }, 16)
    for (const id of ["a", "b", "c"]) core.addRequest(id, range(2))
    expect(ids(step())).toEqual(["a", "b"])
    core.finishRequest(RequestId("a"))
    expect(ids(step())).toEqual(["b", "c"])
  })

  it("without chunked prefill a prompt that does not fit the remaining budget waits", () => {
    const { core, step } = setup({ maxNumBatchedTokens: 16, enableChunkedPrefill: false }, 4)
    core.addRequest("a", range(10))
    core.addRequest("b", range(10))
    expect(ids(step())).toEqual(["a"])
  })

  it("preempts the most recently admitted request, requeues it first, and recomputes it later", () => {
    // 4 blocks of 4 tokens: a and b take 2 blocks each, so a's growth must evict b
    const { kv, core, step } = setup({}, 4)
    core.addRequest("a", range(7))
    core.addRequest("b", range(7, 100))
    step() // both prefill; each now has 8 tokens in 2 blocks
    core.addRequest("c", range(2, 200))
    let out = step()
    expect(ids(out)).toEqual(["a", "b"])
    out = step() // both need a third block: b yields
    expect(out.preempted).toEqual(["b"])
    expect(ids(out)).toEqual(["a"])
    expect(core.queues().waiting.map((r) => r.requestId)).toEqual(["b", "c"])
    expect(kv.blockTable(RequestId("b"))).toEqual([])
    expect(core.getRequest(RequestId("b"))!.numTokens).toBe(9)
    core.finishRequest(RequestId("a"))
    out = step()
    // b comes back before c, recomputing prompt and outputs (9 tokens) to sample its 3rd token
    expect(ids(out)[0]).toBe("b")
    expect(out.plan.seqs[0].numScheduledTokens).toBeLessThanOrEqual(9)
    expect(out.plan.seqs[0].numComputedTokens + out.plan.seqs[0].numScheduledTokens).toBe(9)
  })

  it("a prefix-cache hit skips the cached blocks' prefill, and the last token is always computed", () => {
    const { core, step, kv } = setup({}, 16)
    core.addRequest("a", range(12))
    step()
    core.finishRequest(RequestId("a"))
    expect(kv.numFreeBlocks).toBe(16)
    core.addRequest("b", [...range(8), 50, 51])
    let out = step()
    expect(out.plan.seqs[0]).toMatchObject({ numComputedTokens: 8, numScheduledTokens: 2 })
    core.addRequest("c", range(12))
    out = step()
    // c's 12 tokens are all cached, but its last token must run to produce logits
    expect(out.plan.seqs.find((s) => s.requestId === "c")).toMatchObject({ numComputedTokens: 8, numScheduledTokens: 4 })
    expect(core.stats().prefixCacheHitTokens).toBe(16)
  })

  it("abort frees every block at once", () => {
    const { core, step, kv } = setup({}, 16, 4, false)
    core.addRequest("a", range(9))
    step()
    expect(kv.numFreeBlocks).toBe(13)
    core.finishRequest(RequestId("a"))
    expect(kv.numFreeBlocks).toBe(16)
    expect(core.hasUnfinishedRequests).toBe(false)
  })

  it("n > 1: siblings are forked from the first sample's prompt blocks, without prefix caching", () => {
    const { core, step, kv } = setup({}, 16, 4, false)
    const seqIds = core.addRequest("p", range(10), 3)
    expect(seqIds).toEqual(["0_p", "1_p", "2_p"])
    let out = step()
    expect(ids(out)).toEqual(["0_p"])
    const primary = kv.blockTable(seqIds[0])
    for (const id of seqIds.slice(1)) expect(kv.blockTable(id)).toEqual(primary.slice(0, 2))
    expect(kv.pool.refCount[primary[0]]).toBe(3)
    out = step()
    // siblings compute only the partial last block: tokens 8 and 9
    expect(ids(out)).toEqual(["0_p", "1_p", "2_p"])
    expect(counts(out)).toEqual([1, 2, 2])
    for (const id of seqIds) core.finishRequest(id)
    expect(kv.numFreeBlocks).toBe(16)
  })

  it("aborting a request before its fork lets the siblings compute the prompt themselves", () => {
    const { core, step } = setup({ maxNumBatchedTokens: 4 }, 16, 4, false)
    const [primary, sibling] = core.addRequest("p", range(10), 2)
    step()
    core.finishRequest(primary)
    const out = step()
    expect(ids(out)).toEqual([sibling])
    expect(out.plan.seqs[0].numComputedTokens).toBe(0)
  })
})
