import { statSync } from "node:fs"
import { Effect } from "effect"
import { type ModelConfig, readModelConfig } from "./config.ts"
import { loadError, ModelLoadError } from "./errors.ts"
import { type GenerationConfig, readGenerationConfig } from "./generationConfig.ts"
import { openWeights, type WeightSource } from "./weightSource.ts"

// The model's weights, one import for the layers and the engine: the directory loader
// here, the tensor naming in expectedTensors.ts, the safetensors access in weightSource.ts.
import { dummyWeights } from "./dummyWeights.ts"
export type { TensorInfo, WeightSource } from "./weightSource.ts"
export { type ExpectedTensor, expectedLayerTensors, expectedTensors } from "./expectedTensors.ts"
export type { IndexRange } from "./safetensors.ts"

/** A Hugging Face model directory: config, generation defaults, and the weights. */
export interface ModelDir {
  readonly dir: string
  readonly config: ModelConfig
  /** null when the directory has no generation_config.json. */
  readonly generationConfig: GenerationConfig | null
  readonly weights: WeightSource
}

/**
 * Opens a model directory and checks that its weights match its config. The weights
 * are mapped, not read: each rank later reads only its own slices. Throws
 * ModelLoadError naming the file at fault.
 */
export function openModelDir(dir: string): ModelDir {
  let isDir = false
  try {
    isDir = statSync(dir).isDirectory()
  } catch {
    throw loadError(dir, "model directory not found")
  }
  if (!isDir) throw loadError(dir, "not a directory")
  const config = readModelConfig(dir)
  const generationConfig = readGenerationConfig(dir)
  const weights = openWeights(dir)
  weights.validate(config)
  return { dir, config, generationConfig, weights }
}

/**
 * A model directory with random weights (`--load-format dummy`): only config.json (and
 * generation_config.json if present) are read, so large shapes can be benchmarked without
 * a checkpoint.
 */
export function openDummyModelDir(dir: string): ModelDir {
  const config = readModelConfig(dir)
  return { dir, config, generationConfig: readGenerationConfig(dir), weights: dummyWeights(config) }
}

/** openModelDir as an Effect, failing with ModelLoadError. */
export const loadModelDir = (dir: string): Effect.Effect<ModelDir, ModelLoadError> =>
  Effect.try({
    try: () => openModelDir(dir),
    catch: (e) => (e instanceof ModelLoadError ? e : loadError(dir, e instanceof Error ? e.message : String(e))),
  }).pipe(Effect.withSpan("ModelDir.open"))
