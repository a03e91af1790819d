/**
 * The query rows of an attention benchmark or check: sequence s computes `n` tokens from
 * position `start` on (`[start, n]`), so its earlier keys are already in the cache.
 */
export const attentionQueries = (seqs: ReadonlyArray<readonly [number, number]>) => {
  const queryToSeq: number[] = []
  const positions: number[] = []
  seqs.forEach(([start, n], s) => {
    for (let j = 0; j < n; j++) {
      queryToSeq.push(s)
      positions.push(start + j)
    }
  })
  return { queryToSeq, positions }
}
