import type { Communicator } from "../effects/Communicator.ts"
import type { Device } from "../effects/Device.ts"
import type { KvCacheStorage } from "../layers/kvCache.ts"
import type { TpShard, WeightLoader } from "../layers/shard.ts"
import { loadVocabShard } from "../layers/vocabParallel.ts"
import type { ModelConfig } from "../model/config.ts"
import { inverseFrequencies } from "../model/rope.ts"
import type { Logits, StepInput } from "./activations.ts"
import { decoderLayer, loadDecoderLayer } from "./decoderLayer.ts"
import { embed } from "./embed.ts"
import { finalNorm } from "./finalNorm.ts"
import { lmHead } from "./lmHead.ts"
import { pipeline, sequence, type Stage } from "./stage.ts"
import type { LocalDims } from "./workspace.ts"

/** The sizes of a rank's activations once the model is split over `shard.size` ranks. */
export const localDims = (config: ModelConfig, shard: TpShard): LocalDims => ({
  hidden: config.hiddenSize,
  heads: config.numHeads / shard.size,
  kvHeads: config.numKvHeads / shard.size,
  headDim: config.headDim,
  intermediate: config.intermediateSize / shard.size,
  vocab: config.vocabSize / shard.size,
  fullVocab: config.vocabSize
})

export type RankPipeline = Stage<StepInput, Logits, never, Device | Communicator>

/**
 * Loads this rank's shard of the model and composes its forward pass:
 * embed > decoder layers > final norm > lm_head. Each weight's sharding is declared where
 * its layer loads it; this function only wires the stages together.
 */
export const loadRankPipeline = (
  loader: WeightLoader,
  config: ModelConfig,
  shard: TpShard,
  kvCache: KvCacheStorage
): RankPipeline => {
  const H = config.hiddenSize
  const invFreq = loader.f32(inverseFrequencies(config))
  const context = { hidden: H, normEps: config.rmsNormEps, blockSize: kvCache.shape.blockSize, invFreq }

  const embedding = loadVocabShard(loader, "model.embed_tokens.weight", config.vocabSize, H, shard)
  const layers = Array.from({ length: config.numLayers }, (_, i) =>
    decoderLayer(i, loadDecoderLayer(loader, config, i, shard), kvCache.layers[i], context)
  )
  const head = config.tieWordEmbeddings
    ? embedding
    : loadVocabShard(loader, "lm_head.weight", config.vocabSize, H, shard)

  return pipeline(
    embed(embedding, H),
    sequence("decoder layers", layers),
    finalNorm(loader.whole("model.norm.weight"), H, config.rmsNormEps),
    lmHead(head, H, config.vocabSize)
  )
}
