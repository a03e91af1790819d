/**
 * The CUDA kernel provider: the catalog's kernels run by libtessera_cuda (cuda/) on one GPU,
 * bound through bun:ffi (ffi/).
 *
 * Every catalog entry is bound generically to the symbol tsr_<name>, which takes the context
 * and then the catalog's arguments: the same positional call drives the WASM and the CUDA
 * provider. A call enqueues the kernel on the context's stream and returns; a failed launch or
 * bad argument throws a CudaError with the library's message at once, a fault inside a kernel at
 * the next call that waits (`memory.read`, `synchronize`).
 *
 * Ownership: the provider owns the context (stream, cuBLAS handle); tensors belong to whoever
 * allocated them and are freed by them; close() frees what is left, destroys the context, and
 * does nothing the second time.
 */
import type { Pointer } from "bun:ffi"
import { CudaError } from "../../../ffi/errors.ts"
import { kernelNames, kernelSymbol } from "../../../ffi/kernels.ts"
import { openLibrary, type NativeLibrary } from "../../../ffi/library.ts"
import type { KernelName, Kernels } from "../catalog.ts"
import type { KernelProvider } from "../provider.ts"
import { CudaMemory, devicePointer } from "./memory.ts"
import { openSampler } from "../../../ffi/sampling.ts"
import { cudaRowSampler, type CudaRowSampler } from "./rowSampler.ts"

export interface CudaKernelProvider extends KernelProvider {
  readonly name: "cuda"
  readonly memory: CudaMemory
  /** the GPU's name, e.g. "NVIDIA H100 80GB HBM3" */
  readonly device: string
  /** the path of the loaded libtessera_cuda.so */
  readonly libraryPath: string
  /** waits until every kernel enqueued so far has finished (and surfaces its faults) */
  synchronize(): void
  memoryInfo(): { readonly freeBytes: number; readonly totalBytes: number }
  readonly graphs: CudaGraphs
  readonly events: CudaEvents
  readonly sampler: CudaRowSampler
}

/** CUDA graphs of the context's stream; a graph is an opaque handle (number) */
export interface CudaGraphs {
  /** the calls that follow are recorded, not run, until `end` */
  begin(): void
  /** the recorded calls as a graph to replay */
  end(): number
  launch(graph: number): void
  destroy(graph: number): void
}

/** CUDA events on the context's stream, for timing the device's share of a step */
export interface CudaEvents {
  create(): number
  record(event: number): void
  /** milliseconds between two recorded events; waits for `end` */
  elapsed(start: number, end: number): number
  /** whether the work enqueued before the event's last record has finished (never waits; throws a fault of that work) */
  query(event: number): boolean
  destroy(event: number): void
}

export interface CudaProviderOptions {
  /** CUDA device index; default 0 */
  readonly device?: number
  /** default: $TESSERA_CUDA_LIB, else cuda/build/libtessera_cuda.so */
  readonly libraryPath?: string
}

type NativeKernel = (ctx: Pointer, ...args: number[]) => number

export async function createCudaProvider(options: CudaProviderOptions = {}): Promise<CudaKernelProvider> {
  const native = openLibrary(options.libraryPath)
  const { symbols } = native
  const out = new BigUint64Array(1)
  native.check("tsr_context_create", symbols.tsr_context_create(options.device ?? 0, out))
  const ctx = Number(out[0]) as Pointer
  let closed = false

  const name = new Uint8Array(256)
  native.check("tsr_device_name", symbols.tsr_device_name(ctx, name, name.length))
  const device = new TextDecoder().decode(name.subarray(0, name.indexOf(0)))

  const memory = new CudaMemory(native, ctx)
  const kernels = {} as Record<KernelName, (...args: number[]) => void>
  for (const kernel of kernelNames) kernels[kernel] = bindKernel(native, ctx, kernel, () => closed)

  const handle = (call: string, status: number): number => {
    native.check(call, status)
    return Number(out[0])
  }
  const elapsedMs = new Float32Array(1)
  const done = new Int32Array(1)
  const graphs: CudaGraphs = {
    begin: () => native.check("tsr_graph_begin", symbols.tsr_graph_begin(ctx)),
    end: () => handle("tsr_graph_end", symbols.tsr_graph_end(ctx, out)),
    launch: (graph) => native.check("tsr_graph_launch", symbols.tsr_graph_launch(ctx, devicePointer(graph))),
    destroy: (graph) => native.check("tsr_graph_destroy", symbols.tsr_graph_destroy(ctx, devicePointer(graph)))
  }
  const events: CudaEvents = {
    create: () => handle("tsr_event_create", symbols.tsr_event_create(ctx, out)),
    record: (event) => native.check("tsr_event_record", symbols.tsr_event_record(ctx, devicePointer(event))),
    elapsed: (start, end) => {
      native.check("tsr_event_elapsed", symbols.tsr_event_elapsed(ctx, devicePointer(start), devicePointer(end), elapsedMs))
      return elapsedMs[0]
    },
    query: (event) => {
      native.check("tsr_event_query", symbols.tsr_event_query(ctx, devicePointer(event), done))
      return done[0] !== 0
    },
    destroy: (event) => native.check("tsr_event_destroy", symbols.tsr_event_destroy(ctx, devicePointer(event)))
  }

  const synchronize = () => {
    if (closed) throw closedError("synchronize")
    native.check("tsr_synchronize", symbols.tsr_synchronize(ctx))
  }
  const sampler = cudaRowSampler(openSampler(native.path), memory, ctx, synchronize)

  return {
    name: "cuda",
    graphs,
    events,
    sampler,
    kernels: kernels as unknown as Kernels,
    memory,
    parallelism: 1,
    device,
    libraryPath: native.path,
    synchronize,
    memoryInfo: () => {
      if (closed) throw closedError("memoryInfo")
      const sizes = new BigUint64Array(2)
      native.check("tsr_mem_info", symbols.tsr_mem_info(ctx, sizes.subarray(0, 1), sizes.subarray(1, 2)))
      return { freeBytes: Number(sizes[0]), totalBytes: Number(sizes[1]) }
    },
    close: () => {
      if (closed) return
      closed = true
      // the context goes even when freeing fails (a sticky CUDA error fails every call after it)
      try {
        sampler.release()
        memory.releaseAll()
      } finally {
        native.check("tsr_context_destroy", symbols.tsr_context_destroy(ctx))
      }
    }
  }
}

function bindKernel(native: NativeLibrary, ctx: Pointer, name: KernelName, isClosed: () => boolean): (...args: number[]) => void {
  const symbol = kernelSymbol(name)
  const fn = native.symbols[symbol] as unknown as NativeKernel
  return (...args) => {
    if (isClosed()) throw closedError(symbol)
    const status = fn(ctx, ...args)
    if (status !== 0) native.check(symbol, status)
  }
}

const closedError = (call: string) => new CudaError({ call, status: -1, message: `${call}: the CUDA provider is closed` })
