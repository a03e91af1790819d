import { Schema } from "effect"
import { join } from "node:path"

/** The model that ships with the project, served when no --model is given. */
export const embeddedModel = join(import.meta.dirname, "..", "..", "test", "fixtures", "models", "qwen3")

const PositiveInt = Schema.NumberFromString.pipe(Schema.int(), Schema.positive())

/** Flags that configure the engine, under vLLM's names (which users already know). */
export const engineFlags = {
  model: Schema.optional(Schema.String).annotations({
    description: "Hugging Face model directory (default: the embedded tiny Qwen3 fixture)"
  }),
  loadFormat: Schema.optional(Schema.Literal("auto", "dummy")).annotations({
    description: "auto (safetensors) or dummy (random weights from config.json alone)"
  }),
  maxModelLen: Schema.optional(PositiveInt).annotations({ description: "context length (default: the model's, at most 4096)" }),
  maxNumSeqs: Schema.optional(PositiveInt).annotations({ description: "sequences in one step (default 64)" }),
  maxNumBatchedTokens: Schema.optional(PositiveInt).annotations({ description: "tokens in one step (default 2048)" }),
  blockSize: Schema.optional(PositiveInt).annotations({ description: "tokens per KV-cache block (default 16)" }),
  kvCacheMemory: Schema.optional(PositiveInt).annotations({ description: "bytes of KV cache (default 256 MiB on the CPU)" }),
  gpuMemoryUtilization: Schema.optional(
    Schema.NumberFromString.pipe(Schema.greaterThan(0), Schema.lessThanOrEqualTo(1))
  ).annotations({ description: "fraction of GPU memory for weights and KV cache (GPU only)" }),
  tensorParallelSize: Schema.optional(PositiveInt).annotations({ description: "tensor-parallel ranks (default 1)" }),
  pipelineParallelSize: Schema.optional(PositiveInt).annotations({ description: "pipeline stages (default 1)" }),
  device: Schema.optional(Schema.Literal("cpu", "cuda", "auto")).annotations({ description: "cpu, cuda or auto (default auto)" }),
  threads: Schema.optional(PositiveInt).annotations({ description: "CPU kernel threads (default: all cores)" }),
  enablePrefixCaching: Schema.optional(Schema.Literal("true", "false")).annotations({
    description: "share KV blocks of common prompt prefixes (default true)"
  }),
  asyncScheduling: Schema.optional(Schema.Literal("true", "false")).annotations({
    description: "launch each step before the one before it is done, its ids taken on the GPU (default true where decode steps replay CUDA graphs)"
  }),
  pipelinePlugin: Schema.optional(Schema.Array(Schema.String)).annotations({
    description: "stage plugin module, optionally =JSON options (repeatable)"
  })
} as const

export type EngineFlags = Schema.Struct.Type<typeof engineFlags>
