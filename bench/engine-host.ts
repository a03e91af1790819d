/**
 * The engine's host work per decode step, with the model taken out: an executor that answers
 * every plan with argmax ids, as the GPU path does (ids computed on the device, no logits
 * copied), under the real engine loop (schedule, plan, output processing, detokenizing, each
 * request's stream). With `--device-ms D` each step also takes D ms of simulated device time,
 * waited for two ways: blocking the thread (as a synchronous device wait does), and launching
 * asynchronously (`launchesAsync`: the previous step's deltas go out once the step is launched,
 * and the wait yields to the streams' fibers); the step time over D is what the host adds to
 * every step.
 *
 *   bun bench/engine-host.ts [--batches 1,16,64,256] [--device-ms 0,6.45,7.14,8.35,13.39] [--prompt 128] [--new 256]
 *
 * The default device times are the H100's greedy decode steps at those batches (results/gpu-*.json).
 *
 * With `--model DIR` the executor is a real one instead (`--load-format dummy` for a config
 * alone, `--device cpu|cuda|auto`), and each batch runs twice: the deltas handed to the streams
 * after each step (as a blocking executor forces) and launched asynchronously where the executor
 * can (the CUDA decode graphs). On a GPU that is the serving engine's step beside `gpu.ts`'s
 * executor-only one:
 *
 *   bun bench/engine-host.ts --model DIR --load-format dummy --device cuda [--batches 1,16,64,256] [--out DIR]
 */
import { join } from "node:path"
import { Chunk, Effect, Layer, Stream } from "effect"
import { awaitDevice } from "../src/effects/awaitDevice.ts"
import { ExecutorService } from "../src/effects/ExecutorService.ts"
import { deviceOptions } from "../src/engine/deviceProvider.ts"
import { Engine, type EngineConfig } from "../src/engine/Engine.ts"
import type { Executor } from "../src/engine/executor.ts"
import { loadModelExecutor } from "../src/engine/modelExecutor.ts"
import { readModelConfig } from "../src/model/config.ts"
import { ByteLevelDetokenizer } from "../src/sampling/detokenizer.ts"
import { decodeSamplingParamsSync } from "../src/sampling/SamplingParams.ts"
import { deviceSlug, recordResults } from "./lib/results.ts"

const argValue = (flag: string, fallback: string): string => {
  const i = process.argv.indexOf(flag)
  return i >= 0 ? process.argv[i + 1] : fallback
}
const batches = argValue("--batches", "1,16,64,256").split(",").map(Number)
const deviceMs = argValue("--device-ms", "6.45,7.14,8.35,13.39").split(",").map(Number)
const modelDir = process.argv.includes("--model") ? argValue("--model", "") : undefined
if (modelDir === undefined && deviceMs.length !== batches.length) throw new Error("--device-ms: one time per batch")
const outDir = argValue("--out", process.env.OUT ?? join(import.meta.dir, "results"))
const prompt = Number(argValue("--prompt", "128"))
const newTokens = Number(argValue("--new", "256"))
const command = `bun bench/engine-host.ts ${process.argv.slice(2).join(" ")}`.trim()
const vocabSize = 128256
const blockSize = 16

type Wait = "none" | "blocking" | "async"

/** ids from the plan alone (cheap, deterministic), never the end of sequence, after `ms` of device time */
const simulatedDevice = (numBlocks: number, ms: number, wait: Wait): Executor => ({
  vocabSize,
  numBlocks,
  blockSize,
  launchesAsync: wait === "async",
  execute: (plan, onLaunched) =>
    Effect.suspend(() => {
      const end = performance.now() + ms
      const argmax = new Int32Array(plan.sampleRows.length)
      for (let r = 0; r < argmax.length; r++) argmax[r] = 1000 + ((plan.positions[plan.sampleRows[r]] * 7919 + r * 104729) % 30000)
      const output = { argmax, logits: undefined }
      if (wait === "none") return Effect.succeed(output)
      if (wait === "blocking") {
        while (performance.now() < end);
        return Effect.succeed(output)
      }
      onLaunched?.()
      return awaitDevice(() => performance.now() >= end).pipe(Effect.as(output))
    }),
  close: () => Effect.void
})

// one byte a token, from a table made once (the tokenizer's own cost is not what this measures)
const letterBytes = Array.from(new TextEncoder().encode("abcdefghijklmnopqrstuvwxyz ,.'"), (b) => Uint8Array.of(b))
const detokenizer = new ByteLevelDetokenizer((id) => letterBytes[id % letterBytes.length])

const run = async (batch: number, executor: Executor) => {
  const steps: number[] = []
  const config: EngineConfig = {
    maxNumSeqs: batch,
    maxNumBatchedTokens: Math.max(2048, batch),
    maxModelLen: prompt + newTokens + 1,
    enableChunkedPrefill: true,
    enablePrefixCaching: true,
    maxQueuedRequests: batch,
    eosTokenIds: [executor.vocabSize - 1],  // never reached: the requests ignore it
    detokenizer,
    onStep: (stats) => {
      if (stats.promptTokens === 0) steps.push(performance.now())
    }
  }
  const layer = Engine.live(config).pipe(Layer.provideMerge(ExecutorService.layer(executor)))
  const params = decodeSamplingParamsSync({ temperature: 0, max_tokens: newTokens, ignore_eos: true })
  const promptVocab = Math.min(30000, executor.vocabSize - 1)
  await Effect.runPromise(
    Effect.scoped(
      Effect.gen(function* () {
        const engine = yield* Engine
        const handles = yield* Effect.forEach(Array.from({ length: batch }, (_, s) => s), (s) =>
          engine.generate({ promptTokenIds: Array.from({ length: prompt }, (_, i) => (i * 31 + s * 17) % promptVocab), params })
        )
        yield* Effect.forEach(handles, (h) => Stream.runCollect(h.stream).pipe(Effect.map(Chunk.size)), { concurrency: "unbounded" })
      }).pipe(Effect.provide(layer))
    )
  )
  // decode-only steps after the first few (warm-up), up to the last full-batch ones
  const gaps = steps.slice(1).map((t, i) => t - steps[i]).slice(8, -8).sort((a, b) => a - b)
  return { medianMs: gaps[Math.floor(gaps.length / 2)] }
}

const blocksFor = (batch: number) => batch * Math.ceil((prompt + newTokens + 1) / blockSize) + 16

if (modelDir === undefined) {
  const rows = []
  console.log("ms per decode step (median); in brackets, over the device time")
  console.log("batch  device ms  no device   blocking wait   launched async")
  for (const [i, batch] of batches.entries()) {
    const ms = deviceMs[i]
    const none = await run(batch, simulatedDevice(blocksFor(batch), 0, "none"))
    const blocking = await run(batch, simulatedDevice(blocksFor(batch), ms, "blocking"))
    const launchedAsync = await run(batch, simulatedDevice(blocksFor(batch), ms, "async"))
    rows.push({ batch, deviceMs: ms, hostOnlyMs: none.medianMs, blockingMs: blocking.medianMs, asyncMs: launchedAsync.medianMs })
    const over = (x: number) => `${x.toFixed(2)} (+${(x - ms).toFixed(2)})`
    console.log(`${String(batch).padStart(5)}  ${ms.toFixed(2).padStart(9)}  ${none.medianMs.toFixed(2).padStart(9)}  ${over(blocking.medianMs).padStart(15)}  ${over(launchedAsync.medianMs).padStart(17)}`)
  }
  console.log(`wrote ${recordResults("engine-host-cpu.json", command, { prompt, newTokens, rows }, undefined, outDir)}`)
} else {
  const flags = { device: argValue("--device", "auto") as "auto" | "cpu" | "cuda" }
  const maxBatch = Math.max(...batches)
  const executor = await loadModelExecutor(modelDir, {
    ...(await deviceOptions(flags, readModelConfig(modelDir), (line) => console.log(line))),
    loadFormat: argValue("--load-format", "auto") as "auto" | "dummy",
    maxModelLen: prompt + newTokens + 1,
    maxNumSeqs: maxBatch,
    maxNumBatchedTokens: Math.max(2048, maxBatch)
  })
  // the same executor, its steps' deltas handed over after each step as a blocking one forces
  const deliveredAfterEachStep: Executor = { ...executor, launchesAsync: false, execute: (plan) => executor.execute(plan) }
  const rows = []
  console.log(`${modelDir} on ${executor.provider.name}${executor.launchesAsync ? " (launches asynchronously)" : ""}: ms per decode step (median)`)
  console.log("batch  delivered after each step   launched async")
  for (const batch of batches) {
    const after = await run(batch, deliveredAfterEachStep)
    const launchedAsync = await run(batch, executor)
    rows.push({ batch, afterEachStepMs: after.medianMs, asyncMs: launchedAsync.medianMs })
    console.log(`${String(batch).padStart(5)}  ${after.medianMs.toFixed(2).padStart(25)}  ${launchedAsync.medianMs.toFixed(2).padStart(15)}`)
  }
  await Effect.runPromise(executor.close())
  executor.provider.close()
  const device = "device" in executor.provider ? String(executor.provider.device) : undefined
  const file = device === undefined ? "engine-host-model-cpu.json" : `engine-host-${deviceSlug(device)}.json`
  console.log(`wrote ${recordResults(file, command, { model: modelDir, prompt, newTokens, rows }, device, outDir)}`)
}
