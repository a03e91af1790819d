import { Effect } from "effect"
import type { StepPlan } from "../stages/stepPlan.ts"
import { argmax } from "../stages/sampler.ts"
import { ExecutorError, type Executor } from "./executor.ts"

/**
 * A stand-in model for testing and benchmarking everything around the model: the scheduler,
 * the block manager, the engine loop. Its "KV" per token is a hash chained over the
 * sequence's tokens, read back through the plan's block tables and slots exactly as
 * attention reads a paged cache, and its logits are a hash of that state. So the output is
 * a deterministic function of the tokens, and any scheduling mistake (a wrong slot, a
 * stale or foreign prefix-cache block, a lost token at preemption) changes it.
 * It says nothing about a real model's numerics.
 *
 * It is also strict about when KV may be read: only what earlier steps wrote, or what the
 * same sequence wrote earlier in this step. A GPU step writes all KV before attention reads
 * it, so a looser scheduler could pass there by luck; the engine does not rely on that.
 */

const ROOT_STATE = 0x2545f491

const mix = (state: number, token: number, position: number): number => {
  let h = Math.imul(state ^ Math.imul(token + 1, 0x9e3779b1), 0x85ebca6b) ^ Math.imul(position + 1, 0xc2b2ae35)
  h ^= h >>> 15
  h = Math.imul(h, 0x2c1b3c6d)
  return (h ^ (h >>> 12)) >>> 0
}

/** Logit of token `v` given a state: 24 hashed bits scaled to [-4, 4), exact in float32. */
const logitOf = (state: number, v: number): number => ((mix(state, v, 0x5bd1e995) >>> 8) / 16777216) * 8 - 4

/** The state after a whole token sequence, computed directly: the reference for the cache. */
export const hashModelState = (tokens: ArrayLike<number>): number => {
  let state = ROOT_STATE
  for (let p = 0; p < tokens.length; p++) state = mix(state, tokens[p], p)
  return state
}

/** The logits after `tokens`, computed without any cache. */
export const hashModelLogits = (tokens: ArrayLike<number>, vocabSize: number): Float32Array => {
  const state = hashModelState(tokens)
  return Float32Array.from({ length: vocabSize }, (_, v) => logitOf(state, v))
}

export interface HashExecutor extends Executor {
  /** runs a plan synchronously: logits [R, vocabSize], valid until the next call */
  forward(plan: StepPlan): Float32Array
}

export const makeHashExecutor = (options: { vocabSize: number; numBlocks: number; blockSize: number }): HashExecutor => {
  const { vocabSize, numBlocks, blockSize } = options
  const kv = new Uint32Array(numBlocks * blockSize)
  /** step that wrote each slot (0: never) and the plan index of the sequence that did */
  const writtenAt = new Int32Array(numBlocks * blockSize)
  const writtenBy = new Int32Array(numBlocks * blockSize)
  let step = 0
  let logits = new Float32Array(0)

  const forward = (plan: StepPlan): Float32Array => {
    step++
    const states = new Uint32Array(plan.tokenIds.length)
    for (let t = 0; t < plan.tokenIds.length; t++) {
      const s = plan.queryToSeq[t]
      const pos = plan.positions[t]
      let prev = ROOT_STATE
      if (pos > 0) {
        const block = plan.blockTables[s * plan.maxBlocksPerSeq + Math.floor((pos - 1) / blockSize)]
        const slot = block * blockSize + ((pos - 1) % blockSize)
        if (writtenAt[slot] === 0 || (writtenAt[slot] === step && writtenBy[slot] !== s))
          throw new Error(`position ${pos - 1} of ${plan.seqs[s].requestId} was not computed before this step`)
        prev = kv[slot]
      }
      states[t] = mix(prev, plan.tokenIds[t], pos)
      kv[plan.slotMapping[t]] = states[t]
      writtenAt[plan.slotMapping[t]] = step
      writtenBy[plan.slotMapping[t]] = s
    }
    const R = plan.sampleRows.length
    if (logits.length < R * vocabSize) logits = new Float32Array(R * vocabSize)
    for (let r = 0; r < R; r++) {
      const state = states[plan.sampleRows[r]]
      for (let v = 0; v < vocabSize; v++) logits[r * vocabSize + v] = logitOf(state, v)
    }
    return logits.subarray(0, R * vocabSize)
  }

  return {
    vocabSize,
    numBlocks,
    blockSize,
    forward,
    execute: (plan) =>
      Effect.try({
        try: () => {
          const logits = forward(plan)
          const R = plan.sampleRows.length
          const ids = Int32Array.from({ length: R }, (_, r) => argmax(logits.subarray(r * vocabSize, (r + 1) * vocabSize)))
          return { argmax: ids, logits: plan.hostLogits === false ? undefined : logits }
        },
        catch: (cause) => new ExecutorError({ message: cause instanceof Error ? cause.message : String(cause), cause }),
      }),
    close: () => Effect.void,
  }
}
