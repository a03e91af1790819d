/**
 * Decode steps on the CUDA provider: plan arrays staged in pinned memory, the argmax (and,
 * when the plan asks, the logits) copied back into pinned memory, and (mode "graphs") the whole forward pass captured once per batch-size
 * bucket as a CUDA graph and replayed, so a step of a few hundred kernels costs one launch.
 * Prefill and mixed steps go to the executor's own path, eagerly.
 *
 * A bucket's graph is captured from a plan padded to the bucket: `B` tokens, the block-table
 * stride of the workspace's limit (so every scalar argument of every kernel is fixed), one
 * logits row per token. Each padding token is its own sequence at position 0 with KV slot -1
 * (kv_write skips it) and a zero block-table row: its attention reads one valid cache entry and
 * its logits are never returned. The captured step ends with the argmax copy; the logits copy is
 * enqueued after the replay, only for the steps that want it. Every pointer is fixed too: the workspace, the weights and
 * the KV cache are allocated once, and each step only rewrites the workspace's plan arrays
 * (from pinned memory, enqueued before the replay).
 *
 * A step is launched, then waited for without blocking the thread (`awaitDevice` on an event
 * after its last copy), so the engine's other fibers (the requests' streams taking the previous
 * step's tokens) run while the GPU computes: `launchesAsync`.
 */
import { Effect } from "effect"
import { awaitDevice } from "../../effects/awaitDevice.ts"
import { ExecutorError, type StepOutput } from "../../engine/executor.ts"
import type { StepRunner, StepRunnerParts } from "../../engine/modelExecutor.ts"
import type { StepPlan } from "../../stages/stepPlan.ts"
import type { PinnedBuffer } from "./memory.ts"
import type { CudaKernelProvider } from "./provider.ts"

/** "eager": the executor's own path; "pinned": pinned staging, kernels launched one by one; "graphs": pinned and replayed */
export type DecodeMode = "eager" | "pinned" | "graphs"

export interface DecodeRunner extends StepRunner {
  mode: DecodeMode
  /** batch-size buckets a decode is padded to */
  readonly buckets: ReadonlyArray<number>
  /** graphs captured so far, by bucket */
  readonly captured: ReadonlyMap<number, number>
  /** when on, each decode step records events around its device work and adds it to `stats` */
  timing: boolean
  readonly stats: { steps: number; deviceMs: number }
}

/** nano-vllm's buckets: 1, 2, 4, 8, then every 16, up to the largest batch */
export const decodeBuckets = (maxSeqs: number): number[] => {
  const buckets = [1, 2, 4, 8]
  for (let b = 16; b < maxSeqs; b += 16) buckets.push(b)
  return [...new Set([...buckets.filter((b) => b < maxSeqs), maxSeqs])]
}

const isPlainDecode = (plan: StepPlan, maxSeqs: number): boolean => {
  const T = plan.tokenIds.length
  if (T === 0 || T > maxSeqs || plan.seqs.length !== T || plan.sampleRows.length !== T) return false
  for (let i = 0; i < T; i++) if (plan.queryToSeq[i] !== i || plan.sampleRows[i] !== i) return false
  return true
}

export const cudaDecodeRunner =
  (provider: CudaKernelProvider, mode: DecodeMode = "graphs") =>
  (parts: StepRunnerParts): DecodeRunner => {
    const { workspace: ws } = parts
    const { memory } = provider
    const { maxSeqs: S, maxBlocksPerSeq: M } = ws.limits
    const V = ws.dims.fullVocab
    const buckets = decodeBuckets(S)

    // pinned plan arrays: tokenIds, positions, slots, queryToSeq, sampleRows [S each], blockTables [S * M]
    const planBuffer: PinnedBuffer = memory.allocPinned((5 * S + S * M) * 4)
    const view = (i: number, n: number) => new Int32Array(planBuffer.buffer, i * S * 4, n)
    const pinned = { tokenIds: view(0, S), positions: view(1, S), slots: view(2, S), queryToSeq: view(3, S), sampleRows: view(4, S), blockTables: view(5, S * M) }
    const logitsBuffer: PinnedBuffer = memory.allocPinned(S * V * 4)
    const logits = new Float32Array(logitsBuffer.buffer)
    const argmaxBuffer: PinnedBuffer = memory.allocPinned(S * 4)
    const argmax = new Int32Array(argmaxBuffer.buffer)
    const graphs = new Map<number, number>()
    const [start, end, done] = [provider.events.create(), provider.events.create(), provider.events.create()]
    const stats = { steps: 0, deviceMs: 0 }

    /** the plan every step of bucket B runs: views of the pinned arrays, fixed shapes */
    const paddedPlans = new Map<number, StepPlan>()
    const paddedPlan = (B: number): StepPlan => {
      let plan = paddedPlans.get(B)
      if (!plan) {
        plan = {
          seqs: Array.from({ length: B }, (_, s) => ({ requestId: `bucket-${B}-${s}`, numComputedTokens: 0, numScheduledTokens: 1, sample: true })),
          tokenIds: pinned.tokenIds.subarray(0, B),
          positions: pinned.positions.subarray(0, B),
          slotMapping: pinned.slots.subarray(0, B),
          queryToSeq: pinned.queryToSeq.subarray(0, B),
          blockTables: pinned.blockTables.subarray(0, B * M),
          maxBlocksPerSeq: M,
          sampleRows: pinned.sampleRows.subarray(0, B),
          hostLogits: false
        }
        paddedPlans.set(B, plan)
      }
      return plan
    }

    /** writes `plan` padded to B into the pinned arrays and enqueues their copies to the workspace */
    const stage = (plan: StepPlan, B: number) => {
      const T = plan.tokenIds.length
      const m = plan.maxBlocksPerSeq
      pinned.tokenIds.set(plan.tokenIds)
      pinned.positions.set(plan.positions)
      pinned.slots.set(plan.slotMapping)
      for (let s = 0; s < B; s++) {
        pinned.queryToSeq[s] = s
        pinned.sampleRows[s] = s
      }
      for (let s = T; s < B; s++) {
        pinned.tokenIds[s] = 0
        pinned.positions[s] = 0
        pinned.slots[s] = -1
      }
      const bt = pinned.blockTables
      for (let s = 0; s < T; s++) {
        bt.set(plan.blockTables.subarray(s * m, (s + 1) * m), s * M)
        bt.fill(0, s * M + m, (s + 1) * M)
      }
      bt.fill(0, T * M, B * M)
      const at = (i: number) => planBuffer.ptr + i * S * 4
      memory.writeAsync(ws.tokenIds, at(0), B * 4)
      memory.writeAsync(ws.positions, at(1), B * 4)
      memory.writeAsync(ws.slots, at(2), B * 4)
      memory.writeAsync(ws.queryToSeq, at(3), B * 4)
      memory.writeAsync(ws.sampleRows, at(4), B * 4)
      memory.writeAsync(ws.blockTables, at(5), B * M * 4)
    }

    /** the forward pass, its argmax read enqueued into pinned memory instead of waited for */
    const forwardInto = (plan: StepPlan) => {
      memory.readInterceptor = (ptr, dst) => {
        if (!(dst instanceof Int32Array)) return false
        memory.readBytesAsync(argmaxBuffer.ptr, ptr, dst.byteLength)
        return true
      }
      try {
        Effect.runSync(parts.forward(plan))
      } finally {
        memory.readInterceptor = undefined
      }
    }

    /** enqueues the step and returns the read of its outputs, valid once `done` is reached */
    const launch = (plan: StepPlan): (() => StepOutput) => {
      const T = plan.tokenIds.length
      const B = buckets.find((b) => b >= T) ?? S
      if (runner.timing) provider.events.record(start)
      stage(plan, B)
      const padded = paddedPlan(B)
      if (runner.mode === "graphs") {
        let graph = graphs.get(B)
        if (graph === undefined) {
          provider.graphs.begin()
          try {
            forwardInto(padded)
          } catch (error) {
            try {
              provider.graphs.destroy(provider.graphs.end())
            } catch {
              // the capture is already broken: the first error is the one to report
            }
            throw error
          }
          graph = provider.graphs.end()
          graphs.set(B, graph)
        }
        provider.graphs.launch(graph)
      } else {
        forwardInto(padded)
      }
      const wantLogits = plan.hostLogits !== false
      if (wantLogits) memory.readAsync(logitsBuffer.ptr, ws.logits, T * V)
      const readSampled = plan.sampling && provider.sampler.enqueue(ws.logits, T, V, plan.sampling)
      // logprobs of each row's token: the draw where there is one, else the argmax
      const readLogprobs =
        plan.logprobs !== undefined &&
        provider.sampler.enqueueLogprobs(ws.logits, T, V, readSampled ? provider.sampler.drawnTokens(T) : ws.argmax, plan.logprobs)
      if (runner.timing) provider.events.record(end)
      provider.events.record(done)
      return () => {
        if (runner.timing) {
          stats.deviceMs += provider.events.elapsed(start, end)
          stats.steps++
        }
        const sampled = readSampled && readSampled()
        const logprobs = readLogprobs && readLogprobs()
        return {
          argmax: argmax.subarray(0, T),
          logits: wantLogits ? logits.subarray(0, T * V) : undefined,
          ...(sampled && { sampled }),
          ...(logprobs && { logprobs })
        }
      }
    }

    const failed = (cause: unknown) => new ExecutorError({ message: `decode step: ${cause instanceof Error ? cause.message : String(cause)}`, cause })

    const runner: DecodeRunner = {
      mode,
      launchesAsync: true,
      buckets,
      captured: graphs,
      timing: false,
      stats,
      execute: (plan, onLaunched) => {
        if (runner.mode === "eager" || !isPlainDecode(plan, S) || plan.maxBlocksPerSeq > M) {
          onLaunched?.()  // the executor's own path computes on this thread
          return parts.execute(plan)
        }
        return Effect.gen(function* () {
          const read = yield* Effect.try({ try: () => launch(plan), catch: failed })
          onLaunched?.()
          yield* awaitDevice(() => provider.events.query(done)).pipe(Effect.catchAllDefect((cause) => Effect.fail(failed(cause))))
          return yield* Effect.try({ try: read, catch: failed })
        })
      },
      release: () => {
        for (const graph of graphs.values()) provider.graphs.destroy(graph)
        graphs.clear()
        provider.events.destroy(start)
        provider.events.destroy(end)
        provider.events.destroy(done)
        memory.freePinned(planBuffer)
        memory.freePinned(logitsBuffer)
        memory.freePinned(argmaxBuffer)
      }
    }
    return runner
  }
