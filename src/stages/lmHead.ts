import { Effect } from "effect"
import { Communicator } from "../effects/Communicator.ts"
import { Device } from "../effects/Device.ts"
import type { VocabShard } from "../layers/vocabParallel.ts"
import type { Logits, SampleRows } from "./activations.ts"
import { stage } from "./stage.ts"

/**
 * Vocab-parallel lm_head: each rank computes the logits of its slice of the vocabulary, a
 * gather over TP concatenates them, and the argmax of each row comes back to the host, with
 * the logits themselves when the plan asks (sampling on the host, logits processors), and the
 * device's draws and logprobs where it makes them.
 */
export const lmHead = (head: VocabShard, hidden: number, fullVocab: number) =>
  stage("lm_head", ({ plan, workspace: ws, rows }: SampleRows) =>
    Effect.gen(function* () {
      const device = yield* Device
      const { kernels, memory } = device
      const communicator = yield* Communicator
      const shardVocab = head.vocabEnd - head.vocabStart
      // one rank's shard is the whole vocabulary: its logits are the logits, with nothing to gather
      const shardLogits = communicator.tpSize === 1 ? ws.logits : ws.logitsShard
      kernels.matmul(shardLogits, ws.rowsNormed, head.weight, rows, shardVocab, hidden)
      yield* communicator.allGatherColumns(ws.logits, shardLogits, rows, shardVocab)
      kernels.argmax(ws.argmax, ws.logits, rows, fullVocab)
      const argmax = ws.hostArgmax.subarray(0, rows)
      memory.read(ws.argmax, argmax)
      const values = plan.hostLogits === false ? undefined : ws.hostLogits.subarray(0, rows * fullVocab)
      if (values) memory.read(ws.logits, values)
      const sampled = plan.sampling && device.sampler?.sample(ws.logits, rows, fullVocab, plan.sampling, ws.drawn)
      const logprobs = plan.logprobs !== undefined ? device.sampler?.logprobs(ws.logits, rows, fullVocab, sampled || argmax, plan.logprobs) : undefined
      return { plan, argmax, values, vocabSize: fullVocab, ...(sampled && { sampled }), ...(logprobs && { logprobs }) } satisfies Logits
    })
  )
