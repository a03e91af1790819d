import { Chunk, Deferred, Effect, Either, Layer, type Scope, Stream } from "effect"
import { describe, expect, it } from "vitest"
import { BlockManager } from "../src/effects/BlockManager.ts"
import { ExecutorService } from "../src/effects/ExecutorService.ts"
import { Scheduler } from "../src/effects/Scheduler.ts"
import { Engine, type CompletionDelta, type EngineConfig } from "../src/engine/Engine.ts"
import { ExecutorError, type Executor, type StepOutput } from "../src/engine/executor.ts"
import { hashModelLogits, makeHashExecutor } from "../src/engine/hashExecutor.ts"
import { computeLogprobs, type RowLogprobs } from "../src/sampling/logprobs.ts"
import { Sampler } from "../src/sampling/sampler.ts"
import { makeSamplingState } from "../src/sampling/samplingState.ts"
import { argmax } from "../src/stages/sampler.ts"
import type { StepPlan } from "../src/stages/stepPlan.ts"
import { ByteLevelDetokenizer } from "../src/sampling/detokenizer.ts"
import { decodeSamplingParamsSync, type SamplingParamsEncoded } from "../src/sampling/SamplingParams.ts"

/**
 * The engine loop around makeHashExecutor, a stand-in model whose logits are a hash of the
 * tokens read through the paged cache (see hashExecutor.ts). This tests the engine's
 * plumbing, not a model; test/engine-batch-invariance.test.ts runs the real one.
 */

const V = 32
const EOS = 31
const letters = "abcdefghijklmnopqrstuvwxyz€é😀 ."
const detokenizer = new ByteLevelDetokenizer((id) => new TextEncoder().encode(id === EOS ? "" : Array.from(letters)[id]))

const baseConfig: EngineConfig = {
  maxNumSeqs: 4,
  maxNumBatchedTokens: 32,
  maxModelLen: 64,
  enableChunkedPrefill: true,
  enablePrefixCaching: true,
  maxQueuedRequests: 16,
  eosTokenIds: [EOS],
  detokenizer,
}

const layerFor = (executor: Executor, config: Partial<EngineConfig> = {}) => {
  const cfg = { ...baseConfig, ...config }
  return Engine.live(cfg).pipe(Layer.provideMerge(ExecutorService.layer(executor)))
}

const run = <A, E>(
  program: Effect.Effect<A, E, Engine | Scheduler | BlockManager | ExecutorService | Scope.Scope>,
  executor: Executor = makeHashExecutor({ vocabSize: V, numBlocks: 64, blockSize: 4 }),
  config: Partial<EngineConfig> = {},
) => Effect.runPromise(Effect.scoped(program.pipe(Effect.provide(layerFor(executor, config)))))

const params = (raw: SamplingParamsEncoded) => decodeSamplingParamsSync(raw)

const collect = (prompt: number[], raw: SamplingParamsEncoded) =>
  Effect.gen(function* () {
    const engine = yield* Engine
    const { stream } = yield* engine.generate({ promptTokenIds: prompt, params: params(raw) })
    return Chunk.toArray(yield* Stream.runCollect(stream))
  })

const tokensOf = (deltas: CompletionDelta[], index = 0) => deltas.filter((d) => d.index === index).flatMap((d) => d.tokenIds)
const textOf = (deltas: CompletionDelta[], index = 0) =>
  deltas
    .filter((d) => d.index === index)
    .map((d) => d.text)
    .join("")

const greedyReference = (prompt: number[], n: number) => {
  const tokens = [...prompt]
  for (let k = 0; k < n; k++) {
    const logits = hashModelLogits(tokens, V)
    tokens.push(logits.indexOf(Math.max(...logits)))
  }
  return tokens.slice(prompt.length)
}

/** polls until the scheduler holds nothing (aborts take effect at the next step boundary) */
const drained = Effect.gen(function* () {
  const { core } = yield* Scheduler
  while (core.hasUnfinishedRequests) yield* Effect.sleep("1 millis")
  return core.kvCache.numFreeBlocks
})

/**
 * A stand-in for a GPU executor around `inner`: it draws each row of plan.sampling from what the
 * plan carries alone (the parameters, the logits edits of penalties and bias), with the host's
 * sampler, makes every row's logprobs of its token where the plan asks (as tsr_logprobs_rows_bf16
 * does: gpu-sampler-check holds it to computeLogprobs), and hands back no logits unless asked.
 * Every plan it runs goes to `plans`.
 */
const samplingOnDevice = (inner: ReturnType<typeof makeHashExecutor>, plans: StepPlan[] = []): Executor => {
  const sampler = new Sampler(V)
  return {
    ...inner,
    samplesOnDevice: true,
    execute: (plan) => {
      plans.push(plan)
      const logits = inner.forward(plan)
      const R = plan.sampleRows.length
      const ids = Int32Array.from({ length: R }, (_, r) => argmax(logits.subarray(r * V, (r + 1) * V)))
      const rows = plan.sampling
      const sampled = rows && Int32Array.from({ length: R }, (_, r) => {
        const params = { ...decodeSamplingParamsSync({}), temperature: rows.temperature[r], topP: rows.topP[r], topK: rows.topK[r], minP: rows.minP[r] }
        const state = { ...makeSamplingState(params, { promptTokenIds: [], eosTokenIds: [], seed: 0, sampleIndex: rows.sampleIndex[r] }), seedLo: rows.seedLo[r], seedHi: rows.seedHi[r] }
        return sampler.sampleEdited(logits, r, state, rows.position[r], rows.edits)
      })
      const N = plan.logprobs
      let logprobs: RowLogprobs | undefined
      if (N !== undefined) {
        const made = { numTop: N, logprob: new Float64Array(R), rank: new Int32Array(R), topIds: new Int32Array(R * N).fill(-1), topLogprobs: new Float64Array(R * N) }
        for (let r = 0; r < R; r++) {
          const row = computeLogprobs(logits, r, V, (sampled || ids)[r], N, new Int32Array(N))
          made.logprob[r] = row.logprob
          made.rank[r] = row.rank
          row.top.forEach((t, j) => ((made.topIds[r * N + j] = t.tokenId), (made.topLogprobs[r * N + j] = t.logprob)))
        }
        logprobs = made
      }
      return Effect.succeed({ argmax: ids, logits: plan.hostLogits === false ? undefined : logits.slice(), ...(sampled && { sampled }), ...(logprobs && { logprobs }) })
    },
  }
}

/**
 * A stand-in for a device that runs steps in the order they are launched, after the host has
 * moved on: `launch` queues the plan, and a wait runs the queued steps up to its own, each first
 * taking the ids it was launched without from the step before's argmax or draw (as take_tokens
 * does). `stats` counts launches made while an earlier step was still queued.
 */
const launchedOnQueue = (inner: Executor) => {
  const stats = { launches: 0, launchedAhead: 0, stepsWithPreviousTokens: 0 }
  const queue: Array<{ readonly plan: StepPlan; result?: Either.Either<StepOutput, ExecutorError> }> = []
  let previous: StepOutput | undefined
  const runThrough = (entry: (typeof queue)[number]) => {
    while (entry.result === undefined) {
      const next = queue.shift()!
      let plan = next.plan
      if (plan.previousTokens) {
        stats.stepsWithPreviousTokens++
        const from = plan.previousTokens
        const tokenIds = Int32Array.from(plan.tokenIds, (id, t) => {
          if (from[t] === -1) return id
          if (previous === undefined) throw new Error("previousTokens on the first step")
          return from[t] >= 0 ? previous.argmax[from[t]] : previous.sampled![-2 - from[t]]
        })
        plan = { ...plan, tokenIds }
      }
      next.result = Effect.runSync(Effect.either(inner.execute(plan)))
      previous = Either.isRight(next.result) ? next.result.right : undefined
    }
    return entry.result
  }
  const executor: Executor = {
    ...inner,
    launchesAsync: true,
    launch: (plan) =>
      Effect.sync(() => {
        stats.launches++
        if (queue.length > 0) stats.launchedAhead++
        if (queue.length >= 2) throw new Error("a third step launched before the first was waited for")
        const entry = { plan }
        queue.push(entry)
        // the "device" computes while the host does other work
        return Effect.sleep("1 millis").pipe(Effect.zipRight(Effect.suspend(() => runThrough(entry))))
      }),
  }
  return { executor, stats }
}

describe("Engine", () => {
  it("streams greedy tokens and their text until max_tokens", async () => {
    const deltas = await run(collect([1, 2, 3], { temperature: 0, max_tokens: 12, ignore_eos: true }))
    const expected = greedyReference([1, 2, 3], 12)
    expect(tokensOf(deltas)).toEqual(expected)
    expect(textOf(deltas)).toBe(expected.map((t) => (t === EOS ? "" : Array.from(letters)[t])).join(""))
    expect(deltas.at(-1)!.finishReason).toBe("length")
    expect(deltas.slice(0, -1).every((d) => d.finishReason === undefined)).toBe(true)
  })

  it("stops at a stop string without emitting it", async () => {
    const expected = greedyReference([4, 5], 20)
    const text = expected.map((t) => Array.from(letters)[t]).join("")
    const stop = Array.from(text).slice(6, 8).join("")
    assumeExample(!expected.slice(0, 8).includes(EOS))
    const deltas = await run(collect([4, 5], { temperature: 0, max_tokens: 20, stop: [stop] }))
    expect(textOf(deltas)).toBe(text.slice(0, text.indexOf(stop)))
    expect(deltas.at(-1)).toMatchObject({ finishReason: "stop", stopReason: stop })
  })

  it("each request's seeded output is the same alone and in a crowd with chunking, preemption and prefix hits", async () => {
    const requests = Array.from({ length: 8 }, (_, i) => ({
      prompt: [...(i % 2 === 0 ? [9, 9, 9, 9, 9, 9, 9, 9] : []), ...Array.from({ length: 3 + ((i * 5) % 9) }, (_, k) => (i * 7 + k * 3) % 30)],
      raw: { temperature: 0.5 + i / 8, top_p: 0.95, top_k: i % 3 === 0 ? 5 : -1, seed: 1000 + i, max_tokens: 10 + i, n: i === 3 ? 2 : 1, ignore_eos: true, logprobs: i % 3 === 2 ? null : i % 2 },
    }))
    const alone: CompletionDelta[][] = []
    for (const r of requests) alone.push(await run(collect(r.prompt, r.raw)))
    // 16 blocks of 4 tokens and 6-token steps: requests chunk, share prefixes and get preempted
    const tight = makeHashExecutor({ vocabSize: V, numBlocks: 16, blockSize: 4 })
    const [crowd, stats] = await run(
      Effect.gen(function* () {
        const outputs = yield* Effect.all(requests.map((r) => collect(r.prompt, r.raw)), { concurrency: "unbounded" })
        return [outputs, (yield* Scheduler).core.stats()] as const
      }),
      tight,
      { maxNumBatchedTokens: 6, maxNumSeqs: 6 },
    )
    expect(stats.numPreemptions).toBeGreaterThan(0)
    expect(stats.prefixCacheHitTokens).toBeGreaterThan(0)
    requests.forEach((r, i) => {
      for (let index = 0; index < r.raw.n; index++) {
        expect(tokensOf(crowd[i], index)).toEqual(tokensOf(alone[i], index))
        expect(tokensOf(crowd[i], index).length).toBe(r.raw.max_tokens)
        const logprobsOf = (deltas: CompletionDelta[]) => deltas.filter((d) => d.index === index).flatMap((d) => d.logprobs ?? [])
        expect(logprobsOf(crowd[i])).toEqual(logprobsOf(alone[i]))
        expect(logprobsOf(crowd[i]).length).toBe(r.raw.logprobs === null ? 0 : r.raw.max_tokens)
      }
    })
    expect(tokensOf(crowd[3], 0)).not.toEqual(tokensOf(crowd[3], 1))
  })

  it("fails fast with QueueFullError when the intake is full", async () => {
    const inner = makeHashExecutor({ vocabSize: V, numBlocks: 64, blockSize: 4 })
    const latch = Effect.runSync(Deferred.make<void>())
    let executing = false
    const blocked: Executor = {
      ...inner,
      execute: (plan) => Effect.sync(() => (executing = true)).pipe(Effect.zipRight(Deferred.await(latch)), Effect.zipRight(inner.execute(plan))),
    }
    const result = await run(
      Effect.gen(function* () {
        const engine = yield* Engine
        const first = yield* engine.generate({ promptTokenIds: [1], params: params({ max_tokens: 2 }) })
        while (!executing) yield* Effect.sleep("1 millis")
        const second = yield* engine.generate({ promptTokenIds: [2], params: params({ max_tokens: 2 }) })
        const third = yield* Effect.either(engine.generate({ promptTokenIds: [3], params: params({ max_tokens: 2 }) }))
        yield* Deferred.succeed(latch, undefined)
        yield* Stream.runDrain(first.stream)
        yield* Stream.runDrain(second.stream)
        return third
      }),
      blocked,
      { maxQueuedRequests: 1 },
    )
    expect(Either.isLeft(result) && result.left._tag).toBe("QueueFullError")
  })

  it("interrupting a stream aborts its request and frees its blocks", async () => {
    const free = await run(
      Effect.gen(function* () {
        const engine = yield* Engine
        const { stream } = yield* engine.generate({ promptTokenIds: [1, 2, 3, 4, 5, 6], params: params({ max_tokens: 50, ignore_eos: true }) })
        const firstThree = yield* Stream.runCollect(Stream.take(stream, 3))
        expect(Chunk.size(firstThree)).toBe(3)
        return yield* drained
      }),
    )
    expect(free).toBe(64)
  })

  it.each([
    ["before it is scheduled", 0, false],
    ["while it runs", 3, false],
    ["while it runs, with the next step launched ahead", 3, true],
  ])("abort %s ends every completion with finish reason abort and frees its blocks", async (_, deltasFirst, asyncScheduling) => {
    // drawn on the "device": every step of the request can be launched ahead
    const queued = launchedOnQueue(samplingOnDevice(makeHashExecutor({ vocabSize: V, numBlocks: 64, blockSize: 4 })))
    const [deltas, free] = await run(
      Effect.gen(function* () {
        const engine = yield* Engine
        const request = { promptTokenIds: [1, 2, 3, 4, 5], params: params({ max_tokens: 50, n: 2, ignore_eos: true }) }
        const { requestId, stream } = yield* engine.generate(request)
        const pull = yield* Stream.toPull(stream)
        const seen: CompletionDelta[] = []
        while (seen.length < deltasFirst) seen.push(...Chunk.toArray(yield* pull))
        yield* engine.abort(requestId)
        while (true) {
          const next = yield* Effect.either(pull)
          if (Either.isLeft(next)) break
          seen.push(...Chunk.toArray(next.right))
        }
        return [seen, yield* drained] as const
      }),
      asyncScheduling ? queued.executor : undefined,
      { asyncScheduling },
    )
    if (asyncScheduling) expect(queued.stats.launchedAhead).toBeGreaterThan(0)
    const ends = deltas.filter((d) => d.finishReason !== undefined)
    expect(ends.map((d) => [d.index, d.finishReason]).sort()).toEqual([
      [0, "abort"],
      [1, "abort"],
    ])
    expect(deltas.length).toBeGreaterThanOrEqual(deltasFirst + 2)
    expect(free).toBe(64)
  })

  it("rejects requests the model cannot run with InvalidRequestError", async () => {
    const errors = await run(
      Effect.gen(function* () {
        const engine = yield* Engine
        const attempt = (prompt: number[], raw: SamplingParamsEncoded = {}) =>
          Effect.flip(engine.generate({ promptTokenIds: prompt, params: params(raw) }))
        return [
          yield* attempt([]),
          yield* attempt(Array.from({ length: 64 }, () => 1)),
          yield* attempt([V]),
          yield* attempt([1], { logit_bias: { [V]: 5 } }),
        ]
      }),
    )
    expect(errors.map((e) => e._tag)).toEqual(Array(4).fill("InvalidRequestError"))
    expect(errors.map((e) => (e as { param?: string }).param)).toEqual(["prompt", "prompt", "prompt", "logit_bias"])
  })

  it("greedy rows take the executor's argmax and leave the logits on the device; other rows get the logits", async () => {
    const inner = makeHashExecutor({ vocabSize: V, numBlocks: 64, blockSize: 4 })
    const asked: Array<{ rows: number; hostLogits: boolean }> = []
    const recording: Executor = {
      ...inner,
      execute: (plan) => {
        asked.push({ rows: plan.sampleRows.length, hostLogits: plan.hostLogits !== false })
        return inner.execute(plan)
      },
    }
    const greedy = { temperature: 0, max_tokens: 6, ignore_eos: true }
    const cases: Array<[string, SamplingParamsEncoded, (hostLogits: boolean[]) => boolean]> = [
      ["plain greedy", greedy, (h) => h.every((x) => !x)],
      ["greedy with logprobs", { ...greedy, logprobs: 2 }, (h) => h.every((x) => x)],
      ["sampled", { ...greedy, temperature: 0.8, seed: 1 }, (h) => h.every((x) => x)],
      ["greedy with a presence penalty", { ...greedy, presence_penalty: 0.5 }, (h) => h.every((x) => x)],
      // EOS is masked until min_tokens outputs, then plain argmax suffices
      ["greedy with min_tokens 3", { temperature: 0, max_tokens: 6, min_tokens: 3 }, (h) => h.join() === "true,true,true,false,false,false"],
    ]
    for (const [name, raw, expected] of cases) {
      asked.length = 0
      // the same greedy tokens whether or not the logits came to the host
      const deltas = await run(collect([1, 2, 3], raw), recording)
      const reference = await run(collect([1, 2, 3], raw))
      expect(tokensOf(deltas), name).toEqual(tokensOf(reference))
      expect(expected(asked.filter((a) => a.rows > 0).map((a) => a.hostLogits)), `${name}: ${JSON.stringify(asked)}`).toBe(true)
    }
  })

  it("with an executor that launches asynchronously, hands a step's deltas over once the next step is launched, and loses none", async () => {
    // a stand-in for the GPU's decode graphs: the step goes to the "device", onLaunched, then a
    // wait that yields; it counts the deltas the streams had taken before the launch and by the
    // end of the wait
    const inner = makeHashExecutor({ vocabSize: V, numBlocks: 64, blockSize: 4 })
    let received = 0
    const takenDuringWait: number[] = []
    const async: Executor = {
      ...inner,
      launchesAsync: true,
      execute: (plan, onLaunched) =>
        Effect.gen(function* () {
          const before = received
          onLaunched?.()
          yield* Effect.sleep("2 millis")
          takenDuringWait.push(received - before)
          return yield* inner.execute(plan)
        }),
    }
    const prompts = [[1, 2, 3], [4, 5], [6], [7, 8, 9, 10]]
    const maxTokens = [5, 9, 3, 7]
    const all = await run(
      Effect.forEach(
        prompts,
        (prompt, i) =>
          Effect.gen(function* () {
            const engine = yield* Engine
            const { stream } = yield* engine.generate({ promptTokenIds: prompt, params: params({ temperature: 0, max_tokens: maxTokens[i], ignore_eos: true }) })
            return Chunk.toArray(yield* Stream.runCollect(stream.pipe(Stream.tap(() => Effect.sync(() => received++)))))
          }),
        { concurrency: "unbounded" },
      ),
      async,
    )
    all.forEach((deltas, i) => {
      expect(tokensOf(deltas)).toEqual(greedyReference(prompts[i], maxTokens[i]))
      expect(deltas.at(-1)!.finishReason).toBe("length")
    })
    // every step's deltas but the last reached the streams while a later step was on the
    // "device" (delivered at the end of each step instead, none would arrive during a wait)
    expect(takenDuringWait.reduce((a, b) => a + b, 0)).toBeGreaterThan(0)
    expect(takenDuringWait.slice(1).every((n) => n > 0)).toBe(true)
  })

  it("draws sampled rows and makes logprobs where the executor samples on the device, as the host does", async () => {
    // a stand-in for a GPU executor: it draws each row of plan.sampling from what the plan
    // carries alone (the parameters, the logits edits of penalties and bias), with the host's
    // sampler, makes every row's logprobs of its token where the plan asks (as
    // tsr_logprobs_rows_bf16 does: gpu-sampler-check holds it to computeLogprobs), and hands
    // back no logits unless asked
    const inner = makeHashExecutor({ vocabSize: V, numBlocks: 64, blockSize: 4 })
    const plans: StepPlan[] = []
    const onDevice = samplingOnDevice(inner, plans)
    const requests: Array<[number[], SamplingParamsEncoded]> = [
      [[1, 2, 3], { temperature: 0.8, top_p: 0.9, top_k: 7, seed: 11, n: 2, max_tokens: 8, ignore_eos: true }],
      [[4, 5], { temperature: 1.3, min_p: 0.05, seed: 12, max_tokens: 8, ignore_eos: true }],
      [[6], { temperature: 0, max_tokens: 8, ignore_eos: true }],
      [[7, 8], { temperature: 0.7, seed: 13, presence_penalty: 0.5, max_tokens: 8, ignore_eos: true }],
      [[9, 9, 2], { temperature: 0.9, seed: 14, logit_bias: { "5": 3 }, repetition_penalty: 1.5, frequency_penalty: 0.8, max_tokens: 8, ignore_eos: true }],
      [[10], { temperature: 0, logit_bias: { "3": 2.5 }, min_tokens: 4, max_tokens: 8 }],
      // logprobs of a draw and of an argmax, beside rows without: each its own number of top tokens
      [[11, 3], { temperature: 0.9, seed: 15, logprobs: 3, n: 2, max_tokens: 8, ignore_eos: true }],
      [[12], { temperature: 0, logprobs: 0, max_tokens: 8, ignore_eos: true }],
    ]
    const all = Effect.all(requests.map(([prompt, raw]) => collect(prompt, raw)), { concurrency: "unbounded" })
    const device = await run(all, onDevice)
    const host = await run(all)
    device.forEach((deltas, i) => {
      for (const index of [0, 1]) {
        expect(tokensOf(deltas, index), `request ${i} sample ${index}`).toEqual(tokensOf(host[i], index))
        const logprobsOf = (ds: CompletionDelta[]) => ds.filter((d) => d.index === index).flatMap((d) => d.logprobs ?? [])
        expect(logprobsOf(deltas), `request ${i} sample ${index} logprobs`).toEqual(logprobsOf(host[i]))
      }
    })
    // logprobs were made beside the draw, with the most top tokens any row asked for
    expect(tokensOf(device[6]).length).toBe(8)
    expect(device[6].flatMap((d) => d.logprobs ?? []).every((l) => l.top.length === 3)).toBe(true)
    expect(device[7].flatMap((d) => d.logprobs ?? []).map((l) => l.top.length)).toEqual(new Array(8).fill(0))
    expect(plans.some((plan) => plan.logprobs === 3)).toBe(true)
    expect(plans.some((plan) => plan.sampling !== undefined)).toBe(true)
    // the penalised request is drawn there too, its penalty carried as edits: no logits come back
    expect(plans.some((plan) => plan.sampling?.edits !== undefined)).toBe(true)
    expect(plans.every((plan) => plan.hostLogits === false)).toBe(true)
    // the rows not drawn on the device are asked for their argmax (temperature 0)
    for (const plan of plans) if (plan.sampling) expect(plan.sampling.temperature.some((t) => t === 0) || plan.sampleRows.length === plan.sampling.temperature.length).toBe(true)
  })

  it("an executor failure fails every stream in flight and frees their blocks", async () => {
    const inner = makeHashExecutor({ vocabSize: V, numBlocks: 64, blockSize: 4 })
    let steps = 0
    const failing: Executor = {
      ...inner,
      execute: (plan) => {
        ++steps
        if (steps === 3) return Effect.fail(new ExecutorError({ message: "device lost" }))
        // a fault that surfaces as a throw (a CUDA error in a kernel call), not as a failure
        if (steps === 6) throw new Error("illegal memory access")
        return inner.execute(plan)
      },
    }
    const pair = Effect.all(
      [collect([1, 2], { max_tokens: 20, ignore_eos: true }), collect([3, 4], { max_tokens: 20, ignore_eos: true })].map(Effect.either),
      { concurrency: "unbounded" },
    )
    const [failed, thrown, after, free] = await run(
      Effect.gen(function* () {
        const failed = yield* pair
        const thrown = yield* pair
        // the loop lives on: the next request is served
        const after = yield* collect([5], { temperature: 0, max_tokens: 3, ignore_eos: true })
        return [failed, thrown, after, yield* drained] as const
      }),
      failing,
    )
    for (const o of [...failed, ...thrown]) expect(Either.isLeft(o) && o.left._tag).toBe("EngineStepError")
    expect(thrown.map((o) => Either.isLeft(o) && o.left.message)).toEqual(["executor: illegal memory access", "executor: illegal memory access"])
    expect(tokensOf(after)).toEqual(greedyReference([5], 3))
    expect(free).toBe(64)
  })
})

describe("asynchronous scheduling", () => {
  // a crowd that chunks, preempts, shares prefixes and stops every way there is: EOS, a stop
  // string, max_tokens, n > 1, greedy and drawn, logprobs, and rows whose next draw reads the
  // tokens so far (penalties, min_tokens), which make the step before wait for its tokens
  const crowd: Array<[number[], SamplingParamsEncoded]> = [
    [[1, 2, 3], { temperature: 0, max_tokens: 12 }],
    [[9, 9, 9, 9, 9, 9, 9, 9, 4, 5], { temperature: 0.8, top_p: 0.9, seed: 21, n: 2, max_tokens: 9 }],
    [[9, 9, 9, 9, 9, 9, 9, 9, 6], { temperature: 0, stop: ["e"], max_tokens: 14, ignore_eos: true }],
    [[7], { temperature: 1.1, min_p: 0.02, seed: 22, logprobs: 2, max_tokens: 11, ignore_eos: true }],
    [[8, 3], { temperature: 0, logit_bias: { "4": 1.5 }, max_tokens: 10, ignore_eos: true }],
    [[2, 2, 7, 1], { temperature: 0.7, seed: 23, presence_penalty: 0.4, max_tokens: 7, ignore_eos: true }],
    [[5, 6], { temperature: 0, min_tokens: 3, max_tokens: 9 }],
    [[3, 1, 4, 1, 5, 9, 2, 6], { temperature: 0.6, top_k: 4, seed: 24, max_tokens: 13 }],
  ]
  const serve = (executor: Executor, asyncScheduling: boolean) =>
    run(
      Effect.gen(function* () {
        const outputs = yield* Effect.all(crowd.map(([prompt, raw]) => collect(prompt, raw)), { concurrency: "unbounded" })
        return [outputs, (yield* Scheduler).core.stats(), yield* drained] as const
      }),
      executor,
      { maxNumBatchedTokens: 8, maxNumSeqs: 6, maxModelLen: 40, asyncScheduling },
    )
  const tight = () => makeHashExecutor({ vocabSize: V, numBlocks: 12, blockSize: 4 })

  it("gives every request the tokens, text and logprobs of scheduling step after step, greedy and drawn on the device", async () => {
    const [reference] = await serve(samplingOnDevice(tight()), false)
    const queued = launchedOnQueue(samplingOnDevice(tight()))
    const [outputs, stats, free] = await serve(queued.executor, true)
    expect(stats.numPreemptions).toBeGreaterThan(0)
    expect(stats.prefixCacheHitTokens).toBeGreaterThan(0)
    crowd.forEach(([, raw], i) => {
      for (let index = 0; index < (raw.n ?? 1); index++) {
        const of = (deltas: CompletionDelta[]) => deltas.filter((d) => d.index === index)
        expect(of(outputs[i]), `request ${i} sample ${index}`).toEqual(of(reference[i]))
      }
    })
    // most steps were launched while the one before computed, their ids taken on the "device"
    expect(queued.stats.launchedAhead).toBeGreaterThan(queued.stats.launches / 3)
    expect(queued.stats.stepsWithPreviousTokens).toBeGreaterThan(0)
    // a finished request's extra token is dropped with its blocks: all of them are free again
    expect(free).toBe(12)
  })

  it("with the host sampling (no device sampler), overlaps the greedy steps alone, with the same tokens", async () => {
    const [reference] = await serve(tight(), false)
    const queued = launchedOnQueue(tight())
    const [outputs] = await serve(queued.executor, true)
    outputs.forEach((deltas, i) => expect(deltas, `request ${i}`).toEqual(reference[i]))
    expect(queued.stats.launchedAhead).toBeGreaterThan(0)
  })

  it("plans after the step where the next draw reads the tokens so far", async () => {
    const queued = launchedOnQueue(samplingOnDevice(tight()))
    const penalised = collect([1, 2], { temperature: 0.9, seed: 5, frequency_penalty: 0.5, max_tokens: 8, ignore_eos: true })
    const [deltas] = await run(Effect.all([penalised]), queued.executor, { maxModelLen: 40, asyncScheduling: true })
    expect(tokensOf(deltas).length).toBe(8)
    expect(queued.stats.launchedAhead).toBe(0)
  })

  it("a failure with a step launched ahead fails every stream, waits for both steps and frees every block", async () => {
    const inner = makeHashExecutor({ vocabSize: V, numBlocks: 64, blockSize: 4 })
    let steps = 0
    const failing: Executor = {
      ...inner,
      execute: (plan) => (++steps === 4 ? Effect.fail(new ExecutorError({ message: "device lost" })) : inner.execute(plan)),
    }
    const queued = launchedOnQueue(failing)
    const [outcomes, after, free] = await run(
      Effect.gen(function* () {
        const outcomes = yield* Effect.all([collect([1, 2], { max_tokens: 20, ignore_eos: true }), collect([3], { max_tokens: 20, ignore_eos: true })].map(Effect.either), { concurrency: "unbounded" })
        const after = yield* collect([5], { temperature: 0, max_tokens: 3, ignore_eos: true })
        return [outcomes, after, yield* drained] as const
      }),
      queued.executor,
      { asyncScheduling: true },
    )
    for (const o of outcomes) expect(Either.isLeft(o) && o.left.message).toBe("device lost")
    expect(tokensOf(after)).toEqual(greedyReference([5], 3))
    expect(free).toBe(64)
    expect(queued.stats.launchedAhead).toBeGreaterThan(0)
  })
})

/** a precondition of a hand-picked example: if it ever fails the example needs new numbers */
function assumeExample(condition: boolean): void {
  if (!condition) throw new Error("example precondition does not hold")
}
