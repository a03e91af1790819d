/**
 * The CUDA sources build wherever the CUDA compiler is: `make -C cuda check` compiles every
 * .cu (no GPU, no cuBLAS or NCCL headers needed), then the library is linked and loaded through
 * bun:ffi with every symbol of the tables. Without a GPU, opening the provider must fail with
 * a CudaError carrying CUDA's own message, not crash. Skipped, with the reason printed, where
 * nvcc is not on PATH. The kernels' numbers are checked on a GPU by bench/gpu-check.ts.
 */
import { execFile, spawnSync } from "node:child_process"
import { fileURLToPath } from "node:url"
import { promisify } from "node:util"
import { describe, expect, it } from "vitest"
import { CudaError } from "../ffi/errors.ts"
import { openLibrary } from "../ffi/library.ts"
import { createCudaProvider } from "../src/kernels/cuda/provider.ts"

const cudaDir = fileURLToPath(new URL("../cuda", import.meta.url))
const nvcc = spawnSync("nvcc", ["--version"], { encoding: "utf8" })
const haveNvcc = nvcc.status === 0
if (!haveNvcc) console.log(`cuda-build: skipped, nvcc is not on PATH (${nvcc.error?.message ?? `exit ${nvcc.status}`})`)

// asynchronous: a blocked event loop would starve vitest's worker channel during a minute of nvcc
const make = (...targets: string[]) =>
  promisify(execFile)("make", ["-C", cudaDir, "-j4", ...targets], { maxBuffer: 64 << 20 }).catch((error: { stdout?: string; stderr?: string }) => {
    throw new Error(`make ${targets.join(" ")} failed:\n${error.stdout ?? ""}\n${error.stderr ?? ""}`)
  })

describe.skipIf(!haveNvcc)("cuda/ builds with nvcc", () => {
  it("compiles every .cu to an object (make -C cuda check)", async () => {
    await make("check")
  }, 600_000)

  it("links libtessera_cuda.so, whose every symbol binds through bun:ffi", async () => {
    await make("all")
    const library = openLibrary(`${cudaDir}/build/libtessera_cuda.so`)
    expect(typeof library.symbols.tsr_paged_attention).toBe("function")
  }, 600_000)

  it("opens a provider on a GPU, or fails with CUDA's message where there is none", async () => {
    const opened = await createCudaProvider({ libraryPath: `${cudaDir}/build/libtessera_cuda.so` }).then(
      (provider) => provider,
      (error: unknown) => (error instanceof Error ? error : new Error(String(error)))
    )
    if (opened instanceof Error) {
      expect(opened).toBeInstanceOf(CudaError)
      expect((opened as CudaError).call).toBe("tsr_context_create")
      expect(opened.message).toMatch(/cuda/i)
      console.log(`cuda-build: no usable GPU here: ${opened.message}`)
    } else {
      expect(opened.device.length).toBeGreaterThan(0)
      opened.close()
      opened.close()
    }
  })
})
