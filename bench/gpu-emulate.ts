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
import { logitsOf } from "../src/engine/executor.ts"
import { contiguousPlan } from "../src/engine/contiguousPlan.ts"
import { join } from "node:path"

const wasm = await createWasmProvider({ threads: 1 })
let capturing: Array<() => void> | null = null
const graphs = new Map<number, Array<() => void>>()
let nextGraph = 1
const run = (op: () => void) => (capturing ? capturing.push(op) : op())
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
  write: (p: number, s: any, d: any) => { if (capturing) throw new Error("write during capture"); base.write(p, s, d) },
  read(p: number, d: any, t: any) { if (this.readInterceptor?.(p, d, t)) return; if (capturing) throw new Error("read during capture"); base.read(p, d, t) },
  get usedBytes() { return wasm.memory.usedBytes },
  readInterceptor: undefined,
  allocPinned: (bytes: number) => { const ptr = nextPinned; nextPinned += 2 ** 32; const buffer = new ArrayBuffer(bytes); pinned.set(ptr, buffer); return { ptr, buffer } },
  freePinned: (b: any) => pinned.delete(b.ptr),
  writeAsync: (ptr: number, src: number, bytes: number) => { const [buf, off] = find(src); run(() => wasm.memory.write(ptr, new Int32Array(buf, off, bytes / 4))) },
  readAsync: (dst: number, ptr: number, n: number) => { const [buf, off] = find(dst); run(() => wasm.memory.read(ptr, new Float32Array(buf, off, n))) },
  readBytesAsync: (dst: number, ptr: number, bytes: number) => { const [buf, off] = find(dst); run(() => wasm.memory.read(ptr, new Int32Array(buf, off, bytes / 4))) }
}
const fake: any = {
  name: "cuda", kernels, memory, parallelism: 1, device: "emulated", close: () => {}, synchronize: () => {},
  graphs: { begin: () => { capturing = [] }, end: () => { const id = nextGraph++; graphs.set(id, capturing!); capturing = null; return id }, launch: (g: number) => graphs.get(g)!.forEach((op) => op()), destroy: (g: number) => graphs.delete(g) },
  // the stand-in runs every call as it is made: each event is reached at once
  events: { create: () => 1, record: () => {}, elapsed: () => 0, query: () => true, destroy: () => {} }
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
let maxDiff = 0
outs[0].forEach((a, i) => a?.forEach((v, j) => (maxDiff = Math.max(maxDiff, Math.abs(v - (outs[1][i]?.[j] ?? v))))))
const sameIds = ids[0].every((a, i) => a.join() === ids[1][i].join())
console.log("3-seq graphs vs eager max diff", maxDiff, "argmax equal", sameIds, outs[0].length, outs[1][5]?.length)
ok &&= maxDiff === 0 && sameIds && outs[1][1] === undefined
console.log(ok ? "EMULATION PASS" : "EMULATION FAIL")
process.exit(ok ? 0 : 1)
