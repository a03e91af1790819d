import { existsSync } from "node:fs"
import type { EngineFlags } from "../cli/engineFlags.ts"
import { cudaDecodeRunner } from "../kernels/cuda/decodeRunner.ts"
import { deviceDummyWeights } from "../kernels/cuda/dummyWeights.ts"
import { libraryCandidates } from "../../ffi/library.ts"
import { createCudaProvider } from "../kernels/cuda/provider.ts"
import { createWasmProvider } from "../kernels/wasm/provider.ts"
import type { ModelConfig } from "../model/config.ts"
import { parameterCount } from "../model/expectedTensors.ts"
import type { ModelExecutorOptions } from "./modelExecutor.ts"

/** activations, cuBLAS workspace and graphs: kept out of the KV budget on a GPU */
const gpuReserveBytes = 2 * 2 ** 30

/**
 * The provider `--device` asks for, and what the executor needs with it. `auto` takes the GPU
 * when the CUDA library is built (`make -C cuda`) and a GPU answers, the CPU otherwise;
 * `cuda` fails with the reason when it cannot. On a
 * GPU the KV cache gets what `--gpu-memory-utilization` of the card leaves after the weights
 * and a reserve, as vLLM sizes it; decode steps replay CUDA graphs.
 */
export const deviceOptions = async (
  flags: EngineFlags,
  config: ModelConfig,
  log: (line: string) => void
): Promise<Pick<ModelExecutorOptions, "provider" | "kvCacheBytes" | "stepRunner" | "weights">> => {
  const device = flags.device ?? "auto"
  if (device === "cuda" || (device === "auto" && libraryCandidates().some((path) => existsSync(path)))) {
    try {
      const gpu = await createCudaProvider()
      const { freeBytes, totalBytes } = gpu.memoryInfo()
      const budget = totalBytes * (flags.gpuMemoryUtilization ?? 0.9) - (totalBytes - freeBytes)
      const weightBytes = parameterCount(config) * gpu.memory.floatBytes
      const kvCacheBytes = Math.floor(budget - weightBytes - gpuReserveBytes)
      if (kvCacheBytes <= 0) {
        gpu.close()
        throw new Error(
          `--gpu-memory-utilization leaves no room for a KV cache on ${gpu.device}: ${(weightBytes / 2 ** 30).toFixed(1)} GiB of weights in a ${(budget / 2 ** 30).toFixed(1)} GiB budget`
        )
      }
      log(`device: ${gpu.device} (${(kvCacheBytes / 2 ** 30).toFixed(1)} GiB of KV cache)`)
      return {
        provider: gpu,
        kvCacheBytes: flags.kvCacheMemory ?? kvCacheBytes,
        stepRunner: cudaDecodeRunner(gpu, "graphs"),
        ...(flags.loadFormat === "dummy" ? { weights: deviceDummyWeights(config, gpu.memory) } : {})
      }
    } catch (error) {
      // auto means "the GPU if there is one": a machine without one quietly runs on the CPU
      if (device === "cuda") throw new Error(`--device cuda: ${error instanceof Error ? error.message : String(error)}`)
    }
  }
  if (flags.gpuMemoryUtilization !== undefined) log("device: CPU; --gpu-memory-utilization applies to GPUs only")
  return { provider: await createWasmProvider({ threads: flags.threads }) }
}
