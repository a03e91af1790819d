import type { LogitsEdits } from "../sampling/logitsEdits.ts"

/**
 * One iteration's decision, as a plain value: which tokens of which sequences run, where
 * their KV goes, and which rows produce logits. The scheduler makes it; every executor (CPU
 * pipeline, GPU worker) runs exactly this.
 */
export interface ScheduledSeq {
  readonly requestId: string
  /** tokens of this sequence whose KV is already in the cache before this step */
  readonly numComputedTokens: number
  /** tokens of this sequence computed in this step */
  readonly numScheduledTokens: number
  /** whether this step ends at the sequence's last known token, so its logits are sampled */
  readonly sample: boolean
}

/**
 * Sampling parameters of each sample row, for a provider that samples on the device
 * (src/sampling/sampler.ts's semantics: the logits processors, then greedy below temperature
 * 1e-5, else temperature -> min-p -> top-k -> top-p -> one Philox draw keyed by seed, position
 * and sample index).
 */
export interface RowSampling {
  readonly temperature: Float64Array
  readonly topP: Float64Array
  /** <= 0: off */
  readonly topK: Int32Array
  readonly minP: Float64Array
  readonly seedLo: Uint32Array
  readonly seedHi: Uint32Array
  /** the position of the token being sampled */
  readonly position: Int32Array
  readonly sampleIndex: Int32Array
  /** the rows' logit bias, min_tokens mask and penalties, applied before the above */
  readonly edits?: LogitsEdits
}

export interface StepPlan {
  readonly seqs: ReadonlyArray<ScheduledSeq>
  /** [T] token ids, sequences back to back in `seqs` order */
  readonly tokenIds: Int32Array
  /** [T] position of each token in its sequence */
  readonly positions: Int32Array
  /** [T] KV-cache slot of each token: block * blockSize + offset */
  readonly slotMapping: Int32Array
  /** [T] index into `seqs` of each token */
  readonly queryToSeq: Int32Array
  /** [S * maxBlocksPerSeq] block table of each sequence, rows padded with 0 */
  readonly blockTables: Int32Array
  readonly maxBlocksPerSeq: number
  /**
   * [T], for asynchronous scheduling: where each input id comes from when the host does not have
   * it yet. -1: `tokenIds[t]` holds it; r >= 0: the step before's argmax of its sample row r;
   * -2 - r: the step before's device draw of its row r (catalog `take_tokens`). The step before is
   * the one the same executor ran just before this one.
   */
  readonly previousTokens?: Int32Array
  /** [R] token rows whose logits this step returns, one per sequence with `sample` */
  readonly sampleRows: Int32Array
  /**
   * Whether the host needs the sample rows' logits (default true). The argmax of every row
   * comes back either way; a step whose rows are all plain greedy leaves the logits on the
   * device, so it copies R ids instead of R x vocabulary floats.
   */
  readonly hostLogits?: boolean
  /** when set, a provider that samples on the device draws every sample row's token there */
  readonly sampling?: RowSampling
  /**
   * when set, every sample row's logprobs (of its token: the device's draw where `sampling` is
   * set, else the argmax) with this many most likely tokens, made where the logits are: for an
   * executor that `samplesOnDevice`, so that logprobs need no logits on the host
   */
  readonly logprobs?: number
}
