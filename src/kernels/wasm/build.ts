/**
 * Builds the CPU kernel module, build/kernels.wasm, from the AssemblyScript sources in
 * ./assembly. `ensureKernelModule()` builds only when the module is missing or older than a
 * source (or than this file, which holds the flags), so a fresh clone works from any entry
 * point. `bun src/kernels/wasm/build.ts` (`bun run build:wasm`) always builds.
 */
import { mkdirSync, readdirSync, renameSync, rmSync, statSync } from "node:fs"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"

const sourceDir = fileURLToPath(new URL("./assembly", import.meta.url))
export const kernelModulePath = fileURLToPath(new URL("../../../build/kernels.wasm", import.meta.url))

/** 65536 pages of 64 KiB: the 4 GiB a 32-bit module can address */
export const maxMemoryPages = 65536

const ascFlags = [
  "-O3",
  "--noAssert",
  // no garbage collector: kernels only load and store through pointers
  "--runtime", "stub",
  // every thread instantiates the module on one shared memory that the host owns
  "--importMemory", "--sharedMemory", "--enable", "threads",
  "--initialMemory", "1", "--maximumMemory", String(maxMemoryPages),
  "--enable", "simd",
  // no imports but the memory: kernels trap (unreachable) instead of calling abort
  "--use", "abort="
]

export async function buildKernelModule(): Promise<string> {
  const asc = await import("assemblyscript/asc").then(
    (module) => module.default,
    (cause) => {
      throw new Error(`building ${kernelModulePath} needs the assemblyscript package (a dev dependency): ${String(cause)}`)
    }
  )
  mkdirSync(dirname(kernelModulePath), { recursive: true })
  // written aside and renamed, so that concurrent builds (parallel test files) never read half a file
  const partial = kernelModulePath.replace(/\.wasm$/, `.${process.pid}.wasm`)
  const stdout = asc.createMemoryStream()
  const stderr = asc.createMemoryStream()
  const { error } = await asc.main([join(sourceDir, "index.ts"), "-o", partial, ...ascFlags], { stdout, stderr })
  if (error) {
    rmSync(partial, { force: true })
    throw new Error(`building ${kernelModulePath} failed: ${error.message}\n${stderr.toString()}`)
  }
  renameSync(partial, kernelModulePath)
  return kernelModulePath
}

export async function ensureKernelModule(): Promise<string> {
  if (isStale()) await buildKernelModule()
  return kernelModulePath
}

function isStale(): boolean {
  let builtAt: number
  try {
    builtAt = statSync(kernelModulePath).mtimeMs
  } catch {
    return true
  }
  const inputs = [fileURLToPath(import.meta.url), ...readdirSync(sourceDir).map((file) => join(sourceDir, file))]
  return inputs.some((file) => statSync(file).mtimeMs > builtAt)
}

if (import.meta.main) {
  const path = await buildKernelModule()
  console.log(`built ${path} (${statSync(path).size} bytes)`)
}
