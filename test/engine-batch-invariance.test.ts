import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Chunk, Effect, Layer, Stream } from "effect"
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { ExecutorService } from "../src/effects/ExecutorService.ts"
import { Scheduler } from "../src/effects/Scheduler.ts"
import { Engine, type CompletionDelta, type EngineConfig } from "../src/engine/Engine.ts"
import type { Executor } from "../src/engine/executor.ts"
import { loadModelExecutor } from "../src/engine/modelExecutor.ts"
import type { SchedulerStats } from "../src/engine/scheduler.ts"
import { parseModelConfig } from "../src/model/config.ts"
import { expectedTensors } from "../src/model/expectedTensors.ts"
import { ByteLevelDetokenizer, tokenizerDetokenizer, type Detokenizer } from "../src/sampling/detokenizer.ts"
import { decodeSamplingParamsSync, type SamplingParamsEncoded } from "../src/sampling/SamplingParams.ts"
import { loadTokenizer } from "../src/tokenizer/tokenizer.ts"
import { fixtureNames, fixturePath } from "./helpers/fixtures.ts"
import { f32Tensor, writeSafetensors } from "./helpers/safetensorsWriter.ts"

/**
 * Batch invariance through the real CPU pipeline: every request's greedy and seeded output
 * is the same alone as in any mix, with chunked prefill, after preemption, and on prefix
 * cache hits. It runs on every fixture model under test/fixtures/models and on tiny random
 * models written here (one per attention variant), so it runs even before the fixtures exist.
 */

const BLOCK_SIZE = 4
const MAX_MODEL_LEN = 64
const MAX_NUM_SEQS = 8

/** A 2-layer model with random float32 weights (GQA: 4 heads over 2 KV heads). */
const writeRandomTinyModel = (overrides: Record<string, unknown>): string => {
  const raw = {
    architectures: ["LlamaForCausalLM"],
    hidden_size: 32,
    intermediate_size: 48,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    vocab_size: 97,
    rms_norm_eps: 1e-5,
    max_position_embeddings: 256,
    rope_theta: 10000,
    torch_dtype: "float32",
    bos_token_id: 1,
    eos_token_id: 2,
    tie_word_embeddings: false,
    ...overrides,
  }
  const dir = mkdtempSync(join(tmpdir(), "tessera-tiny-model-"))
  writeFileSync(join(dir, "config.json"), JSON.stringify(raw))
  let state = 12345
  const uniform = () => ((state = (Math.imul(state, 1103515245) + 12345) >>> 0) / 2 ** 32 - 0.5)
  const tensors = expectedTensors(parseModelConfig(raw)).map((t) => {
    const count = t.shape.reduce((a, b) => a * b, 1)
    return [t.name, f32Tensor(t.shape, Array.from({ length: count }, () => (t.name.includes("norm") ? 1 + uniform() * 0.2 : uniform())))]
  })
  writeSafetensors(join(dir, "model.safetensors"), Object.fromEntries(tensors))
  return dir
}

interface ModelCase {
  readonly name: string
  readonly dir: string
  readonly detokenizer: () => Promise<Detokenizer>
}

const printable = new ByteLevelDetokenizer((id) => new TextEncoder().encode(String.fromCodePoint(0x21 + id)))
const models: ModelCase[] = [
  { name: "random tiny llama", dir: writeRandomTinyModel({}), detokenizer: async () => printable },
  {
    name: "random tiny qwen2 (qkv biases)",
    dir: writeRandomTinyModel({ architectures: ["Qwen2ForCausalLM"] }),
    detokenizer: async () => printable,
  },
  {
    name: "random tiny qwen3 (qk norms, head_dim 16, tied embeddings)",
    dir: writeRandomTinyModel({ architectures: ["Qwen3ForCausalLM"], head_dim: 16, tie_word_embeddings: true }),
    detokenizer: async () => printable,
  },
  ...fixtureNames().map((name) => ({
    name,
    dir: fixturePath(name),
    detokenizer: async () => tokenizerDetokenizer(await loadTokenizer(fixturePath(name))),
  })),
]

interface Scenario {
  readonly numBlocks: number
  readonly maxNumBatchedTokens: number
  readonly enablePrefixCaching: boolean
  readonly asyncScheduling?: boolean
}

interface TestRequest {
  readonly prompt: number[]
  readonly raw: SamplingParamsEncoded & { n: number }
}

/** Half greedy, half seeded (one with n = 2); half share a 9-token prefix. */
const makeRequests = (vocabSize: number): TestRequest[] => {
  const token = (i: number) => 3 + (i % Math.min(vocabSize - 3, 500))
  const prefix = Array.from({ length: 9 }, (_, k) => token(k * 31 + 7))
  return Array.from({ length: 6 }, (_, i) => {
    const own = Array.from({ length: 2 + ((i * 5) % 11) }, (_, k) => token(i * 97 + k * 13))
    const seeded = i % 2 === 1
    return {
      prompt: i % 3 === 0 ? own : [...prefix, ...own],
      raw: seeded
        ? { temperature: 0.9, top_p: 0.9, seed: 100 + i, max_tokens: 8, ignore_eos: true, n: i === 3 ? 2 : 1 }
        : { temperature: 0, max_tokens: 8, ignore_eos: true, n: 1 },
    }
  })
}

type Outputs = Array<Array<{ tokens: number[]; text: string }>>

const outputsOf = (requests: TestRequest[], results: CompletionDelta[][]): Outputs =>
  results.map((deltas, i) =>
    Array.from({ length: requests[i].raw.n }, (_, index) => {
      const mine = deltas.filter((d) => d.index === index)
      return { tokens: mine.flatMap((d) => d.tokenIds), text: mine.map((d) => d.text).join("") }
    }),
  )

/**
 * Runs `waves` of requests on a fresh executor and engine: the requests of a wave are
 * submitted together, in the given order; a wave starts when the previous one is done.
 */
const runEngine = async (model: ModelCase, scenario: Scenario, waves: TestRequest[][]) => {
  const executor = await loadModelExecutor(model.dir, {
    threads: 1,
    blockSize: BLOCK_SIZE,
    numBlocks: scenario.numBlocks,
    maxNumSeqs: MAX_NUM_SEQS,
    maxModelLen: MAX_MODEL_LEN,
    maxNumBatchedTokens: scenario.maxNumBatchedTokens,
  })
  const config: EngineConfig = {
    ...scenario,
    maxNumSeqs: MAX_NUM_SEQS,
    maxModelLen: MAX_MODEL_LEN,
    enableChunkedPrefill: true,
    maxQueuedRequests: 64,
    eosTokenIds: [],
    detokenizer: await model.detokenizer(),
  }
  const collect = (r: TestRequest) =>
    Effect.gen(function* () {
      const { stream } = yield* (yield* Engine).generate({ promptTokenIds: r.prompt, params: decodeSamplingParamsSync(r.raw) })
      return Chunk.toArray(yield* Stream.runCollect(stream))
    })
  const program = Effect.gen(function* () {
    const results: Outputs[] = []
    for (const wave of waves) results.push(outputsOf(wave, yield* Effect.all(wave.map(collect), { concurrency: "unbounded" })))
    const stats: SchedulerStats = (yield* Scheduler).core.stats()
    return { results, stats }
  })
  // counts the steps whose ids the model took from the step before's argmax (take_tokens)
  let stepsWithPreviousTokens = 0
  const counted: Executor = {
    ...executor,
    launch: (plan) => Effect.suspend(() => {
      if (plan.previousTokens) stepsWithPreviousTokens++
      return executor.launch!(plan)
    }),
  }
  const layer = Engine.live(config).pipe(Layer.provideMerge(ExecutorService.layer(counted)))
  try {
    const { results, stats } = await Effect.runPromise(Effect.scoped(Effect.provide(program, layer)))
    return { results, stats, stepsWithPreviousTokens }
  } finally {
    await Effect.runPromise(executor.close())
  }
}

const roomy: Scenario = { numBlocks: 256, maxNumBatchedTokens: 256, enablePrefixCaching: false }

describe.each(models)("batch invariance on $name", (model) => {
  let requests: TestRequest[] = []
  let alone: Outputs = []

  const baseline = async () => {
    if (alone.length > 0) return
    const probe = await loadModelExecutor(model.dir, { threads: 1, numBlocks: 1, blockSize: BLOCK_SIZE })
    requests = makeRequests(probe.vocabSize)
    await Effect.runPromise(probe.close())
    const { results } = await runEngine(model, roomy, requests.map((r) => [r]))
    alone = results.flat()
  }

  const expectSameAsAlone = (mixed: Outputs, which: number[]) =>
    mixed.forEach((out, k) => {
      expect(out).toEqual(alone[which[k]])
      for (const sample of out) expect(sample.tokens.length).toBe(8)
    })

  const all = () => requests.map((_, i) => i)

  it("all requests batched together", async () => {
    await baseline()
    const { results } = await runEngine(model, roomy, [requests])
    expectSameAsAlone(results[0], all())
  })

  it("chunked prefill under a 5-token budget", async () => {
    await baseline()
    const { results } = await runEngine(model, { ...roomy, maxNumBatchedTokens: 5 }, [requests])
    expectSameAsAlone(results[0], all())
  })

  it("preemption in a 16-block cache", async () => {
    await baseline()
    const { results, stats } = await runEngine(model, { ...roomy, numBlocks: MAX_MODEL_LEN / BLOCK_SIZE, maxNumBatchedTokens: 16 }, [requests])
    expect(stats.numPreemptions).toBeGreaterThan(0)
    expectSameAsAlone(results[0], all())
  })

  it("prefix cache hits, within a wave and from the previous wave", async () => {
    await baseline()
    const { results, stats } = await runEngine(model, { ...roomy, enablePrefixCaching: true }, [requests, [...requests].reverse()])
    expect(stats.prefixCacheHitTokens).toBeGreaterThan(0)
    expectSameAsAlone(results[0], all())
    expectSameAsAlone(results[1], all().reverse())
  })

  it("asynchronous scheduling: greedy steps launched before the step before is read, their ids taken on the device", async () => {
    await baseline()
    const greedy = all().filter((i) => requests[i].raw.temperature === 0)
    const { results, stats, stepsWithPreviousTokens } = await runEngine(
      model,
      { ...roomy, numBlocks: MAX_MODEL_LEN / BLOCK_SIZE, maxNumBatchedTokens: 16, asyncScheduling: true },
      [greedy.map((i) => requests[i]), requests]
    )
    expect(stats.numPreemptions).toBeGreaterThan(0)
    expect(stepsWithPreviousTokens).toBeGreaterThan(0)
    expectSameAsAlone(results[0], greedy)
    expectSameAsAlone(results[1], all())
  })

  it("random mixes: subsets, orders, budgets, cache sizes, scheduling", async () => {
    await baseline()
    await fc.assert(
      fc.asyncProperty(
        fc.shuffledSubarray(all(), { minLength: 2 }),
        fc.integer({ min: 3, max: 48 }),
        fc.integer({ min: MAX_MODEL_LEN / BLOCK_SIZE, max: 64 }),
        fc.boolean(),
        fc.boolean(),
        async (which, maxNumBatchedTokens, numBlocks, enablePrefixCaching, asyncScheduling) => {
          const { results } = await runEngine(model, { numBlocks, maxNumBatchedTokens, enablePrefixCaching, asyncScheduling }, [which.map((i) => requests[i])])
          expectSameAsAlone(results[0], which)
        },
      ),
      { numRuns: 4 },
    )
  })
})
