/**
 * CPU kernel benchmark: a 4096 x 4096 f32 mat-vec (a decode step's typical linear layer) as a
 * plain TypeScript loop and as the WASM kernel on 1 and 2 threads, beside the ceiling it is
 * bound by: memory bandwidth, measured STREAM-style as a 256 MiB copy on as many threads.
 * A copy both reads and writes, so a read-only stream (the mat-vec's weights) can come out
 * somewhat above 100% of it.
 *
 *   bun bench/kernels.ts        (writes bench/results/kernels-cpu.json)
 */
import { createWasmProvider, type WasmKernelProvider } from "../src/kernels/wasm/provider.ts"
import { filled, recordResults, time } from "./lib/results.ts"

const N = 4096
const K = 4096
const copyBytes = 256 * 1024 * 1024

interface Result {
  readonly name: string
  /** median and fastest milliseconds per call */
  readonly ms: number
  readonly minMs: number
  /** bytes moved per second (GB = 1e9 bytes): weights read for mat-vecs, read + written for copies */
  readonly gbPerSecond?: number
  /** gbPerSecond as a fraction of the copy bandwidth measured here on as many threads: how close to the memory ceiling */
  readonly ofCeiling?: number
  readonly note?: string
}

const weights = filled(N * K, 1)
const x = filled(K, 2)
const weightBytes = N * K * 4

function matVecTs(out: Float32Array, w: Float32Array, v: Float32Array): void {
  for (let n = 0; n < N; n++) {
    let sum = 0
    const row = n * K
    for (let k = 0; k < K; k++) sum += w[row + k] * v[k]
    out[n] = sum
  }
}

const one = await createWasmProvider({ threads: 1 })
const two = await createWasmProvider({ threads: 2 })
const results: Result[] = []

// the ceiling: STREAM copy, bytes read + bytes written per second. The copy kernel runs on
// one thread; gather_rows with identity indices is the same copy split over both threads.
const src = filled(copyBytes / 4, 3)
const dst = new Float32Array(copyBytes / 4)
const copyJs = time(() => dst.set(src), 10)
const copyRows = 4096
const identity = Int32Array.from({ length: copyRows }, (_, r) => r)
const wasmCopy = (p: WasmKernelProvider, copy: (out: number, x: number, rows: number) => void) => {
  const [a, b, rows] = [p.memory.alloc(copyBytes), p.memory.alloc(copyBytes), p.memory.alloc(copyRows * 4)]
  p.memory.f32View(a, copyBytes / 4).set(src)
  p.memory.f32View(b, copyBytes / 4).fill(0)
  p.memory.write(rows, identity)
  const t = time(() => copy(b, a, rows), 10)
  for (const ptr of [a, b, rows]) p.memory.free(ptr)
  return t
}
const copyOne = wasmCopy(one, (out, x) => one.kernels.copy(out, x, copyBytes / 4))
const copyTwo = wasmCopy(two, (out, x, rows) => two.kernels.gather_rows(out, x, rows, copyRows, copyBytes / 4 / copyRows))
const bandwidth = (t: { ms: number }) => (2 * copyBytes) / (t.ms * 1e6)
const ceilings = [0, Math.max(bandwidth(copyJs), bandwidth(copyOne)), bandwidth(copyTwo)]
const streaming = (name: string, threads: number, t: { ms: number; minMs: number }, bytes: number, note?: string) => {
  const gbPerSecond = bytes / (t.ms * 1e6)
  results.push({ name, ...t, gbPerSecond, ofCeiling: gbPerSecond / ceilings[threads], ...(note ? { note } : {}) })
}
streaming("copy 256 MiB, Float32Array.set", 1, copyJs, 2 * copyBytes, "ceiling, 1 thread: read + write")
streaming("copy 256 MiB, WASM copy, 1 thread", 1, copyOne, 2 * copyBytes, "ceiling, 1 thread: read + write")
streaming("copy 256 MiB, WASM gather_rows, 2 threads", 2, copyTwo, 2 * copyBytes, "ceiling, 2 threads: read + write")

const wasmMatmul = (p: WasmKernelProvider, M: number) => {
  const { memory, kernels } = p
  const [w, xs, out] = [memory.alloc(weightBytes), memory.alloc(M * K * 4), memory.alloc(M * N * 4)]
  memory.write(w, weights)
  for (let m = 0; m < M; m++) memory.write(xs + m * K * 4, x)
  const t = time(() => kernels.matmul(out, xs, w, M, N, K), 20)
  for (const ptr of [w, xs, out]) memory.free(ptr)
  return t
}
const tsOut = new Float32Array(N)
streaming("mat-vec 4096x4096, TypeScript loop", 1, time(() => matVecTs(tsOut, weights, x), 5, 1), weightBytes)
streaming("mat-vec 4096x4096, WASM 1 thread", 1, wasmMatmul(one, 1), weightBytes)
streaming("mat-vec 4096x4096, WASM 2 threads", 2, wasmMatmul(two, 1), weightBytes)
streaming("mat-mul M=8 4096x4096, WASM 1 thread", 1, wasmMatmul(one, 8), weightBytes, "8 rows of x per weight read")
streaming("mat-mul M=8 4096x4096, WASM 2 threads", 2, wasmMatmul(two, 8), weightBytes, "8 rows of x per weight read")

// what a split costs: a 64x64 mat-vec, always split over 2 threads, against the same on 1
const splitAlways = await createWasmProvider({ threads: 2, minSplitWork: 0 })
for (const [label, p] of [["1 thread", one], ["2 threads, split", splitAlways]] as const) {
  const [w, xs, out] = [p.memory.alloc(64 * 64 * 4), p.memory.alloc(64 * 4), p.memory.alloc(64 * 4)]
  const t = time(() => p.kernels.matmul(out, xs, w, 1, 64, 64), 5000, 5000)
  results.push({ name: `mat-vec 64x64, WASM ${label}`, ...t, note: "per-call overhead" })
}
splitAlways.close()
one.close()
two.close()

const cell = (v: number | undefined, digits: number, width: number) => (v === undefined ? "-" : v.toFixed(digits)).padStart(width)
console.log(`${"benchmark".padEnd(42)} ${"ms".padStart(9)} ${"min ms".padStart(9)} ${"GB/s".padStart(7)} ${"ceiling".padStart(8)}  note`)
for (const r of results) {
  const of = r.ofCeiling === undefined ? "-".padStart(8) : `${(100 * r.ofCeiling).toFixed(0)}%`.padStart(8)
  console.log(`${r.name.padEnd(42)} ${cell(r.ms, 4, 9)} ${cell(r.minMs, 4, 9)} ${cell(r.gbPerSecond, 2, 7)} ${of}  ${r.note ?? ""}`)
}

recordResults("kernels-cpu.json", "bun bench/kernels.ts", results)
