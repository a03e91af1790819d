import { Effect } from "effect"
import { contiguousPlan } from "./contiguousPlan.ts"
import type { Executor } from "./executor.ts"

/**
 * Greedy decoding of a fixed batch of prompts, every prompt in every step, with contiguous
 * KV blocks: the model alone, without the scheduler (golden checks against transformers on
 * any provider). `reverseBlocks` lays each sequence's blocks out in reverse to exercise paging.
 */
export const greedyBatch = async (
  executor: Executor,
  prompts: ReadonlyArray<ReadonlyArray<number>>,
  steps: number,
  options: { readonly blockSize?: number; readonly reverseBlocks?: boolean } = {}
): Promise<number[][]> => {
  const blockSize = options.blockSize ?? executor.blockSize
  const blocksPerSeq = Math.ceil((Math.max(...prompts.map((p) => p.length)) + steps) / blockSize)
  const outputs: number[][] = prompts.map(() => [])
  let plan = contiguousPlan(prompts, prompts.map(() => 0), blockSize, blocksPerSeq, options.reverseBlocks)
  for (let step = 0; step < steps; step++) {
    // the executor's own argmax: the logits stay where they are
    const { argmax } = await Effect.runPromise(executor.execute({ ...plan, hostLogits: false }))
    const next = Array.from(argmax)
    next.forEach((token, s) => outputs[s].push(token))
    const computed = prompts.map((p, s) => p.length + outputs[s].length - 1)
    plan = contiguousPlan(next.map((t) => [t]), computed, blockSize, blocksPerSeq, options.reverseBlocks)
  }
  return outputs
}
