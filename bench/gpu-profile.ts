/**
 * Where a decode step's (or a prefill's) time goes, kernel by kernel, on the Llama-3-8B shape (random bf16
 * weights made on the device). nsys makes no reports on the lent machines, so this measures
 * with CUDA graphs and events instead:
 *   1. one step runs eagerly with every kernel call recorded (name and arguments);
 *   2. each recorded call is captured `reps` times into a graph of its own and replayed between
 *      two events: its time inside a graph, launch gap included, as a captured step pays it;
 *   3. the whole recorded step is captured once and replayed: the step as the decode graphs run
 *      it, to compare with the sum of its parts;
 *   4. for each group, the step without that group's calls: the step's time less that is what the
 *      group costs inside the step, where kernels overlap (outputs are garbage then; the times of
 *      these kernels do not depend on their values).
 * Calls are grouped by kernel and, for matmul, by shape (M x N x K); each group gets its time
 * per step, its share, and for matmul the bytes of weights read per second.
 *
 *   bun bench/gpu-profile.ts [--batches 1,64] [--context 256] [--prefill 4096] [--reps 20] [--out DIR]
 */
import { Effect } from "effect"
import { writeFileSync, mkdirSync } from "node:fs"
import { join } from "node:path"
import { contiguousPlan } from "../src/engine/contiguousPlan.ts"
import { loadModelExecutor } from "../src/engine/modelExecutor.ts"
import type { KernelName, Kernels } from "../src/kernels/catalog.ts"
import type { StepPlan } from "../src/stages/stepPlan.ts"
import { deviceDummyWeights } from "../src/kernels/cuda/dummyWeights.ts"
import { createCudaProvider, type CudaKernelProvider } from "../src/kernels/cuda/provider.ts"
import { readModelConfig } from "../src/model/config.ts"
import { llama3_8bConfig, writeBenchModel } from "./lib/dummyModel.ts"
import { commit, deviceSlug } from "./lib/results.ts"

const argValue = (flag: string, fallback: string): string => {
  const i = process.argv.indexOf(flag)
  return i >= 0 ? process.argv[i + 1] : fallback
}
const batches = argValue("--batches", "1,64").split(",").map(Number)
const context = Number(argValue("--context", "256"))
const reps = Number(argValue("--reps", "20"))
const prefills = argValue("--prefill", "").split(",").filter(Boolean).map(Number)
const outDir = argValue("--out", process.env.OUT ?? join(process.cwd(), "bench", "results"))
const blockSize = 16

const gpu = await createCudaProvider()
const calls: Array<{ name: KernelName; args: number[] }> = []
let recording = false
// the provider the executor runs on: the GPU's, with every kernel call noted while recording
const recorder = new Proxy(gpu.kernels, {
  get: (kernels, name: KernelName) => (...args: number[]) => {
    if (recording) calls.push({ name, args })
    ;(kernels[name] as (...a: number[]) => void)(...args)
  }
}) as Kernels
const provider: CudaKernelProvider = { ...gpu, kernels: recorder }

const dir = writeBenchModel(llama3_8bConfig)
const maxSeqs = Math.max(...batches)
const blocksPerSeq = Math.ceil(Math.max(context + 1, ...prefills) / blockSize)
const executor = await loadModelExecutor(dir, {
  provider,
  loadFormat: "dummy",
  weights: deviceDummyWeights(readModelConfig(dir), gpu.memory),
  numBlocks: maxSeqs * blocksPerSeq,
  blockSize,
  maxNumSeqs: maxSeqs,
  maxModelLen: blocksPerSeq * blockSize,
  maxNumBatchedTokens: Math.max(8192, maxSeqs, ...prefills)
})

const [start, end] = [gpu.events.create(), gpu.events.create()]
/** milliseconds per run of `enqueue` inside a graph, `reps` runs per graph, median of 5 replays */
const timeInGraph = (enqueue: () => void): number => {
  gpu.graphs.begin()
  for (let r = 0; r < reps; r++) enqueue()
  const graph = gpu.graphs.end()
  gpu.graphs.launch(graph)
  const samples: number[] = []
  for (let i = 0; i < 5; i++) {
    gpu.events.record(start)
    gpu.graphs.launch(graph)
    gpu.events.record(end)
    samples.push(gpu.events.elapsed(start, end) / reps)
  }
  gpu.graphs.destroy(graph)
  return samples.sort((a, b) => a - b)[2]
}

interface Group {
  readonly kernel: string
  calls: number
  ms: number
  /** matmul: bytes of weights read per step */
  weightBytes: number
  /** the step's time less the step's without this group's calls */
  inStepMs?: number
}
const results: Array<{ step: string; stepMs: number; sumMs: number; groups: Group[] }> = []
const token = (s: number, j: number) => 3 + ((s * 7919 + j * 104729) % 100000)

/** a call's group: the kernel, and for matmul its shape */
const keyOf = (call: { name: KernelName; args: number[] }): string => (call.name === "matmul" ? `matmul ${call.args.slice(-3).join("x")}` : call.name)

/** runs `plan` once recording its kernels, then times them one by one and all together */
const profile = async (name: string, plan: StepPlan) => {
  calls.length = 0
  recording = true
  await Effect.runPromise(executor.execute({ ...plan, hostLogits: false }))
  recording = false
  const step = calls.slice()
  const run = (call: { name: KernelName; args: number[] }) => (gpu.kernels[call.name] as (...a: number[]) => void)(...call.args)
  const stepMs = timeInGraph(() => step.forEach(run))
  // bf16 weights a projection reads, from its trailing scalars (see the catalog)
  const weightBytesOf = ({ name, args }: { name: KernelName; args: number[] }): number => {
    const [, b, c, d, e] = args.slice(-5)
    if (name === "matmul") return 2 * d * e // M, N, K
    if (name === "qkv_rope_kv_write" || name === "add_rmsnorm_qkv_rope_kv_write") return 2 * (c + 2 * d) * e * b // T, K, Hq, Hkv, D
    if (name === "gate_up_silu" || name === "add_rmsnorm_gate_up_silu") return 2 * 2 * d * e // T, I, K
    return 0
  }
  const groups = new Map<string, Group>()
  for (const call of step) {
    // matmul's scalars are M, N, K (the last three): group by shape, and count the weights it reads
    const key = keyOf(call)
    const group = groups.get(key) ?? { kernel: key, calls: 0, ms: 0, weightBytes: 0 }
    group.calls++
    group.ms += timeInGraph(() => run(call))
    group.weightBytes += weightBytesOf(call)
    groups.set(key, group)
  }
  for (const group of groups.values()) {
    const rest = step.filter((call) => keyOf(call) !== group.kernel)
    group.inStepMs = stepMs - timeInGraph(() => rest.forEach(run))
  }
  const sorted = [...groups.values()].sort((a, b) => b.ms - a.ms)
  const sumMs = sorted.reduce((n, g) => n + g.ms, 0)
  results.push({ step: name, stepMs, sumMs, groups: sorted })
  console.log(`\n${name}: step in one graph ${stepMs.toFixed(3)} ms; sum of the kernels, each in its own graph, ${sumMs.toFixed(3)} ms (${step.length} kernels)`)
  console.log(`${"kernel".padEnd(30)}${"calls".padStart(6)}${"us/step".padStart(10)}${"share".padStart(8)}${"GB/s".padStart(8)}${"in step".padStart(10)}`)
  for (const g of sorted) {
    const rate = g.weightBytes ? ((g.weightBytes / (g.ms / 1e3)) / 1e9).toFixed(0) : ""
    console.log(`${g.kernel.padEnd(30)}${String(g.calls).padStart(6)}${(g.ms * 1e3).toFixed(1).padStart(10)}${`${((100 * g.ms) / sumMs).toFixed(1)}%`.padStart(8)}${rate.padStart(8)}${(g.inStepMs! * 1e3).toFixed(1).padStart(10)}`)
  }
}

for (const N of prefills) {
  const prompt = Array.from({ length: N }, (_, j) => token(0, j))
  await profile(`prefill ${N} tokens`, contiguousPlan([prompt], [0], blockSize, blocksPerSeq))
}
for (const batch of batches) {
  const prompts = Array.from({ length: batch }, (_, s) => Array.from({ length: context }, (_, j) => token(s, j)))
  for (let s0 = 0; s0 < batch; s0 += 16) {
    const group = prompts.slice(s0, s0 + 16)
    const plan = contiguousPlan(group, group.map(() => 0), blockSize, blocksPerSeq)
    // each group writes its own sequences' blocks: shift their block tables
    const shifted = { ...plan, blockTables: plan.blockTables.map((b) => b + s0 * blocksPerSeq), slotMapping: plan.slotMapping.map((s) => s + s0 * blocksPerSeq * blockSize) }
    await Effect.runPromise(executor.execute({ ...shifted, hostLogits: false }))
  }
  await profile(`decode batch ${batch}, context ${context}`, contiguousPlan(prompts.map((_, s) => [token(s, context)]), prompts.map(() => context), blockSize, blocksPerSeq))
}
gpu.events.destroy(start)
gpu.events.destroy(end)
await Effect.runPromise(executor.close())
gpu.close()

const slug = deviceSlug(gpu.device)
mkdirSync(outDir, { recursive: true })
const path = join(outDir, `gpu-profile-${slug}.json`)
writeFileSync(path, `${JSON.stringify({ device: gpu.device, commit: commit(), date: new Date().toISOString(), command: `bun bench/gpu-profile.ts ${process.argv.slice(2).join(" ")}`.trim(), context, reps, results }, null, 2)}\n`)
console.log(`wrote ${path}`)
