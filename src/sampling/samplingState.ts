import { isGreedy, type SamplingParams } from "./SamplingParams.ts"
import { seedKey } from "./philox.ts"

/**
 * What the sampler needs to know about one sequence, kept by the engine across steps (and
 * across preemptions, which is why output continues unchanged after recompute). Everything
 * the per-token path reads is precomputed here once per request.
 */
export interface SequenceSamplingState {
  readonly params: SamplingParams
  readonly greedy: boolean
  /** Philox key: the request's seed */
  readonly seedLo: number
  readonly seedHi: number
  /** which of the request's n samples: Philox counter word 1, so siblings draw differently */
  readonly sampleIndex: number
  /** EOS (unless ignore_eos) and stop_token_ids: masked while fewer than min_tokens outputs */
  readonly stopTokenIds: Int32Array
  readonly logitBiasIds: Int32Array
  readonly logitBiasValues: Float64Array
  /** output token -> count, for frequency/presence penalties */
  readonly outputTokenCounts: Map<number, number>
  /** prompt and output tokens, for the repetition penalty; null when it is disabled */
  readonly seenTokens: Set<number> | null
  numOutputTokens: number
}

export interface SamplingStateOptions {
  readonly promptTokenIds: ArrayLike<number>
  /** from the model's generation config; a list because some models have several */
  readonly eosTokenIds: ReadonlyArray<number>
  /** the request's seed: the user's, or one drawn at arrival */
  readonly seed: number
  readonly sampleIndex: number
}

export const makeSamplingState = (params: SamplingParams, options: SamplingStateOptions): SequenceSamplingState => {
  const [seedLo, seedHi] = seedKey(options.seed)
  const stops = new Set<number>(params.stopTokenIds)
  if (!params.ignoreEos) for (const id of options.eosTokenIds) stops.add(id)
  const biasEntries = Object.entries(params.logitBias)
  let seenTokens: Set<number> | null = null
  if (params.repetitionPenalty !== 1) {
    seenTokens = new Set<number>()
    for (let i = 0; i < options.promptTokenIds.length; i++) seenTokens.add(options.promptTokenIds[i])
  }
  return {
    params,
    greedy: isGreedy(params),
    seedLo,
    seedHi,
    sampleIndex: options.sampleIndex,
    stopTokenIds: Int32Array.from(stops),
    logitBiasIds: Int32Array.from(biasEntries, ([id]) => Number(id)),
    logitBiasValues: Float64Array.from(biasEntries, ([, bias]) => bias),
    outputTokenCounts: new Map(),
    seenTokens,
    numOutputTokens: 0,
  }
}

/**
 * Whether the next token's sampling reads nothing of the tokens so far (no penalty, no
 * min_tokens mask still on; a logit bias is fixed), so that the step that samples it can be
 * planned before the last token reaches the host (asynchronous scheduling).
 */
export const historyFree = (s: SequenceSamplingState): boolean =>
  s.seenTokens === null &&
  s.params.frequencyPenalty === 0 &&
  s.params.presencePenalty === 0 &&
  (s.numOutputTokens >= s.params.minTokens || s.stopTokenIds.length === 0)

/**
 * Whether the next token is drawn from the raw logits: nothing changes them first (no logit
 * bias, no penalty, no min_tokens mask still on). A greedy token is then the executor's own
 * argmax; otherwise a device sampler applies the changes first (logitsEdits.ts).
 */
export const logitsUnprocessed = (s: SequenceSamplingState): boolean => s.logitBiasIds.length === 0 && historyFree(s)

/** Whether the next token is simply the argmax of the raw logits: the executor's own argmax. */
export const argmaxSuffices = (s: SequenceSamplingState): boolean => s.greedy && logitsUnprocessed(s)

/** Records a sampled token so the next step's penalties and min_tokens see it. */
export const recordOutputToken = (state: SequenceSamplingState, tokenId: number): void => {
  state.outputTokenCounts.set(tokenId, (state.outputTokenCounts.get(tokenId) ?? 0) + 1)
  state.seenTokens?.add(tokenId)
  state.numOutputTokens++
}
