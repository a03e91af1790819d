/**
 * First timings of the CUDA kernels, through the provider as the stages call them (so each
 * figure includes the bun:ffi call and the launch), beside the ceiling each is bound by:
 * bytes over the device-to-device copy bandwidth measured here, or FLOPs over the rate of a
 * large cuBLAS bf16 GEMM measured here. These are the baseline for the speed work (CUDA
 * graphs, flash-decoding, tensor-core attention), not tuned numbers.
 *
 *   make -C cuda && bun bench/gpu-kernels.ts [--out DIR]   (writes gpu-kernels-<device>.json)
 *
 * Timing: 3 warm-up calls, then 5 repeats of `iters` calls between two synchronizations;
 * the median per call. Inputs are random (never zeros), one set per case, not rotated: the
 * memory-bound cases move 30 MB to 270 MB per call, against an L2 of 50 MB, so the cache
 * helps the smaller ones somewhat.
 */
import { mkdirSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { createCudaProvider } from "../src/kernels/cuda/provider.ts"
import { attentionQueries } from "./lib/attentionQueries.ts"
import { timeOnDevice } from "./lib/gpuTiming.ts"
import { deviceSlug } from "./lib/results.ts"

const argValue = (flag: string): string | undefined => {
  const i = process.argv.indexOf(flag)
  return i >= 0 ? process.argv[i + 1] : undefined
}
const outDir = argValue("--out") ?? process.env.OUT ?? join(process.cwd(), "bench", "results")

const gpu = await createCudaProvider()
const { kernels, memory } = gpu

const randomFloats = (n: number): number => {
  const ptr = memory.alloc(n * memory.floatBytes)
  const chunk = new Float32Array(Math.min(n, 1 << 22))
  for (let done = 0; done < n; done += chunk.length) {
    const count = Math.min(chunk.length, n - done)
    for (let i = 0; i < count; i++) chunk[i] = Math.random() * 2 - 1
    memory.write(ptr + done * memory.floatBytes, chunk.subarray(0, count))
  }
  return ptr
}
const intsOf = (values: ArrayLike<number>): number => {
  const data = Int32Array.from(values)
  const ptr = memory.alloc(data.byteLength)
  memory.write(ptr, data)
  return ptr
}

const time = (fn: () => void, iters: number): number => timeOnDevice(gpu, fn, iters)

interface Row {
  readonly name: string
  readonly ms: number
  readonly bytes?: number
  readonly flops?: number
  /** achieved / ceiling */
  readonly ofCeiling: number
  readonly note?: string
}

// ---- ceilings ----
const copyElements = 128 << 20 // 256 MiB of bf16
const copySrc = randomFloats(copyElements)
const copyDst = memory.alloc(copyElements * 2)
const copyMs = time(() => kernels.copy(copyDst, copySrc, copyElements), 10)
const bandwidth = (2 * copyElements * 2) / (copyMs / 1e3) // bytes read + written per second
memory.free(copySrc)
memory.free(copyDst)

const G = 8192
const [ga, gb, gc] = [randomFloats(G * G), randomFloats(G * G), memory.alloc(G * G * 2)]
const gemmMs = time(() => kernels.matmul(gc, ga, gb, G, G, G), 10)
const gemmRate = (2 * G ** 3) / (gemmMs / 1e3)
for (const ptr of [ga, gb, gc]) memory.free(ptr)

const rows: Row[] = []
const memoryBound = (name: string, bytes: number, fn: () => void, iters: number, note?: string) => {
  const ms = time(fn, iters)
  rows.push({ name, ms, bytes, ofCeiling: bytes / (ms / 1e3) / bandwidth, ...(note ? { note } : {}) })
}
const computeBound = (name: string, flops: number, fn: () => void, iters: number, note?: string) => {
  const ms = time(fn, iters)
  rows.push({ name, ms, flops, ofCeiling: flops / (ms / 1e3) / gemmRate, ...(note ? { note } : {}) })
}

// ---- one call's overhead: bun:ffi + launch of a kernel that does nothing ----
{
  const [a, b] = [randomFloats(64), randomFloats(64)]
  const ms = time(() => kernels.add_bias(a, b, 1, 64), 2000)
  rows.push({ name: "add_bias 1x64 (call + launch overhead)", ms, ofCeiling: Number.NaN, note: "per-kernel cost a CUDA graph removes" })
}

// ---- linear layers (cuBLAS) ----
for (const [M, N, K] of [[1, 4096, 4096], [8, 14336, 4096], [2048, 4096, 4096]] as const) {
  const [x, w, out] = [randomFloats(M * K), randomFloats(N * K), memory.alloc(M * N * 2)]
  const bytes = 2 * (M * K + N * K + M * N)
  const flops = 2 * M * N * K
  if (M <= 8) memoryBound(`matmul M=${M} N=${N} K=${K}`, bytes, () => kernels.matmul(out, x, w, M, N, K), 200)
  else computeBound(`matmul M=${M} N=${N} K=${K}`, flops, () => kernels.matmul(out, x, w, M, N, K), 50)
  for (const ptr of [x, w, out]) memory.free(ptr)
}

// ---- rows ----
{
  const [T, H] = [2048, 4096]
  const [x, w, out] = [randomFloats(T * H), randomFloats(H), memory.alloc(T * H * 2)]
  const res = memory.alloc(T * H * 4)  // the f32 residual stream: starts as x, then accumulates
  kernels.add_rmsnorm(out, res, res, x, w, T, H, 1e-6, 0)
  memoryBound(`rmsnorm T=${T} H=${H}`, 2 * 2 * T * H, () => kernels.rmsnorm(out, x, w, T, H, 1e-6), 100)
  // reads the residual and x, writes the residual and out
  memoryBound(`add_rmsnorm T=${T} H=${H}`, (4 + 2 + 4 + 2) * T * H, () => kernels.add_rmsnorm(out, res, res, x, w, T, H, 1e-6, 1), 100)
  const gateUp = randomFloats(T * 2 * H)
  memoryBound(`silu_mul T=${T} I=${H}`, 2 * 3 * T * H, () => kernels.silu_mul(out, gateUp, T, H), 100)
  for (const ptr of [x, res, w, out, gateUp]) memory.free(ptr)
}

// ---- attention over a paged cache: Llama-3-8B heads (32 q, 8 kv, D 128), blocks of 16 ----
const attention = (label: string, seqs: ReadonlyArray<[number, number]>, iters: number) => {
  const [Hq, Hkv, D, blockSize] = [32, 8, 128, 16]
  const maxBlocks = Math.max(...seqs.map(([start, n]) => Math.ceil((start + n) / blockSize)))
  const numBlocks = seqs.length * maxBlocks
  const { queryToSeq, positions } = attentionQueries(seqs)
  const T = positions.length
  const stride = (Hq + 2 * Hkv) * D
  const [qkv, kc, vc, out] = [randomFloats(T * stride), randomFloats(numBlocks * blockSize * Hkv * D), randomFloats(numBlocks * blockSize * Hkv * D), memory.alloc(T * Hq * D * 2)]
  const [q2s, pos, tables] = [intsOf(queryToSeq), intsOf(positions), intsOf(Array.from({ length: numBlocks }, (_, b) => b))]
  const keys = seqs.reduce((n, [start, count]) => n + start + count, 0)
  const run = () => kernels.paged_attention(out, qkv, kc, vc, q2s, pos, tables, T, Hq, Hkv, D, stride, maxBlocks, blockSize, 1 / Math.sqrt(D), Math.max(...seqs.map(([, n]) => n)))
  if (T === seqs.length) memoryBound(`paged_attention ${label}`, 2 * 2 * keys * Hkv * D, run, iters, "decode: K and V read once per kv head")
  else {
    // causal: query at position p sees p + 1 keys; QK^T and PV are 2 FLOPs per multiply-add each
    const pairs = positions.reduce((n, p) => n + p + 1, 0)
    computeBound(`paged_attention ${label}`, 4 * pairs * Hq * D, run, iters, "CUDA cores, no tensor cores yet: the ceiling is the bf16 GEMM rate")
  }
  for (const ptr of [qkv, kc, vc, out, q2s, pos, tables]) memory.free(ptr)
}
attention("decode 32 seqs x 2048 context", Array.from({ length: 32 }, () => [2047, 1] as [number, number]), 50)
attention("decode 1 seq x 8192 context", [[8191, 1]], 50)
attention("prefill 1 seq x 2048 tokens", [[0, 2048]], 10)

gpu.close()
const result = { device: gpu.device, date: new Date().toISOString(), ceilings: { copyBytesPerSecond: bandwidth, gemmFlopsPerSecond: gemmRate }, rows }
const slug = deviceSlug(gpu.device)
mkdirSync(outDir, { recursive: true })
const path = join(outDir, `gpu-kernels-${slug}.json`)
writeFileSync(path, `${JSON.stringify(result, null, 2)}\n`)

console.log(`\nCUDA kernels on ${gpu.device}: ceilings ${(bandwidth / 1e12).toFixed(2)} TB/s copy (read + write), ${(gemmRate / 1e12).toFixed(0)} TFLOP/s bf16 GEMM 8192^3`)
for (const r of rows) {
  const rate = r.bytes ? `${(r.bytes / (r.ms / 1e3) / 1e9).toFixed(0)} GB/s` : r.flops ? `${(r.flops / (r.ms / 1e3) / 1e12).toFixed(1)} TFLOP/s` : ""
  const share = Number.isFinite(r.ofCeiling) ? `${(100 * r.ofCeiling).toFixed(1)}% of ceiling` : ""
  console.log(`  ${r.name.padEnd(48)} ${(r.ms * 1e3).toFixed(1).padStart(9)} us  ${rate.padStart(14)}  ${share.padStart(18)}  ${r.note ?? ""}`)
}
console.log(`wrote ${path}`)
