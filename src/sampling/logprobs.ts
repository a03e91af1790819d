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

/**
 * computeLogprobs for every row of a step, made on the device (cuda/logprobs.cu) from the same
 * definitions: row r's token's logprob and rank, and its numTop most likely tokens at
 * [r * numTop, (r + 1) * numTop) of topIds and topLogprobs (id -1 past the vocabulary).
 */
export interface RowLogprobs {
  readonly numTop: number
  readonly logprob: Float64Array
  readonly rank: Int32Array
  readonly topIds: Int32Array
  readonly topLogprobs: Float64Array
}

/** Row `row` of `rows` as a TokenLogprobs of `tokenId`, with the `numTop` (<= rows.numTop) most likely tokens. */
export const rowTokenLogprobs = (rows: RowLogprobs, row: number, tokenId: number, numTop: number): TokenLogprobs => {
  const top: TopLogprob[] = []
  for (let j = 0; j < numTop; j++) {
    const at = row * rows.numTop + j
    if (rows.topIds[at] < 0) break
    top.push({ tokenId: rows.topIds[at], logprob: rows.topLogprobs[at] })
  }
  return { tokenId, logprob: rows.logprob[row], rank: rows.rank[row], top }
}
