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
 * step's tokens) run while the GPU computes: `launchesAsync`. `launch` hands the wait back, so
 * the engine can launch the next step before this one is done (asynchronous scheduling: its ids
 * taken on the device from this step's tokens, StepPlan.previousTokens). Two steps may be in
 * flight: each has its own pinned plan arrays, pinned argmax and events (a slot), so staging the
 * next step never touches what the one before still has queued. The argmax copy is enqueued after
 * the replay, into the step's slot, rather than captured.
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
  /** as Executor's: the step enqueued, its wait handed back (at most two launched and not awaited) */
  readonly launch: (plan: StepPlan) => Effect.Effect<Effect.Effect<StepOutput, ExecutorError>, ExecutorError>
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

    /** what one step in flight holds until it is read */
    const makeSlot = () => {
      // pinned plan arrays: tokenIds, positions, slots, queryToSeq, sampleRows, previousTokens [S each], blockTables [S * M]
      const planBuffer: PinnedBuffer = memory.allocPinned((6 * S + S * M) * 4)
      const view = (i: number, n: number) => new Int32Array(planBuffer.buffer, i * S * 4, n)
      const argmaxBuffer: PinnedBuffer = memory.allocPinned(S * 4)
      return {
        planBuffer,
        pinned: {
          tokenIds: view(0, S), positions: view(1, S), slots: view(2, S), queryToSeq: view(3, S), sampleRows: view(4, S),
          previousTokens: view(5, S), blockTables: view(6, S * M)
        },
        argmaxBuffer,
        argmax: new Int32Array(argmaxBuffer.buffer),
        start: provider.events.create(),
        end: provider.events.create(),
        done: provider.events.create(),
        /** the plan every step of bucket B runs in this slot: views of its pinned arrays, fixed shapes */
        paddedPlans: new Map<number, StepPlan>()
      }
    }
    type Slot = ReturnType<typeof makeSlot>
    const slots: Slot[] = [makeSlot(), makeSlot()]
    let launched = 0
    let inFlight = 0
    // one pinned logits buffer: only one step in flight may want its logits on the host
    const logitsBuffer: PinnedBuffer = memory.allocPinned(S * V * 4)
    const logits = new Float32Array(logitsBuffer.buffer)
    let logitsInFlight = false
    const graphs = new Map<number, number>()
    const stats = { steps: 0, deviceMs: 0 }

    const paddedPlan = (slot: Slot, B: number): StepPlan => {
      let plan = slot.paddedPlans.get(B)
      if (!plan) {
        const { pinned } = slot
        plan = {
          seqs: Array.from({ length: B }, (_, s) => ({ requestId: `bucket-${B}-${s}`, numComputedTokens: 0, numScheduledTokens: 1, sample: true })),
          tokenIds: pinned.tokenIds.subarray(0, B),
          positions: pinned.positions.subarray(0, B),
          slotMapping: pinned.slots.subarray(0, B),
          queryToSeq: pinned.queryToSeq.subarray(0, B),
          blockTables: pinned.blockTables.subarray(0, B * M),
          maxBlocksPerSeq: M,
          sampleRows: pinned.sampleRows.subarray(0, B),
          // always there, so that every capture takes the ids it is given from the step before
          previousTokens: pinned.previousTokens.subarray(0, B),
          hostLogits: false
        }
        slot.paddedPlans.set(B, plan)
      }
      return plan
    }

    /** writes `plan` padded to B into the slot's pinned arrays and enqueues their copies to the workspace */
    const stage = (slot: Slot, plan: StepPlan, B: number) => {
      const { pinned, planBuffer } = slot
      const T = plan.tokenIds.length
      const m = plan.maxBlocksPerSeq
      pinned.tokenIds.set(plan.tokenIds)
      pinned.positions.set(plan.positions)
      pinned.slots.set(plan.slotMapping)
      if (plan.previousTokens) pinned.previousTokens.set(plan.previousTokens)
      else pinned.previousTokens.fill(-1, 0, T)
      for (let s = 0; s < B; s++) {
        pinned.queryToSeq[s] = s
        pinned.sampleRows[s] = s
      }
      for (let s = T; s < B; s++) {
        pinned.tokenIds[s] = 0
        pinned.positions[s] = 0
        pinned.slots[s] = -1
        pinned.previousTokens[s] = -1
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
      memory.writeAsync(ws.tokenSources, at(5), B * 4)
      memory.writeAsync(ws.blockTables, at(6), B * M * 4)
    }

    /** the forward pass without its argmax read (the step's slot copies ws.argmax after it) */
    const forwardWithoutRead = (plan: StepPlan) => {
      memory.readInterceptor = (ptr) => {
        if (ptr !== ws.argmax) throw new Error("a decode step read the device back inside its forward pass")
        return true
      }
      try {
        Effect.runSync(parts.forward(plan))
      } finally {
        memory.readInterceptor = undefined
      }
    }

    /** enqueues the step into the next slot and returns the read of its outputs, valid once the slot's `done` is reached */
    const launchOnDevice = (plan: StepPlan): { slot: Slot; read: () => StepOutput } => {
      if (inFlight >= 2) throw new Error("two decode steps are in flight already: wait for the older one first")
      const T = plan.tokenIds.length
      const wantLogits = plan.hostLogits !== false
      if (wantLogits && logitsInFlight) throw new Error("the step in flight copies its logits back already: wait for it first")
      const B = buckets.find((b) => b >= T) ?? S
      const slot = slots[launched % 2]
      const timing = runner.timing
      if (timing) provider.events.record(slot.start)
      stage(slot, plan, B)
      const padded = paddedPlan(slot, B)
      if (runner.mode === "graphs") {
        let graph = graphs.get(B)
        if (graph === undefined) {
          provider.graphs.begin()
          try {
            forwardWithoutRead(padded)
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
        forwardWithoutRead(padded)
      }
      memory.readBytesAsync(slot.argmaxBuffer.ptr, ws.argmax, T * 4)
      if (wantLogits) memory.readAsync(logitsBuffer.ptr, ws.logits, T * V)
      const readSampled = plan.sampling && provider.sampler.enqueue(ws.logits, T, V, plan.sampling, ws.drawn)
      // logprobs of each row's token: the draw where there is one, else the argmax
      const readLogprobs = plan.logprobs !== undefined && provider.sampler.enqueueLogprobs(ws.logits, T, V, readSampled ? ws.drawn : ws.argmax, plan.logprobs)
      if (timing) provider.events.record(slot.end)
      provider.events.record(slot.done)
      launched++
      inFlight++
      logitsInFlight ||= wantLogits
      return {
        slot,
        read: () => {
          inFlight--
          if (wantLogits) logitsInFlight = false
          if (timing) {
            stats.deviceMs += provider.events.elapsed(slot.start, slot.end)
            stats.steps++
          }
          const sampled = readSampled && readSampled()
          const logprobs = readLogprobs && readLogprobs()
          return {
            argmax: slot.argmax.subarray(0, T),
            logits: wantLogits ? logits.subarray(0, T * V) : undefined,
            ...(sampled && { sampled }),
            ...(logprobs && { logprobs })
          }
        }
      }
    }

    const failed = (cause: unknown) => new ExecutorError({ message: `decode step: ${cause instanceof Error ? cause.message : String(cause)}`, cause })

    const launch = (plan: StepPlan): Effect.Effect<Effect.Effect<StepOutput, ExecutorError>, ExecutorError> => {
      if (runner.mode === "eager" || !isPlainDecode(plan, S) || plan.maxBlocksPerSeq > M) {
        // the executor's own path computes now: its reads wait for the stream, the steps in flight included
        return parts.launch(plan)
      }
      return Effect.try({ try: () => launchOnDevice(plan), catch: failed }).pipe(
        Effect.map(({ slot, read }) =>
          awaitDevice(() => provider.events.query(slot.done)).pipe(
            Effect.catchAllDefect((cause) => Effect.fail(failed(cause))),
            Effect.zipRight(Effect.try({ try: read, catch: failed }))
          )
        )
      )
    }

    const runner: DecodeRunner = {
      mode,
      launchesAsync: true,
      buckets,
      captured: graphs,
      timing: false,
      stats,
      launch,
      execute: (plan, onLaunched) =>
        Effect.gen(function* () {
          const wait = yield* launch(plan)
          onLaunched?.()
          return yield* wait
        }),
      release: () => {
        // steps still in flight read their slots' buffers
        if (inFlight > 0) provider.synchronize()
        for (const graph of graphs.values()) provider.graphs.destroy(graph)
        graphs.clear()
        for (const slot of slots) {
          for (const event of [slot.start, slot.end, slot.done]) provider.events.destroy(event)
          memory.freePinned(slot.planBuffer)
          memory.freePinned(slot.argmaxBuffer)
        }
        memory.freePinned(logitsBuffer)
      }
    }
    return runner
  }
