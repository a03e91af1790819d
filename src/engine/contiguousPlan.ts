import type { StepPlan } from "../stages/stepPlan.ts"

/**
 * A step plan for sequences whose KV blocks are laid out back to back (sequence i owns blocks
 * `[i * blocksPerSeq, (i + 1) * blocksPerSeq)`), computing `tokens[i]` from position
 * `computed[i]` on. It drives the model directly (model tests, benchmarks, offline runs), independent of the
 * scheduler; `reverseBlocks` lays each sequence's blocks out in reverse to exercise paging.
 */
export const contiguousPlan = (
  tokens: ReadonlyArray<ReadonlyArray<number>>,
  computed: ReadonlyArray<number>,
  blockSize: number,
  blocksPerSeq: number,
  reverseBlocks = false
): StepPlan => {
  const T = tokens.reduce((n, t) => n + t.length, 0)
  const tokenIds = new Int32Array(T)
  const positions = new Int32Array(T)
  const slotMapping = new Int32Array(T)
  const queryToSeq = new Int32Array(T)
  const blockTables = new Int32Array(tokens.length * blocksPerSeq)
  const sampleRows = new Int32Array(tokens.length)
  let t = 0
  tokens.forEach((seqTokens, s) => {
    for (let b = 0; b < blocksPerSeq; b++) {
      blockTables[s * blocksPerSeq + b] = s * blocksPerSeq + (reverseBlocks ? blocksPerSeq - 1 - b : b)
    }
    seqTokens.forEach((token, j) => {
      const position = computed[s] + j
      tokenIds[t] = token
      positions[t] = position
      queryToSeq[t] = s
      slotMapping[t] = blockTables[s * blocksPerSeq + Math.floor(position / blockSize)] * blockSize + (position % blockSize)
      t++
    })
    sampleRows[s] = t - 1
  })
  return {
    seqs: tokens.map((seqTokens, s) => ({
      requestId: `seq-${s}`,
      numComputedTokens: computed[s],
      numScheduledTokens: seqTokens.length,
      sample: true
    })),
    tokenIds,
    positions,
    slotMapping,
    queryToSeq,
    blockTables,
    maxBlocksPerSeq: blocksPerSeq,
    sampleRows
  }
}
