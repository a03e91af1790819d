/**
 * libtessera_cuda through bun:ffi: the symbol tables of every domain (context, memory,
 * graphs and events, kernels), where the library is found, and opening it.
 */
import { dlopen, type Library } from "bun:ffi"
import { existsSync } from "node:fs"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { contextSymbols } from "./context.ts"
import { CudaError, CudaLibraryError } from "./errors.ts"
import { graphSymbols } from "./graph.ts"
import { kernelSymbols } from "./kernels.ts"
import { memorySymbols } from "./memory.ts"
import { traced, traceEnabled } from "./trace.ts"

export const symbols = { ...contextSymbols, ...memorySymbols, ...graphSymbols, ...kernelSymbols }

export type NativeSymbols = Library<typeof symbols>["symbols"]

export interface NativeLibrary {
  readonly path: string
  readonly symbols: NativeSymbols
  /** throws the CudaError of a failed call (status != 0), with the library's message */
  check(call: string, status: number): void
}

const fileName = "libtessera_cuda.so"

/**
 * Where to look, in order: $TESSERA_CUDA_LIB; cuda/build/ beside this source tree; and
 * cuda/build/ under the working directory (a bundled entry, e.g. on a device machine, no
 * longer sits beside the sources).
 */
export const libraryCandidates = (): string[] => {
  const fromEnv = process.env.TESSERA_CUDA_LIB
  if (fromEnv) return [fromEnv]
  return [fileURLToPath(new URL(`../cuda/build/${fileName}`, import.meta.url)), join(process.cwd(), "cuda", "build", fileName)]
}

const opened = new Map<string, NativeLibrary>()

/**
 * Opens the library once per path and keeps it for the life of the process: the CUDA runtime
 * it links registers exit handlers, and unloading it under live contexts gains nothing.
 */
export const openLibrary = (path?: string): NativeLibrary => {
  const candidates = path ? [path] : libraryCandidates()
  const found = candidates.find((candidate) => existsSync(candidate))
  if (!found) {
    throw new CudaLibraryError({
      path: candidates.join(", "),
      message: `${fileName} not found (looked in ${candidates.join(", ")}): build it with \`make -C cuda\` or set TESSERA_CUDA_LIB`
    })
  }
  const cached = opened.get(found)
  if (cached) return cached
  let library: Library<typeof symbols>
  try {
    library = dlopen(found, symbols)
  } catch (cause) {
    throw new CudaLibraryError({ path: found, message: `dlopen ${found}: ${cause instanceof Error ? cause.message : String(cause)}` })
  }
  const native: NativeSymbols = traceEnabled() ? traced(library.symbols) : library.symbols
  const loaded: NativeLibrary = {
    path: found,
    symbols: native,
    check: (call, status) => {
      if (status !== 0) throw new CudaError({ call, status, message: String(native.tsr_last_error()) })
    }
  }
  opened.set(found, loaded)
  return loaded
}
