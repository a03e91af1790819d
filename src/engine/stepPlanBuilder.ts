import type { ScheduledSeq, StepPlan } from "../stages/stepPlan.ts"
import type { KVCacheManager } from "./kvCacheManager.ts"
import type { Request } from "./request.ts"

/**
 * Lays the scheduler's decision out as a StepPlan: flat token arrays, slots from the block
 * tables, and the rows whose logits are sampled. A step allocates a fixed handful of typed
 * arrays, none per token; they are not reused across steps because a pipeline-parallel
 * executor may still hold the previous plan.
 */
export const buildStepPlan = (
  scheduled: ReadonlyArray<Request>,
  numScheduledTokens: ReadonlyArray<number>,
  kvCache: KVCacheManager,
): { plan: StepPlan; sampled: Request[] } => {
  const bs = kvCache.blockSize
  let numTokens = 0
  let maxBlocksPerSeq = 0
  for (let s = 0; s < scheduled.length; s++) {
    numTokens += numScheduledTokens[s]
    maxBlocksPerSeq = Math.max(maxBlocksPerSeq, kvCache.blockTable(scheduled[s].requestId).length)
  }
  const tokenIds = new Int32Array(numTokens)
  const positions = new Int32Array(numTokens)
  const slotMapping = new Int32Array(numTokens)
  const queryToSeq = new Int32Array(numTokens)
  const blockTables = new Int32Array(scheduled.length * maxBlocksPerSeq)
  const seqs: ScheduledSeq[] = []
  const sampled: Request[] = []
  const sampleRows: number[] = []
  let t = 0
  for (let s = 0; s < scheduled.length; s++) {
    const request = scheduled[s]
    const table = kvCache.blockTable(request.requestId)
    const start = request.numComputedTokens
    const count = numScheduledTokens[s]
    for (let k = 0; k < count; k++, t++) {
      const pos = start + k
      tokenIds[t] = request.tokenIds[pos]
      positions[t] = pos
      slotMapping[t] = table[Math.floor(pos / bs)] * bs + (pos % bs)
      queryToSeq[t] = s
    }
    for (let j = 0; j < table.length; j++) blockTables[s * maxBlocksPerSeq + j] = table[j]
    // a chunk that stops short of the last known token produces no logits
    const sample = start + count === request.numTokens
    if (sample) {
      sampleRows.push(t - 1)
      sampled.push(request)
    }
    seqs.push({ requestId: request.requestId, numComputedTokens: start, numScheduledTokens: count, sample })
  }
  return {
    plan: {
      seqs,
      tokenIds,
      positions,
      slotMapping,
      queryToSeq,
      blockTables,
      maxBlocksPerSeq,
      sampleRows: Int32Array.from(sampleRows),
    },
    sampled,
  }
}
