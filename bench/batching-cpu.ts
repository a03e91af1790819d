/**
 * Continuous batching on the CPU: total output tokens/s for 1, 8, 32 and 64 concurrent
 * requests through the engine (a memory-bound model: one step reads the weights once for
 * the whole batch, so batching should multiply throughput), and time to first token for a
 * request whose long prompt shares its prefix with an earlier one, against one that does not.
 *
 *   bun bench/batching-cpu.ts      (writes bench/results/batching-cpu.json)
 */
import { Effect, Layer, Stream } from "effect"
import os from "node:os"
import { ExecutorService } from "../src/effects/ExecutorService.ts"
import { Engine } from "../src/engine/Engine.ts"
import { loadModelExecutor } from "../src/engine/modelExecutor.ts"
import { ByteLevelDetokenizer } from "../src/sampling/detokenizer.ts"
import { decodeSamplingParamsSync } from "../src/sampling/SamplingParams.ts"
import { writeBenchModel } from "./lib/dummyModel.ts"
import { recordResults } from "./lib/results.ts"

const promptLength = 32
const outputLength = 32
const maxNumSeqs = 64
const executor = await loadModelExecutor(writeBenchModel(), {
  loadFormat: "dummy",
  threads: os.cpus().length,
  maxNumSeqs,
  maxNumBatchedTokens: 1024,
  maxModelLen: 1024,
  kvCacheBytes: 512 * 1024 * 1024
})
const engine = Engine.live({
  maxNumSeqs,
  maxNumBatchedTokens: 1024,
  maxModelLen: 1024,
  enableChunkedPrefill: true,
  enablePrefixCaching: true,
  maxQueuedRequests: 1024,
  eosTokenIds: [],
  detokenizer: new ByteLevelDetokenizer(() => new Uint8Array(0))
}).pipe(Layer.provide(ExecutorService.layer(executor)))

const params = decodeSamplingParamsSync({ temperature: 0, max_tokens: outputLength, ignore_eos: true })
const prompt = (seed: number, length: number) => Array.from({ length }, (_, i) => 3 + ((seed * 7919 + i * 104729) % 31000))

/** runs one request to the end; returns [time to first token, tokens] in ms */
const request = (promptTokenIds: number[], maxTokens = outputLength) =>
  Effect.gen(function* () {
    const start = performance.now()
    let first = 0
    let tokens = 0
    const handle = yield* (yield* Engine).generate({ promptTokenIds, params: { ...params, maxTokens } })
    yield* Stream.runForEach(handle.stream, (delta) =>
      Effect.sync(() => {
        if (tokens === 0 && delta.tokenIds.length > 0) first = performance.now() - start
        tokens += delta.tokenIds.length
      })
    )
    return { ttftMs: first, tokens }
  })

const results = await Effect.runPromise(
  Effect.gen(function* () {
    yield* request(prompt(0, 8), 2) // warm-up
    const throughput = []
    for (const concurrency of [1, 8, 32, 64]) {
      const start = performance.now()
      const done = yield* Effect.forEach(
        Array.from({ length: concurrency }, (_, i) => prompt(1000 + concurrency * 100 + i, promptLength)),
        (p) => request(p),
        { concurrency: "unbounded" }
      )
      const seconds = (performance.now() - start) / 1000
      const tokens = done.reduce((n, r) => n + r.tokens, 0)
      throughput.push({ concurrency, seconds, outputTokens: tokens, outputTokensPerSecond: tokens / seconds })
    }
    const single = throughput[0].outputTokensPerSecond
    const longPrompt = 512
    const shared = prompt(7, longPrompt)
    yield* request(shared, 1)
    const withPrefix = yield* request([...shared.slice(0, longPrompt - 16), ...prompt(8, 16)], 1)
    const withoutPrefix = yield* request(prompt(9, longPrompt), 1)
    return {
      throughput: throughput.map((t) => ({ ...t, timesSingleRequest: t.outputTokensPerSecond / single })),
      ttft: { promptTokens: longPrompt, sharedPrefixTokens: longPrompt - 16, withPrefixMs: withPrefix.ttftMs, withoutPrefixMs: withoutPrefix.ttftMs }
    }
  }).pipe(Effect.provide(engine))
)
await Effect.runPromise(executor.close())

console.log(`${"concurrent requests".padEnd(22)} ${"output tokens/s".padStart(16)} ${"x one request".padStart(14)}`)
for (const t of results.throughput) {
  console.log(`${String(t.concurrency).padEnd(22)} ${t.outputTokensPerSecond.toFixed(1).padStart(16)} ${t.timesSingleRequest.toFixed(2).padStart(14)}`)
}
const { ttft } = results
console.log(`\nTTFT, ${ttft.promptTokens}-token prompt: ${ttft.withPrefixMs.toFixed(0)} ms sharing ${ttft.sharedPrefixTokens} tokens with an earlier prompt, ${ttft.withoutPrefixMs.toFixed(0)} ms without (${(ttft.withoutPrefixMs / ttft.withPrefixMs).toFixed(1)}x)`)
recordResults("batching-cpu.json", "bun bench/batching-cpu.ts", { promptLength, outputLength, ...results })
