/**
 * Sampling on the GPU for the CUDA provider: tsr_sample_rows_bf16 (cuda/sampler.cu, the CPU
 * sampler ported operation for operation) over the model's bf16 logits where lm_head left
 * them, so a sampled step copies back one id per row instead of its logits.
 *
 * The rows' parameters go up in one copy from a pinned block laid out as the device's
 * (f64 temperature, top-p, min-p; i32 top-k, seed words, position, sample index), and the
 * tokens come back into the same pinned block; the rows' logits edits (bias, min_tokens,
 * penalties: src/sampling/logitsEdits.ts), where there are any, in a second copy from a block of
 * their own. Each block grows with the largest step seen. Every block is double: consecutive calls
 * take alternate ones, so the host may stage a step's rows while the step before still has its
 * copies queued (asynchronous scheduling keeps at most two steps in flight).
 * `enqueue` leaves the wait to the caller (the decode runner waits for the whole step at once).
 */
import type { Pointer } from "bun:ffi"
import type { NativeSampler } from "../../../ffi/sampling.ts"
import type { LogitsEdits } from "../../sampling/logitsEdits.ts"
import type { RowLogprobs } from "../../sampling/logprobs.ts"
import type { RowSampling } from "../../stages/stepPlan.ts"
import type { DeviceSampler } from "../provider.ts"
import type { CudaMemory, PinnedBuffer } from "./memory.ts"

/** bytes per row: three f64 parameters, five 32-bit ones, and the token read back */
const rowBytes = 3 * 8 + 5 * 4 + 4

export interface CudaRowSampler extends DeviceSampler {
  /**
   * enqueues the draw into `out` (device, `rows` int32) and the copy of its tokens back; the
   * returned read is valid once the stream has reached that point
   */
  enqueue(logits: number, rows: number, vocab: number, params: RowSampling, out: number): () => Int32Array
  /** enqueues the logprobs of `rows` rows (their tokens at device address `tokens`) and the copy back; read as `enqueue`'s */
  enqueueLogprobs(logits: number, rows: number, vocab: number, tokens: number, numTop: number): () => RowLogprobs
  release(): void
}

/** a pinned block and its device twin, grown to the largest request */
const stagingBlock = (memory: CudaMemory) => {
  let bytes = 0
  let pinned: PinnedBuffer | undefined
  let device = 0
  const release = () => {
    if (pinned) memory.freePinned(pinned)
    if (device) memory.free(device)
    pinned = undefined
    device = 0
    bytes = 0
  }
  return {
    ensure(needed: number): { pinned: PinnedBuffer; device: number } {
      if (needed > bytes) {
        release()
        bytes = Math.max(needed, 2 * bytes, 4096)
        pinned = memory.allocPinned(bytes)
        device = memory.alloc(bytes)
      }
      return { pinned: pinned!, device }
    },
    release
  }
}

/** two staging blocks taken in turn, one per call */
const alternating = (memory: CudaMemory) => {
  const blocks = [stagingBlock(memory), stagingBlock(memory)]
  let next = 0
  return {
    /** the block for this call: not the one the call before used */
    take() {
      const block = blocks[next]
      next ^= 1
      return block
    },
    release: () => blocks.forEach((block) => block.release())
  }
}

export const cudaRowSampler = (native: NativeSampler, memory: CudaMemory, ctx: Pointer, synchronize: () => void): CudaRowSampler => {
  const rowBlocks = alternating(memory)
  const editBlocks = alternating(memory)
  const logprobsBlocks = alternating(memory)

  /** the edits into their block (f64 values first, then the offsets and ids) and up; their device addresses */
  const uploadEdits = (edits: LogitsEdits | undefined) => {
    if (edits === undefined) return { editOffsets: 0, editIds: 0, editValues: 0 }
    const n = edits.ids.length
    const offsetsAt = 8 * n
    const idsAt = offsetsAt + 4 * edits.offsets.length
    const block = editBlocks.take().ensure(idsAt + 4 * n)
    new Float64Array(block.pinned.buffer, 0, n).set(edits.values)
    new Int32Array(block.pinned.buffer, offsetsAt, edits.offsets.length).set(edits.offsets)
    new Int32Array(block.pinned.buffer, idsAt, n).set(edits.ids)
    memory.writeAsync(block.device, block.pinned.ptr, idsAt + 4 * n)
    return { editOffsets: block.device + offsetsAt, editIds: block.device + idsAt, editValues: block.device }
  }

  /** offsets of each array for R rows; f64 arrays first, so all stay aligned */
  const layout = (R: number) => ({
    temperature: 0, topP: 8 * R, minP: 16 * R,
    topK: 24 * R, seedLo: 28 * R, seedHi: 32 * R, position: 36 * R, sampleIndex: 40 * R, tokens: 44 * R
  })

  const release = () => {
    rowBlocks.release()
    editBlocks.release()
    logprobsBlocks.release()
  }

  /** offsets of the logprobs outputs for R rows of N tops, f64 first, then the tokens when they come from the host */
  const logprobsLayout = (R: number, N: number) => ({ logprob: 0, topLogprobs: 8 * R, rank: 8 * R * (N + 1), topIds: 8 * R * (N + 1) + 4 * R, tokens: 8 * R * (N + 1) + 4 * R * (N + 1), bytes: 8 * R * (N + 1) + 4 * R * (N + 2) })

  const enqueueLogprobs = (logits: number, rows: number, vocab: number, tokens: number, numTop: number, upload?: Int32Array): (() => RowLogprobs) => {
    const at = logprobsLayout(rows, numTop)
    const { pinned, device } = logprobsBlocks.take().ensure(Math.max(at.bytes, 8))
    if (upload) {
      new Int32Array(pinned.buffer, at.tokens, rows).set(upload.subarray(0, rows))
      memory.writeAsync(device + at.tokens, pinned.ptr + at.tokens, 4 * rows)
      tokens = device + at.tokens
    }
    if (rows > 0) {
      native.logprobsRowsBf16(ctx, {
        logits, rows, vocab, tokens, numTop,
        outLogprob: device + at.logprob, outRank: device + at.rank, outTopIds: device + at.topIds, outTopLogprobs: device + at.topLogprobs
      })
      memory.readBytesAsync(pinned.ptr, device, at.tokens)
    }
    const buffer = pinned.buffer
    return () => ({
      numTop,
      logprob: new Float64Array(buffer, at.logprob, rows).slice(),
      topLogprobs: new Float64Array(buffer, at.topLogprobs, rows * numTop).slice(),
      rank: new Int32Array(buffer, at.rank, rows).slice(),
      topIds: new Int32Array(buffer, at.topIds, rows * numTop).slice()
    })
  }

  const enqueue = (logits: number, rows: number, vocab: number, params: RowSampling, out: number): (() => Int32Array) => {
    if (rows === 0) return () => new Int32Array(0)
    const { pinned, device } = rowBlocks.take().ensure(rows * rowBytes)
    const at = layout(rows)
    const buffer = pinned.buffer
    new Float64Array(buffer, at.temperature, rows).set(params.temperature.subarray(0, rows))
    new Float64Array(buffer, at.topP, rows).set(params.topP.subarray(0, rows))
    new Float64Array(buffer, at.minP, rows).set(params.minP.subarray(0, rows))
    new Int32Array(buffer, at.topK, rows).set(params.topK.subarray(0, rows))
    new Uint32Array(buffer, at.seedLo, rows).set(params.seedLo.subarray(0, rows))
    new Uint32Array(buffer, at.seedHi, rows).set(params.seedHi.subarray(0, rows))
    new Int32Array(buffer, at.position, rows).set(params.position.subarray(0, rows))
    new Int32Array(buffer, at.sampleIndex, rows).set(params.sampleIndex.subarray(0, rows))
    memory.writeAsync(device, pinned.ptr, at.tokens)
    const edits = uploadEdits(params.edits)
    native.sampleRowsBf16(ctx, {
      ...edits,
      logits, rows, vocab,
      temperature: device + at.temperature, topP: device + at.topP, topK: device + at.topK, minP: device + at.minP,
      seedLo: device + at.seedLo, seedHi: device + at.seedHi, position: device + at.position, sampleIndex: device + at.sampleIndex,
      outTokens: out
    })
    memory.readBytesAsync(pinned.ptr + at.tokens, out, 4 * rows)
    return () => new Int32Array(buffer, at.tokens, rows).slice()
  }

  return {
    enqueue,
    enqueueLogprobs,
    sample: (logits, rows, vocab, params, out) => {
      const read = enqueue(logits, rows, vocab, params, out)
      synchronize()
      return read()
    },
    logprobs: (logits, rows, vocab, tokens, numTop) => {
      const read = enqueueLogprobs(logits, rows, vocab, 0, numTop, tokens)
      synchronize()
      return read()
    },
    release
  }
}
