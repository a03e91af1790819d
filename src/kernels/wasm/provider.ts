/**
 * The WebAssembly kernel provider: the CPU backend, and the one that runs everywhere.
 *
 * Every catalog entry is bound generically to the module's export of the same name. A kernel
 * with a `split` role runs whole on the calling thread, or, when the call is big enough to
 * pay for waking the other threads, in parts over the kernel threads (see threads.ts).
 * Either way a kernel call is a plain synchronous function call.
 */
import { readFileSync } from "node:fs"
import { catalog, type KernelName, type Kernels, kernelArity } from "../catalog.ts"
import { composites, isComposite } from "../composite.ts"
import type { KernelProvider } from "../provider.ts"
import { ensureKernelModule, maxMemoryPages } from "./build.ts"
import { maxArgs } from "./control.ts"
import { WasmMemory } from "./memory.ts"
import { splitOf } from "./split.ts"
import { KernelThreads } from "./threads.ts"

export interface WasmKernelProvider extends KernelProvider {
  readonly name: "wasm"
  readonly memory: WasmMemory
}

export interface WasmProviderOptions {
  /** threads that run kernels, the caller's included; default: the CPU's hardware threads */
  readonly threads?: number
  /** memory committed up front, in bytes; it grows on demand up to 4 GiB. Default 64 MiB */
  readonly initialBytes?: number
  /**
   * smallest estimated work (elements a call touches) that is split over the threads; below
   * it the wake-up costs more than it saves. 0 splits every call (tests use it).
   */
  readonly minSplitWork?: number
}

/**
 * ~40 us of single-threaded mat-vec. A polling kernel thread picks up its part in ~1 us, so
 * a split of this size saves ~20 us; a sleeping one takes ~100 us to wake, which only calls
 * this size and up come close to paying for (and they come often enough to keep it polling).
 */
export const defaultMinSplitWork = 1 << 18

/** per-thread working memory of the kernels (attention's running max and sum per head) */
const scratchBytes = 64 * 1024
const pageBytes = 65536

type Export = (...args: number[]) => void

export async function createWasmProvider(options: WasmProviderOptions = {}): Promise<WasmKernelProvider> {
  const threads = Math.max(1, Math.floor(options.threads ?? navigator.hardwareConcurrency ?? 1))
  const initialBytes = options.initialBytes ?? 64 * 1024 * 1024
  const minSplitWork = options.minSplitWork ?? defaultMinSplitWork

  const module = await WebAssembly.compile(readFileSync(await ensureKernelModule()))
  const wasm = new WebAssembly.Memory({
    initial: Math.max(1, Math.ceil(initialBytes / pageBytes)),
    maximum: maxMemoryPages,
    shared: true
  })
  const instance = await WebAssembly.instantiate(module, { env: { memory: wasm } })
  const exports = instance.exports as Record<string, Export> & { heap_base(): number }
  const memory = new WasmMemory(wasm, exports.heap_base(), maxMemoryPages * pageBytes)

  const scratch = Array.from({ length: threads }, () => memory.alloc(scratchBytes))
  exports.set_scratch(scratch[0], scratchBytes)
  const pool = threads > 1 ? await KernelThreads.start(module, wasm, scratch.slice(1), scratchBytes) : undefined

  const kernels = {} as Record<KernelName, Export>
  Object.keys(catalog).forEach((name, index) => {
    if (isComposite(name as KernelName)) return
    kernels[name as KernelName] = bindKernel(name as KernelName, index, exports[name], memory, pool, minSplitWork)
  })
  // composite kernels run as their sequences, each part split over the threads as it would be alone
  Object.assign(kernels, composites(kernels as unknown as Kernels, memory.floatBytes))

  return {
    name: "wasm",
    kernels: kernels as unknown as Kernels,
    memory,
    parallelism: threads,
    close: () => pool?.close()
  }
}

function bindKernel(
  name: KernelName,
  index: number,
  fn: Export | undefined,
  memory: WasmMemory,
  pool: KernelThreads | undefined,
  minSplitWork: number
): Export {
  const split = splitOf(name, memory)
  const params = kernelArity(name) + (split ? 2 : 0)
  if (typeof fn !== "function" || fn.length !== params) {
    throw new Error(`kernels.wasm: export ${name} should take ${params} arguments; rebuild with bun run build:wasm`)
  }
  if (!split) return fn
  if (params > maxArgs) throw new Error(`${name}: ${params} arguments do not fit a control block slot (${maxArgs})`)
  if (!pool) return (...args) => fn(...args, 0, split.extent(args))

  const bounds = new Int32Array(pool.size + 1)
  return (...args) => {
    const extent = split.extent(args)
    const parts = Math.min(pool.size, extent)
    if (parts < 2 || split.work(args) < minSplitWork) return fn(...args, 0, extent)
    split.partition(args, parts, bounds)
    pool.run(index, fn, args, bounds, parts)
  }
}
