import { shardRange, type TpShard, type WeightLoader } from "./shard.ts"

/** A rank's rows `[vocabStart, vocabEnd)` of an embedding or lm_head matrix `[V, H]`. */
export interface VocabShard {
  readonly weight: number
  readonly vocabStart: number
  readonly vocabEnd: number
}

export const loadVocabShard = (loader: WeightLoader, name: string, vocab: number, hidden: number, shard: TpShard): VocabShard => {
  const [vocabStart, vocabEnd] = shardRange(vocab, shard, name)
  return { weight: loader.rows([{ name, rows: [vocabStart, vocabEnd] }], hidden), vocabStart, vocabEnd }
}
