/**
 * The CUDA decode runner (src/kernels/cuda/decodeRunner.ts) checked on any CPU: a stand-in for
 * the CUDA provider runs the WASM kernels, and its "graph capture" records every kernel call and
 * pinned copy as a closure that a "replay" runs again, reading the pinned plan arrays afresh.
 * What a real graph would get wrong shows here too: a host value baked into a capture, a plan
 * array not copied into the workspace before the replay, padding rows that leak into the
 * returned logits. Checks the fixture models in every mode, and 3 sequences (padded to the
 * bucket of 4) against the executor's own path, which must give identical logits.
 *
 *   bun bench/gpu-emulate.ts
 */
import { Effect } from "effect"
import type { DeviceMemory } from "../src/kernels/provider.ts"
import { createWasmProvider } from "../src/kernels/wasm/provider.ts"
import { cudaDecodeRunner, type DecodeMode } from "../src/kernels/cuda/decodeRunner.ts"
import { checkModel, fixtureNames, fixturesDir } from "./gpu-check-models.ts"
import { loadModelExecutor } from "../src/engine/modelExecutor.ts"
import { logitsOf, type ExecutorError, type StepOutput } from "../src/engine/executor.ts"
import { contiguousPlan } from "../src/engine/contiguousPlan.ts"
import { join } from "node:path"

const wasm = await createWasmProvider({ threads: 1 })
let capturing: Array<() => void> | null = null
const graphs = new Map<number, Array<() => void>>()
let nextGraph = 1
// The stream: every kernel and asynchronous copy waits here until the host waits for the device
// (an event query, a synchronize, a blocking read), as on a GPU still busy with the steps before.
// A pinned array rewritten before the copy that reads it has run shows as a wrong result.
const stream: Array<() => void> = []
const drain = () => stream.splice(0).forEach((op) => op())
const run = (op: () => void) => (capturing ? capturing.push(op) : stream.push(op))
const pinned = new Map<number, ArrayBuffer>()
let nextPinned = 2 ** 40
const find = (p: number): [ArrayBuffer, number] => {
  for (const [base, buf] of pinned) if (p >= base && p < base + buf.byteLength) return [buf, p - base]
  throw new Error("not pinned")
}
const base: DeviceMemory = wasm.memory
const kernels = new Proxy(wasm.kernels as any, { get: (t, name) => (...args: number[]) => run(() => t[name](...args)) })
const memory: any = {
  floatBytes: wasm.memory.floatBytes,
  alloc: (b: number) => wasm.memory.alloc(b),
  free: (p: number) => wasm.memory.free(p),
  // from pageable memory: the source is taken at the call, the copy runs in stream order
  write: (p: number, s: any, d: any) => { if (capturing) throw new Error("write during capture"); const copy = s.slice(); stream.push(() => base.write(p, copy, d)) },
  read(p: number, d: any, t: any) { if (this.readInterceptor?.(p, d, t)) return; if (capturing) throw new Error("read during capture"); drain(); base.read(p, d, t) },
  get usedBytes() { return wasm.memory.usedBytes },
  readInterceptor: undefined,
  allocPinned: (bytes: number) => { const ptr = nextPinned; nextPinned += 2 ** 32; const buffer = new ArrayBuffer(bytes); pinned.set(ptr, buffer); return { ptr, buffer } },
  freePinned: (b: any) => pinned.delete(b.ptr),
  writeAsync: (ptr: number, src: number, bytes: number) => { const [buf, off] = find(src); run(() => wasm.memory.write(ptr, new Int32Array(buf, off, bytes / 4))) },
  readAsync: (dst: number, ptr: number, n: number) => { const [buf, off] = find(dst); run(() => wasm.memory.read(ptr, new Float32Array(buf, off, n))) },
  readBytesAsync: (dst: number, ptr: number, bytes: number) => { const [buf, off] = find(dst); run(() => wasm.memory.read(ptr, new Int32Array(buf, off, bytes / 4))) }
}
const fake: any = {
  name: "cuda", kernels, memory, parallelism: 1, device: "emulated", close: drain, synchronize: drain,
  graphs: { begin: () => { capturing = [] }, end: () => { const id = nextGraph++; graphs.set(id, capturing!); capturing = null; return id }, launch: (g: number) => stream.push(...graphs.get(g)!), destroy: (g: number) => graphs.delete(g) },
  // an event is reached once the host waits for it, and with it everything before
  events: { create: () => 1, record: () => {}, elapsed: () => 0, query: () => (drain(), true), destroy: () => {} }
}
let ok = true
for (const mode of ["eager", "pinned", "graphs"] as DecodeMode[]) {
  for (const name of fixtureNames()) {
    const r = await checkModel(fake, name, undefined, { stepRunner: cudaDecodeRunner(fake, mode) })
    console.log(mode, name, r.pass, r.firstLogits.normwise, r.greedy.matched, r.long.matched, r.batched.first.matched, r.batched.long.matched, r.leakedBytes)
    ok &&= r.pass
  }
}
// 3 sequences (padded to bucket 4), graphs vs plain executor: logits must be identical
const dir = join(fixturesDir(), "llama3")
const outs: Array<Array<Float32Array | undefined>> = []
const ids: Int32Array[][] = []
for (const mode of ["eager", "graphs"] as DecodeMode[]) {
  const ex = await loadModelExecutor(dir, { provider: fake, maxNumSeqs: 4, maxModelLen: 256, stepRunner: cudaDecodeRunner(fake, mode) })
  const prompts = [[1, 5, 9], [2, 7, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18], [9]]
  let plan = contiguousPlan(prompts, [0, 0, 0], 16, 4)
  const got: Array<Float32Array | undefined> = []
  const gotIds: Int32Array[] = []
  const len = prompts.map((p) => p.length)
  for (let step = 0; step < 20; step++) {
    // every third graphs step leaves its logits on the device: only the argmax comes back
    const hostLogits = mode === "eager" || step % 3 !== 1
    const l = await Effect.runPromise(ex.execute({ ...plan, hostLogits }))
    got.push(hostLogits ? logitsOf(l).slice() : undefined)
    gotIds.push(l.argmax.slice())
    const next = prompts.map((_, s) => (step * 31 + s * 7) % ex.vocabSize)
    plan = contiguousPlan(next.map((t) => [t]), len.map((n) => n + step), 16, 4)
  }
  outs.push(got)
  ids.push(gotIds)
  await Effect.runPromise(ex.close())
}
// 3 sequences fed their own argmax: step after step with the ids from the host (eager), against
// graphs with each step launched before the one before is read, its ids taken on the device
// (previousTokens, take_tokens) and two steps in flight, each staged through its own slot
const greedy: number[][][] = []
for (const ahead of [false, true]) {
  const ex = await loadModelExecutor(dir, { provider: fake, maxNumSeqs: 4, maxModelLen: 256, stepRunner: cudaDecodeRunner(fake, ahead ? "graphs" : "eager") })
  const prompts = [[4, 8, 15], [16, 23, 42, 4, 8], [15]]
  const first = await Effect.runPromise(ex.execute(contiguousPlan(prompts, [0, 0, 0], 16, 4)))
  let last = Array.from(first.argmax)
  const got: number[][] = []
  let pending: Effect.Effect<StepOutput, ExecutorError> | undefined
  for (let step = 0; step < 12; step++) {
    const computed = prompts.map((p) => p.length + step)
    if (!ahead) {
      const out = await Effect.runPromise(ex.execute({ ...contiguousPlan(last.map((t) => [t]), computed, 16, 4), hostLogits: false }))
      last = Array.from(out.argmax)
      got.push(last)
      continue
    }
    const ids = step === 0 ? last : [0, 0, 0]
    const plan = { ...contiguousPlan(ids.map((t) => [t]), computed, 16, 4), hostLogits: false, ...(step > 0 && { previousTokens: Int32Array.of(0, 1, 2) }) }
    const wait = await Effect.runPromise(ex.launch!(plan))
    if (pending) got.push(Array.from((await Effect.runPromise(pending)).argmax))
    pending = wait
  }
  if (pending) got.push(Array.from((await Effect.runPromise(pending)).argmax))
  greedy.push(got)
  await Effect.runPromise(ex.close())
}
const sameGreedy = JSON.stringify(greedy[0]) === JSON.stringify(greedy[1])
console.log("greedy, ids from the host step after step vs taken on the device two steps in flight:", sameGreedy, greedy[0].length, greedy[1].length)
ok &&= sameGreedy && greedy[1].length === 12

let maxDiff = 0
outs[0].forEach((a, i) => a?.forEach((v, j) => (maxDiff = Math.max(maxDiff, Math.abs(v - (outs[1][i]?.[j] ?? v))))))
const sameIds = ids[0].every((a, i) => a.join() === ids[1][i].join())
console.log("3-seq graphs vs eager max diff", maxDiff, "argmax equal", sameIds, outs[0].length, outs[1][5]?.length)
ok &&= maxDiff === 0 && sameIds && outs[1][1] === undefined
console.log(ok ? "EMULATION PASS" : "EMULATION FAIL")
process.exit(ok ? 0 : 1)
