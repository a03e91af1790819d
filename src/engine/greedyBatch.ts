import { Effect } from "effect"
import { contiguousPlan } from "./contiguousPlan.ts"
import { logitsOf, type Executor } from "./executor.ts"

export interface GreedyBatchOptions {
  readonly blockSize?: number
  /** lays each sequence's blocks out in reverse to exercise paging */
  readonly reverseBlocks?: boolean
}

export interface GreedyBatchOutput {
  /** [sequence][step] the greedy ids */
  readonly ids: number[][]
  /** [sequence][step] top-1 minus top-2 logit of the step: how far the step was from a tie */
  readonly margins: number[][]
}

/**
 * Greedy decoding of a fixed batch of prompts, every prompt in every step, with contiguous
 * KV blocks: the model alone, without the scheduler (golden checks against transformers on
 * any provider).
 */
export const greedyBatch = async (
  executor: Executor,
  prompts: ReadonlyArray<ReadonlyArray<number>>,
  steps: number,
  options: GreedyBatchOptions = {}
): Promise<number[][]> => (await decode(executor, prompts, steps, options, false)).ids

/**
 * greedyBatch with each step's top-1/top-2 margin, read from the logits: every step brings its
 * logits to the host, where greedyBatch leaves them on the device.
 */
export const greedyBatchWithMargins = (
  executor: Executor,
  prompts: ReadonlyArray<ReadonlyArray<number>>,
  steps: number,
  options: GreedyBatchOptions = {}
): Promise<GreedyBatchOutput> => decode(executor, prompts, steps, options, true)

const decode = async (
  executor: Executor,
  prompts: ReadonlyArray<ReadonlyArray<number>>,
  steps: number,
  options: GreedyBatchOptions,
  withMargins: boolean
): Promise<GreedyBatchOutput> => {
  const blockSize = options.blockSize ?? executor.blockSize
  const V = executor.vocabSize
  const blocksPerSeq = Math.ceil((Math.max(...prompts.map((p) => p.length)) + steps) / blockSize)
  const ids: number[][] = prompts.map(() => [])
  const margins: number[][] = prompts.map(() => [])
  let plan = contiguousPlan(prompts, prompts.map(() => 0), blockSize, blocksPerSeq, options.reverseBlocks)
  for (let step = 0; step < steps; step++) {
    // the executor's own argmax; without margins the logits stay where they are
    const output = await Effect.runPromise(executor.execute({ ...plan, hostLogits: withMargins }))
    const next = Array.from(output.argmax)
    next.forEach((token, s) => ids[s].push(token))
    if (withMargins) {
      const logits = logitsOf(output)
      next.forEach((token, s) => margins[s].push(marginOf(logits.subarray(s * V, (s + 1) * V), token)))
    }
    const computed = prompts.map((p, s) => p.length + ids[s].length - 1)
    plan = contiguousPlan(next.map((t) => [t]), computed, blockSize, blocksPerSeq, options.reverseBlocks)
  }
  return { ids, margins }
}

/** the chosen token's logit minus the best other one */
const marginOf = (row: Float32Array, top: number): number => {
  let second = Number.NEGATIVE_INFINITY
  for (let v = 0; v < row.length; v++) if (v !== top && row[v] > second) second = row[v]
  return row[top] - second
}
