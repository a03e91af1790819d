/**
 * The engine's deciding half on the CPU, without a model: the sampler over one vocabulary
 * row, and a scheduler step (schedule + plan + update) for a batch of decodes. Each figure
 * sits beside its floor: for the sampler, reading the row once (any sampler reads every
 * logit) and reading it plus one exp per entry (any temperature sampler computes them);
 * for a step, building its StepPlan alone.
 *
 *   bun bench/engine.ts        (writes bench/results/engine-cpu.json)
 */
import { mkdirSync, writeFileSync } from "node:fs"
import os from "node:os"
import { hashModelLogits } from "../src/engine/hashExecutor.ts"
import { KVCacheManager } from "../src/engine/kvCacheManager.ts"
import { SchedulerCore } from "../src/engine/scheduler.ts"
import { buildStepPlan } from "../src/engine/stepPlanBuilder.ts"
import { Sampler } from "../src/sampling/sampler.ts"
import { decodeSamplingParamsSync } from "../src/sampling/SamplingParams.ts"
import { makeSamplingState } from "../src/sampling/samplingState.ts"

interface Result {
  readonly name: string
  /** median and fastest microseconds per call */
  readonly us: number
  readonly minUs: number
  /** the floor this figure is measured against, and how many times the floor it takes */
  readonly floor?: string
  readonly timesFloor?: number
}

const time = (fn: () => void, repeats: number, warmup = 5) => {
  for (let i = 0; i < warmup; i++) fn()
  const samples = Array.from({ length: repeats }, () => {
    const start = performance.now()
    fn()
    return (performance.now() - start) * 1000
  }).sort((a, b) => a - b)
  return { us: samples[Math.floor(repeats / 2)], minUs: samples[0] }
}

const results: Result[] = []
const record = (name: string, t: { us: number; minUs: number }, floor?: { name: string; us: number }) => {
  const result = { name, ...t, ...(floor && { floor: floor.name, timesFloor: t.us / floor.us }) }
  results.push(result)
  const extra = floor ? `  (${(t.us / floor.us).toFixed(2)}x ${floor.name})` : ""
  console.log(`${name.padEnd(48)} ${t.us.toFixed(1).padStart(9)} us${extra}`)
}

for (const V of [32000, 128256]) {
  const logits = hashModelLogits([1, 2, 3], V)
  const scratch = new Float64Array(V)
  const read = time(() => {
    for (let i = 0; i < V; i++) scratch[i] = logits[i]
  }, 200)
  const readExp = time(() => {
    for (let i = 0; i < V; i++) scratch[i] = Math.exp(logits[i] - 4)
  }, 200)
  record(`row read, V=${V}`, read)
  record(`row read + exp, V=${V}`, readExp)
  const sampler = new Sampler(V)
  const cases: Array<[string, Record<string, unknown>]> = [
    ["greedy", { temperature: 0 }],
    ["temperature 0.8", { temperature: 0.8 }],
    ["top_k 50", { temperature: 0.8, top_k: 50 }],
    ["top_p 0.9", { temperature: 0.8, top_p: 0.9 }],
    ["top_k 50 + top_p 0.9 + penalties", { temperature: 0.8, top_k: 50, top_p: 0.9, frequency_penalty: 0.5, repetition_penalty: 1.1 }],
  ]
  for (const [label, raw] of cases) {
    const state = makeSamplingState(decodeSamplingParamsSync(raw), {
      promptTokenIds: Array.from({ length: 500 }, (_, i) => (i * 7919) % V),
      eosTokenIds: [2],
      seed: 1,
      sampleIndex: 0,
    })
    let position = 0
    const t = time(() => sampler.sample(logits, 0, state, position++), 200)
    record(`sample ${label}, V=${V}`, t, label === "greedy" ? { name: "row read", us: read.us } : { name: "row read + exp", us: readExp.us })
  }
}

for (const batch of [16, 256]) {
  const kv = new KVCacheManager({ numBlocks: batch * 64, blockSize: 16, enablePrefixCaching: true })
  const core = new SchedulerCore({ maxNumSeqs: batch, maxNumBatchedTokens: 8192, maxModelLen: 1024, enableChunkedPrefill: true }, kv)
  for (let r = 0; r < batch; r++) core.addRequest(`r${r}`, Array.from({ length: 100 + r }, (_, i) => (i * 31 + r) % 32000))
  const prefill = core.schedule()
  core.update(prefill, prefill.sampled.map(() => 7))
  let token = 0
  // decodes until ~900 tokens: requests stay within maxModelLen over the timed steps
  const step = time(() => {
    const out = core.schedule()
    core.update(out, out.sampled.map(() => token++ % 32000))
  }, 500)
  const out = core.schedule()
  const plan = time(() => buildStepPlan(out.scheduled, out.plan.seqs.map((s) => s.numScheduledTokens), kv), 500)
  record(`plan only, ${batch} decodes`, plan)
  record(`schedule + update, ${batch} decodes`, step, { name: "plan only", us: plan.us })
}

mkdirSync(new URL("./results/", import.meta.url), { recursive: true })
writeFileSync(
  new URL("./results/engine-cpu.json", import.meta.url),
  JSON.stringify({ cpu: os.cpus()[0]?.model, bun: Bun.version, date: new Date().toISOString(), results }, null, 2) + "\n",
)
