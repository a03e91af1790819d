import type { Pointer } from "bun:ffi"
import { describe, expect, it } from "vitest"
import type { LogprobsRowsArgs, NativeSampler, SampleRowsArgs } from "../ffi/sampling.ts"
import type { CudaMemory } from "../src/kernels/cuda/memory.ts"
import { cudaRowSampler } from "../src/kernels/cuda/rowSampler.ts"
import { decodeSamplingParamsSync } from "../src/sampling/SamplingParams.ts"
import { logitsEdits } from "../src/sampling/logitsEdits.ts"
import { rowTokenLogprobs } from "../src/sampling/logprobs.ts"
import { makeSamplingState, recordOutputToken } from "../src/sampling/samplingState.ts"
import type { RowSampling } from "../src/stages/stepPlan.ts"

/**
 * The CUDA row sampler's packing, on any CPU: device memory and pinned memory are stand-ins
 * (addressed byte ranges, copies done at once), and the native sampler reads its arguments
 * back from "device" memory as the kernel would, answering with a token made from them. What
 * it reads must be exactly the plan's rows and edits, step after step as the blocks grow.
 */
const fakeMemory = () => {
  // with `stream.deferred`, copies (and the stand-in kernels) queue up until `stream.drain()`, as
  // on a device still busy with the step before
  const stream = { deferred: false, queue: [] as Array<() => void>, drain() { this.queue.splice(0).forEach((op) => op()) } }
  const enqueue = (op: () => void) => (stream.deferred ? stream.queue.push(op) : op())
  const regions: Array<{ base: number; bytes: Uint8Array }> = []
  let next = 0x10000
  const region = (bytes: number) => {
    const r = { base: next, bytes: new Uint8Array(bytes) }
    next += bytes + 0x1000
    regions.push(r)
    return r
  }
  const at = (address: number, bytes: number): Uint8Array => {
    const r = regions.find((x) => address >= x.base && address + bytes <= x.base + x.bytes.length)
    if (r === undefined) throw new Error(`no region holds [${address}, +${bytes})`)
    return r.bytes.subarray(address - r.base, address - r.base + bytes)
  }
  const memory = {
    alloc: (bytes: number) => region(bytes).base,
    free: () => {},
    allocPinned: (bytes: number) => {
      const r = region(bytes)
      return { ptr: r.base, buffer: r.bytes.buffer }
    },
    freePinned: () => {},
    writeAsync: (dst: number, src: number, bytes: number) => enqueue(() => at(dst, bytes).set(at(src, bytes))),
    readBytesAsync: (dst: number, src: number, bytes: number) => enqueue(() => at(dst, bytes).set(at(src, bytes)))
  }
  return { memory: memory as unknown as CudaMemory, at, stream, enqueue }
}

describe("the CUDA row sampler's packing", () => {
  it("hands the kernel each step's rows and edits, and returns its tokens", () => {
    const { memory, at } = fakeMemory()
    const seen: Array<{ rows: RowSampling; editIds: number[] }> = []
    const read = (_ctx: Pointer, a: SampleRowsArgs) => {
      const f64 = (ptr: number) => Array.from(new Float64Array(at(ptr, 8 * a.rows).slice().buffer))
      const i32 = (ptr: number, n = a.rows) => Array.from(new Int32Array(at(ptr, 4 * n).slice().buffer))
      const u32 = (ptr: number) => Array.from(new Uint32Array(at(ptr, 4 * a.rows).slice().buffer))
      const offsets = a.editOffsets === 0 ? undefined : i32(a.editOffsets, 4 * a.rows + 1)
      const edits = offsets && {
        offsets: Int32Array.from(offsets),
        ids: Int32Array.from(i32(a.editIds, offsets.at(-1)!)),
        values: Float64Array.from(new Float64Array(at(a.editValues, 8 * offsets.at(-1)!).slice().buffer))
      }
      const rows: RowSampling = {
        temperature: Float64Array.from(f64(a.temperature)), topP: Float64Array.from(f64(a.topP)), minP: Float64Array.from(f64(a.minP)),
        topK: Int32Array.from(i32(a.topK)), seedLo: Uint32Array.from(u32(a.seedLo)), seedHi: Uint32Array.from(u32(a.seedHi)),
        position: Int32Array.from(i32(a.position)), sampleIndex: Int32Array.from(i32(a.sampleIndex)), ...(edits && { edits })
      }
      seen.push({ rows, editIds: edits ? Array.from(edits.ids) : [] })
      // the "kernel": a token made from what it read
      at(a.outTokens, 4 * a.rows).set(new Uint8Array(Int32Array.from(rows.position, (p, r) => p * 10 + rows.sampleIndex[r]).buffer))
    }
    const native = { sampleRows: read, sampleRowsBf16: read } as unknown as NativeSampler
    const sampler = cudaRowSampler(native, memory, 0 as unknown as Pointer, () => {})

    const step = (R: number, withEdits: boolean): RowSampling => {
      const states = Array.from({ length: R }, (_, r) => {
        const params = decodeSamplingParamsSync({ temperature: 0.5 + r / 10, top_p: 0.9, top_k: r + 1, min_p: r / 1000, seed: r, ...(withEdits && r % 2 === 0 && { presence_penalty: 0.5, logit_bias: { [String(r)]: 2 } }) })
        const state = makeSamplingState(params, { promptTokenIds: [1, 2], eosTokenIds: [0], seed: 1000 + r, sampleIndex: r % 3 })
        recordOutputToken(state, 7 + r)
        return state
      })
      const rows: RowSampling = {
        temperature: Float64Array.from(states, (s) => s.params.temperature), topP: Float64Array.from(states, (s) => s.params.topP),
        topK: Int32Array.from(states, (s) => s.params.topK), minP: Float64Array.from(states, (s) => s.params.minP),
        seedLo: Uint32Array.from(states, (s) => s.seedLo), seedHi: Uint32Array.from(states, (s) => s.seedHi),
        position: Int32Array.from(states, (_, r) => 100 + r), sampleIndex: Int32Array.from(states, (s) => s.sampleIndex)
      }
      const edits = logitsEdits(states, R)
      return edits === undefined ? rows : { ...rows, edits }
    }
    // growing batches, with and without edits, so both blocks are reallocated and reused
    for (const [R, withEdits] of [[3, true], [2, false], [70, true], [5, true], [200, false], [130, true]] as const) {
      const plan = step(R, withEdits)
      const tokens = sampler.enqueue(0, R, 32, plan, memory.alloc(4 * R))()
      expect(Array.from(tokens)).toEqual(Array.from(plan.position, (p, r) => p * 10 + plan.sampleIndex[r]))
      const got = seen.at(-1)!.rows
      for (const key of ["temperature", "topP", "topK", "minP", "seedLo", "seedHi", "position", "sampleIndex"] as const) {
        expect(Array.from(got[key]), key).toEqual(Array.from(plan[key]))
      }
      expect(got.edits === undefined).toBe(plan.edits === undefined)
      if (plan.edits) {
        expect(Array.from(got.edits!.offsets)).toEqual(Array.from(plan.edits.offsets))
        expect(Array.from(got.edits!.ids)).toEqual(Array.from(plan.edits.ids))
        expect(Array.from(got.edits!.values)).toEqual(Array.from(plan.edits.values))
      }
    }
    sampler.release()
  })

  it("hands the logprobs kernel each row's token, from the host or from the last draw, and reads back its rows", () => {
    const { memory, at } = fakeMemory()
    const calls: Array<{ tokens: number; seenTokens: number[] }> = []
    // the "kernel": row r's logprob is -token, its rank r + 1, its top ids token + j (the last one
    // past the vocabulary where numTop > 2), their logprobs -(token + j)
    const logprobsRows = (_ctx: Pointer, a: LogprobsRowsArgs) => {
      const tokens = Array.from(new Int32Array(at(a.tokens, 4 * a.rows).slice().buffer))
      calls.push({ tokens: a.tokens, seenTokens: tokens })
      const f64 = (ptr: number, values: number[]) => at(ptr, 8 * values.length).set(new Uint8Array(Float64Array.from(values).buffer))
      const i32 = (ptr: number, values: number[]) => at(ptr, 4 * values.length).set(new Uint8Array(Int32Array.from(values).buffer))
      const tops = tokens.flatMap((t) => Array.from({ length: a.numTop }, (_, j) => (j === 2 ? -1 : t + j)))
      f64(a.outLogprob, tokens.map((t) => -t))
      i32(a.outRank, tokens.map((_, r) => r + 1))
      i32(a.outTopIds, tops)
      f64(a.outTopLogprobs, tops.map((id) => -id))
    }
    const drawn = (_ctx: Pointer, a: SampleRowsArgs) => at(a.outTokens, 4 * a.rows).set(new Uint8Array(Int32Array.from({ length: a.rows }, (_, r) => 50 + r).buffer))
    const native = { sampleRows: drawn, sampleRowsBf16: drawn, logprobsRowsBf16: logprobsRows } as unknown as NativeSampler
    const sampler = cudaRowSampler(native, memory, 0 as unknown as Pointer, () => {})

    // tokens from the host (the executor's own path), growing batches
    for (const [R, N] of [[2, 3], [9, 20], [4, 0]] as const) {
      const tokens = Int32Array.from({ length: R }, (_, r) => 7 * r + 1)
      const rows = sampler.logprobs(0, R, 1000, tokens, N)
      expect(calls.at(-1)!.seenTokens).toEqual(Array.from(tokens))
      for (let r = 0; r < R; r++) {
        const row = rowTokenLogprobs(rows, r, tokens[r], N)
        expect(row.logprob).toBe(-tokens[r])
        expect(row.rank).toBe(r + 1)
        // the top stops at the first id past the vocabulary
        expect(row.top.map((t) => t.tokenId)).toEqual(Array.from({ length: Math.min(N, 2) }, (_, j) => tokens[r] + j))
        expect(row.top.map((t) => t.logprob)).toEqual(row.top.map((t) => -t.tokenId))
      }
    }
    // tokens where the draw left them (the decode runner), read after the step
    const R = 6
    const zeros = new Int32Array(R)
    const plan: RowSampling = {
      temperature: new Float64Array(R).fill(1), topP: new Float64Array(R).fill(1), topK: zeros, minP: new Float64Array(R),
      seedLo: new Uint32Array(R), seedHi: new Uint32Array(R), position: zeros, sampleIndex: zeros
    }
    const out = memory.alloc(4 * R)
    const drawnTokens = sampler.enqueue(0, R, 1000, plan, out)()
    const read = sampler.enqueueLogprobs(0, R, 1000, out, 1)
    expect(calls.at(-1)!.tokens).toBe(out)
    expect(calls.at(-1)!.seenTokens).toEqual(Array.from(drawnTokens))
    const rows = read()
    expect(Array.from(rows.logprob)).toEqual(Array.from(drawnTokens, (t) => -t))
    expect(Array.from(rows.topIds)).toEqual(Array.from(drawnTokens))
    sampler.release()
  })

  it("stages a step's rows while the step before still has its copies queued", () => {
    const { memory, at, stream, enqueue } = fakeMemory()
    // the "kernel", queued in stream order: row r's token is its position
    const drawn = (_ctx: Pointer, a: SampleRowsArgs) =>
      enqueue(() => at(a.outTokens, 4 * a.rows).set(at(a.position, 4 * a.rows)))
    const native = { sampleRows: drawn, sampleRowsBf16: drawn } as unknown as NativeSampler
    const sampler = cudaRowSampler(native, memory, 0 as unknown as Pointer, () => {})
    const rowsAt = (R: number, first: number): RowSampling => ({
      temperature: new Float64Array(R).fill(1), topP: new Float64Array(R).fill(1), topK: new Int32Array(R), minP: new Float64Array(R),
      seedLo: new Uint32Array(R), seedHi: new Uint32Array(R), position: Int32Array.from({ length: R }, (_, r) => first + r), sampleIndex: new Int32Array(R)
    })
    stream.deferred = true
    // three steps, each staged before the one before it has run: the first's block is free again
    // by the third only once the first has been read, as the decode runner keeps at most two in flight
    const first = sampler.enqueue(0, 4, 100, rowsAt(4, 10), memory.alloc(16))
    const second = sampler.enqueue(0, 4, 100, rowsAt(4, 20), memory.alloc(16))
    stream.drain()
    expect(Array.from(first())).toEqual([10, 11, 12, 13])
    const third = sampler.enqueue(0, 4, 100, rowsAt(4, 30), memory.alloc(16))
    stream.drain()
    expect(Array.from(second())).toEqual([20, 21, 22, 23])
    expect(Array.from(third())).toEqual([30, 31, 32, 33])
    sampler.release()
  })
})
