/**
 * Log-probabilities returned with each token. Like vLLM v1's default ("raw_logprobs") they
 * come from the model's logits before bias, penalties and temperature: what the model
 * believed, not what the sampler was allowed to pick.
 */
export interface TopLogprob {
  readonly tokenId: number
  readonly logprob: number
}

export interface TokenLogprobs {
  readonly tokenId: number
  readonly logprob: number
  /** 1 + the number of tokens the model found strictly more likely */
  readonly rank: number
  /** the `logprobs` most likely tokens, most likely first (ties: lower id first) */
  readonly top: ReadonlyArray<TopLogprob>
}

/** Computes logprobs of `tokenId` and the top `numTop` tokens of row `row` of `logits`. */
export const computeLogprobs = (
  logits: Float32Array,
  row: number,
  vocabSize: number,
  tokenId: number,
  numTop: number,
  topScratch: Int32Array,
): TokenLogprobs => {
  const base = row * vocabSize
  let max = Number.NEGATIVE_INFINITY
  for (let i = 0; i < vocabSize; i++) if (logits[base + i] > max) max = logits[base + i]
  let sum = 0
  for (let i = 0; i < vocabSize; i++) sum += Math.exp(logits[base + i] - max)
  const logSumExp = max + Math.log(sum)
  const chosen = logits[base + tokenId]
  let rank = 1
  let filled = 0
  for (let i = 0; i < vocabSize; i++) {
    const x = logits[base + i]
    if (x > chosen) rank++
    if (numTop === 0 || (filled === numTop && x <= logits[base + topScratch[numTop - 1]])) continue
    // ids arrive in increasing order, so "strictly greater" keeps the lower id first on ties
    let pos = filled < numTop ? filled++ : numTop - 1
    while (pos > 0 && logits[base + topScratch[pos - 1]] < x) {
      topScratch[pos] = topScratch[pos - 1]
      pos--
    }
    topScratch[pos] = i
  }
  const top: TopLogprob[] = []
  for (let j = 0; j < filled; j++) top.push({ tokenId: topScratch[j], logprob: logits[base + topScratch[j]] - logSumExp })
  return { tokenId, logprob: chosen - logSumExp, rank, top }
}
