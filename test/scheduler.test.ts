import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { hashModelLogits, makeHashExecutor } from "../src/engine/hashExecutor.ts"
import { KVCacheManager } from "../src/engine/kvCacheManager.ts"
import type { Request, RequestId } from "../src/engine/request.ts"
import { SchedulerCore, type SchedulerOutput } from "../src/engine/scheduler.ts"

/**
 * The scheduler and block manager driven step by step over random workloads. The "model" is
 * makeHashExecutor: its next token is a hash of the sequence's tokens, read through the
 * plan's slots and block tables like a paged KV cache. This tests the scheduler, not a
 * model: any wrong slot, foreign prefix block or token lost at preemption changes outputs,
 * which are compared with the same hash computed without any cache.
 */

const V = 32
const MAX_MODEL_LEN = 48

interface Arrival {
  readonly step: number
  readonly prompt: number[]
  readonly outputLen: number
  readonly n: number
  /** steps after arrival at which the client cancels */
  readonly cancelAfter: number | undefined
}

interface Workload {
  readonly blockSize: number
  readonly numBlocks: number
  readonly maxNumSeqs: number
  readonly maxNumBatchedTokens: number
  readonly enablePrefixCaching: boolean
  readonly enableChunkedPrefill: boolean
  readonly arrivals: Arrival[]
}

const token = fc.integer({ min: 0, max: V - 1 })

const workloadArb: fc.Arbitrary<Workload> = fc
  .record({
    blockSize: fc.constantFrom(1, 2, 3, 4, 16),
    // half the workloads get the smallest cache that still fits one request, where preemption is common
    cacheFactor: fc.oneof(fc.constant(1), fc.double({ min: 1, max: 4, noNaN: true })),
    maxNumSeqs: fc.integer({ min: 1, max: 6 }),
    enablePrefixCaching: fc.boolean(),
    enableChunkedPrefill: fc.boolean(),
    budget: fc.integer({ min: 1, max: 64 }),
    prefixes: fc.array(fc.array(token, { maxLength: 30 }), { minLength: 1, maxLength: 3 }),
    raw: fc.array(
      fc.record({
        step: fc.integer({ min: 0, max: 20 }),
        prefix: fc.nat(),
        suffix: fc.array(token, { minLength: 1, maxLength: 10 }),
        outputFraction: fc.double({ min: 0, max: 1, noNaN: true }),
        n: fc.constantFrom(1, 1, 2, 3),
        cancelAfter: fc.option(fc.integer({ min: 0, max: 30 }), { freq: 4 }),
        // the same prompt again: its outputs match too, so cached output blocks get hit
        repeats: fc.option(fc.nat(), { freq: 3 }),
      }),
      { minLength: 1, maxLength: 12 },
    ),
  })
  .map(({ blockSize, cacheFactor, budget, prefixes, raw, ...rest }) => ({
    ...rest,
    blockSize,
    numBlocks: Math.floor(Math.ceil(MAX_MODEL_LEN / blockSize) * cacheFactor),
    maxNumBatchedTokens: rest.enableChunkedPrefill ? budget : MAX_MODEL_LEN + budget,
    arrivals: raw.map((a, i) => {
      const source = a.repeats === null || i === 0 ? a : raw[a.repeats % i]
      const prompt = [...prefixes[source.prefix % prefixes.length], ...source.suffix]
      const outputLen = 1 + Math.floor(a.outputFraction * (MAX_MODEL_LEN - prompt.length - 1))
      return { step: a.step, prompt, outputLen, n: a.n, cancelAfter: a.cancelAfter ?? undefined }
    }),
  }))

const argmax = (xs: Float32Array, from: number, length: number): number => {
  let best = 0
  for (let v = 1; v < length; v++) if (xs[from + v] > xs[from + best]) best = v
  return best
}

/** sample i of a request continues with the i-th next token, so forked siblings diverge */
const nextToken = (logits: Float32Array, row: number, sampleIndex: number) => (argmax(logits, row * V, V) + sampleIndex) % V

const referenceOutput = (prompt: number[], length: number, sampleIndex: number): number[] => {
  const tokens = [...prompt]
  for (let k = 0; k < length; k++) tokens.push(nextToken(hashModelLogits(tokens, V), 0, sampleIndex))
  return tokens.slice(prompt.length)
}

interface Seq {
  readonly arrival: Arrival
  readonly sampleIndex: number
  readonly outputs: number[]
  done: boolean
  cancelled: boolean
}

const coverage = { preemptions: 0, prefixHitTokens: 0, sharedBlocks: 0, chunks: 0 }

const checkPlan = (w: Workload, core: SchedulerCore, out: SchedulerOutput) => {
  const { plan } = out
  const bs = w.blockSize
  expect(plan.seqs.length).toBeLessThanOrEqual(w.maxNumSeqs)
  expect(out.numScheduledTokens).toBeLessThanOrEqual(w.maxNumBatchedTokens)
  expect(new Set(plan.seqs.map((s) => s.requestId)).size).toBe(plan.seqs.length)
  expect(new Set(plan.slotMapping).size).toBe(plan.slotMapping.length)
  let t = 0
  plan.seqs.forEach((seq, s) => {
    const request = out.scheduled[s]
    const table = core.kvCache.blockTable(request.requestId)
    expect(seq.numScheduledTokens).toBeGreaterThan(0)
    expect(seq.sample).toBe(seq.numComputedTokens + seq.numScheduledTokens === request.numTokens)
    if (!w.enableChunkedPrefill) expect(seq.sample).toBe(true)
    if (!seq.sample) coverage.chunks++
    for (let k = 0; k < seq.numScheduledTokens; k++, t++) {
      const pos = seq.numComputedTokens + k
      expect(plan.positions[t]).toBe(pos)
      expect(plan.tokenIds[t]).toBe(request.tokenIds[pos])
      const block = table[Math.floor(pos / bs)]
      expect(plan.slotMapping[t]).toBe(block * bs + (pos % bs))
      expect(plan.blockTables[s * plan.maxBlocksPerSeq + Math.floor(pos / bs)]).toBe(block)
      // writing into a block someone else also reads would corrupt their KV
      expect(core.kvCache.pool.refCount[block]).toBe(1)
    }
  })
  expect(t).toBe(plan.tokenIds.length)
}

const checkBlocks = (w: Workload, core: SchedulerCore) => {
  const kv = core.kvCache
  const { running, waiting } = core.queues()
  expect(running.length).toBeLessThanOrEqual(w.maxNumSeqs)
  const owners = new Map<number, Array<{ request: Request; index: number }>>()
  const ownerIds = new Set<RequestId>()
  for (const [id, table] of kv.owners()) {
    ownerIds.add(id)
    const request = core.getRequest(id)!
    expect(table.length).toBeGreaterThanOrEqual(Math.ceil(request.numComputedTokens / w.blockSize))
    expect(new Set(table).size).toBe(table.length)
    table.forEach((b, index) => owners.set(b, [...(owners.get(b) ?? []), { request, index }]))
  }
  // only running requests hold blocks; waiting and preempted ones hold none
  expect([...ownerIds].sort()).toEqual(running.map((r) => r.requestId).sort())
  for (const r of waiting) expect(r.numComputedTokens).toBe(0)
  const free = [...kv.pool.freeQueue()]
  expect(new Set(free).size).toBe(free.length)
  expect(free.length).toBe(kv.numFreeBlocks)
  for (let b = 0; b < w.numBlocks; b++) {
    const held = owners.get(b) ?? []
    expect(kv.pool.refCount[b]).toBe(held.length)
    if (held.length > 1) {
      coverage.sharedBlocks++
      // shared only as a full, computed block behind identical prefixes (prefix cache or fork)
      const [{ request: first, index }] = held
      const end = (index + 1) * w.blockSize
      for (const { request, index: j } of held) {
        expect(j).toBe(index)
        expect(request.numComputedTokens).toBeGreaterThanOrEqual(end)
        expect(request.tokenIds.slice(0, end)).toEqual(first.tokenIds.slice(0, end))
      }
    }
  }
  expect(free.every((b) => kv.pool.refCount[b] === 0)).toBe(true)
  expect(free.length + owners.size).toBe(w.numBlocks)
}

const simulate = (w: Workload) => {
  const kv = new KVCacheManager({ numBlocks: w.numBlocks, blockSize: w.blockSize, enablePrefixCaching: w.enablePrefixCaching })
  const core = new SchedulerCore(
    { maxNumSeqs: w.maxNumSeqs, maxNumBatchedTokens: w.maxNumBatchedTokens, maxModelLen: MAX_MODEL_LEN, enableChunkedPrefill: w.enableChunkedPrefill },
    kv,
  )
  const model = makeHashExecutor({ vocabSize: V, numBlocks: w.numBlocks, blockSize: w.blockSize })
  const seqs = new Map<RequestId, Seq>()
  const byArrival: RequestId[][] = []
  const lastArrival = Math.max(...w.arrivals.map((a) => a.step))
  let step = 0
  for (; step < 5000; step++) {
    w.arrivals.forEach((arrival, i) => {
      if (arrival.step === step) {
        byArrival[i] = core.addRequest(`req${i}`, arrival.prompt, arrival.n)
        byArrival[i].forEach((id, sampleIndex) => seqs.set(id, { arrival, sampleIndex, outputs: [], done: false, cancelled: false }))
      }
      if (arrival.cancelAfter !== undefined && arrival.step + arrival.cancelAfter === step) {
        for (const id of byArrival[i]) {
          const seq = seqs.get(id)!
          if (!seq.done) {
            seq.cancelled = seq.done = true
            core.finishRequest(id)
          }
        }
      }
    })
    if (!core.hasUnfinishedRequests) {
      if (step >= lastArrival) break
      continue
    }
    const out = core.schedule()
    coverage.preemptions += out.preempted.length
    // with work pending, a step that schedules nothing would repeat forever
    expect(out.scheduled.length).toBeGreaterThan(0)
    checkPlan(w, core, out)
    const logits = model.forward(out.plan)
    const sampled = out.sampled.map((r, row) => nextToken(logits, row, seqs.get(r.requestId)!.sampleIndex))
    core.update(out, sampled)
    out.sampled.forEach((r, row) => {
      const seq = seqs.get(r.requestId)!
      seq.outputs.push(sampled[row])
      if (seq.outputs.length === seq.arrival.outputLen) {
        seq.done = true
        core.finishRequest(r.requestId)
      }
    })
    checkBlocks(w, core)
  }
  // liveness: everything admitted finished or was cancelled well within the bound
  expect(step).toBeLessThan(5000)
  expect(core.hasUnfinishedRequests).toBe(false)
  expect(kv.numFreeBlocks).toBe(w.numBlocks)
  expect([...kv.owners()]).toEqual([])
  for (const seq of seqs.values()) {
    expect(seq.done).toBe(true)
    const expected = referenceOutput(seq.arrival.prompt, seq.arrival.outputLen, seq.sampleIndex)
    if (seq.cancelled) expect(expected.slice(0, seq.outputs.length)).toEqual(seq.outputs)
    else expect(seq.outputs).toEqual(expected)
  }
  const stats = core.stats()
  coverage.prefixHitTokens += stats.prefixCacheHitTokens
}

/**
 * Workloads that reach each path under test whatever the random ones do (150 random workloads
 * once went without a preemption): three requests that cannot all fit the cache; a forked
 * request whose prompt comes back later, chunked, with prefix caching.
 */
const coveringWorkloads: Workload[] = [
  {
    blockSize: 4, numBlocks: 12, maxNumSeqs: 4, maxNumBatchedTokens: MAX_MODEL_LEN + 16,
    enablePrefixCaching: false, enableChunkedPrefill: false,
    arrivals: [0, 1, 2].map((i) => ({ step: 0, prompt: Array.from({ length: 10 }, (_, j) => (i * 7 + j) % V), outputLen: 30, n: 1, cancelAfter: undefined }))
  },
  {
    blockSize: 2, numBlocks: 48, maxNumSeqs: 4, maxNumBatchedTokens: 5,
    enablePrefixCaching: true, enableChunkedPrefill: true,
    arrivals: [0, 12].map((step, i) => ({ step, prompt: Array.from({ length: 12 }, (_, j) => (3 * j + 1) % V), outputLen: 6, n: 2 - i, cancelAfter: undefined }))
  }
]

describe("scheduler over random workloads", () => {
  it("plans respect limits and blocks; block accounting is exact; all requests finish with the cache-free outputs", () => {
    fc.assert(fc.property(workloadArb, simulate), { numRuns: 150, examples: coveringWorkloads.map((w) => [w]) })
    // the workloads must reach the paths under test, or the property proves little
    expect(coverage.preemptions).toBeGreaterThan(0)
    expect(coverage.prefixHitTokens).toBeGreaterThan(0)
    expect(coverage.chunks).toBeGreaterThan(0)
    expect(coverage.sharedBlocks).toBeGreaterThan(0)
  })
})
