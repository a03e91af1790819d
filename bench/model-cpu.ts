/**
 * Model speed on the CPU: prefill and decode tokens/s of a memory-bound Llama shape with
 * random weights, and the bytes/s decode achieves beside this machine's memory bandwidth
 * measured in the same run (a STREAM-style copy on as many threads).
 *
 *   bun bench/model-cpu.ts        (writes bench/results/model-cpu.json)
 */
import { Effect } from "effect"
import os from "node:os"
import { contiguousPlan } from "../src/engine/contiguousPlan.ts"
import { loadModelExecutor } from "../src/engine/modelExecutor.ts"
import { filled, recordResults, time } from "./lib/results.ts"
import { kvBytesPerToken, weightBytesPerToken, writeBenchModel } from "./lib/dummyModel.ts"

const threads = os.cpus().length
const blockSize = 16
const executor = await loadModelExecutor(writeBenchModel(), {
  loadFormat: "dummy",
  threads,
  maxNumSeqs: 8,
  maxNumBatchedTokens: 1024,
  maxModelLen: 2048,
  kvCacheBytes: 512 * 1024 * 1024
})
const { memory, kernels } = executor.provider
const run = (plan: ReturnType<typeof contiguousPlan>) => Effect.runSync(executor.execute(plan))

// the ceiling: copying 256 MiB reads and writes it; the WASM copy split over every thread
const copyBytes = 256 * 1024 * 1024
const copyRows = 4096
const [src, dst, rows] = [memory.alloc(copyBytes), memory.alloc(copyBytes), memory.alloc(copyRows * 4)]
memory.write(src, filled(copyBytes / 4, 1))
memory.write(rows, Int32Array.from({ length: copyRows }, (_, r) => r))
const copy = time(() => kernels.gather_rows(dst, src, rows, copyRows, copyBytes / 4 / copyRows), 8)
const bandwidth = (2 * copyBytes) / (copy.ms * 1e6)
for (const ptr of [src, dst, rows]) memory.free(ptr)

interface Row {
  readonly name: string
  readonly ms: number
  readonly tokensPerSecond: number
  readonly gbPerSecond?: number
  readonly ofBandwidth?: number
}
const results: Row[] = [{ name: `copy 256 MiB, ${threads} threads (ceiling)`, ms: copy.ms, tokensPerSecond: 0, gbPerSecond: bandwidth, ofBandwidth: 1 }]

for (const promptLength of [128, 512, 1024]) {
  const prompt = Array.from({ length: promptLength }, (_, i) => 3 + ((i * 7919) % 31000))
  const plan = contiguousPlan([prompt], [0], blockSize, Math.ceil(promptLength / blockSize))
  const t = time(() => run(plan), 3, 1)
  results.push({ name: `prefill ${promptLength} tokens`, ms: t.ms, tokensPerSecond: (promptLength / t.ms) * 1000 })
}

for (const context of [128, 1024]) {
  const blocksPerSeq = Math.ceil((context + 1) / blockSize)
  const prompt = Array.from({ length: context }, (_, i) => 3 + i)
  run(contiguousPlan([prompt], [0], blockSize, blocksPerSeq))
  const step = contiguousPlan([[5]], [context], blockSize, blocksPerSeq)
  const t = time(() => run(step), 20, 3)
  const bytes = weightBytesPerToken() + kvBytesPerToken(context + 1)
  const gbPerSecond = bytes / (t.ms * 1e6)
  results.push({
    name: `decode batch 1, context ${context}`,
    ms: t.ms,
    tokensPerSecond: 1000 / t.ms,
    gbPerSecond,
    ofBandwidth: gbPerSecond / bandwidth
  })
}
await Effect.runPromise(executor.close())

console.log(`${"benchmark".padEnd(34)} ${"ms".padStart(9)} ${"tokens/s".padStart(10)} ${"GB/s".padStart(7)} ${"of copy bw".padStart(11)}`)
for (const r of results) {
  const gb = r.gbPerSecond === undefined ? "-" : r.gbPerSecond.toFixed(2)
  const of = r.ofBandwidth === undefined ? "-" : `${(100 * r.ofBandwidth).toFixed(0)}%`
  const tps = r.tokensPerSecond ? r.tokensPerSecond.toFixed(1) : "-"
  console.log(`${r.name.padEnd(34)} ${r.ms.toFixed(2).padStart(9)} ${tps.padStart(10)} ${gb.padStart(7)} ${of.padStart(11)}`)
}
console.log(`\ndecode reads ${(weightBytesPerToken() / 1e6).toFixed(0)} MB of f32 weights per step (+ KV); the copy moves 2 x 256 MiB`)
recordResults("model-cpu.json", "bun bench/model-cpu.ts", { threads, results })
