import { applyLogitsEdits, type LogitsEdits } from "./logitsEdits.ts"
import { philoxUniform } from "./philox.ts"
import type { SequenceSamplingState } from "./samplingState.ts"

/**
 * The sums over the kept candidates run over this many consecutive chunks of the candidate
 * list, each added up in order, then the chunk sums in order (the draw's total and cumulative
 * mass) or as a binary tree (top-k / top-p's masses, treeMass): orders a GPU block of as many
 * threads adds in parallel and reproduces bit for bit (cuda/sampler.cu).
 */
export const SUM_CHUNKS = 1024

/**
 * Turns one logits row into one token id. vLLM v1's order: logit bias and min_tokens
 * masking, then repetition / frequency / presence penalties, then either greedy argmax or
 * temperature -> min-p -> top-k -> top-p -> an inverse-CDF draw with one Philox uniform
 * keyed by (seed, position, sample index).
 *
 * Everything runs in float64 in scratch arrays sized to the vocabulary once, so a token
 * costs no array allocation. Ties are broken by the lower token id everywhere, and the draw
 * accumulates the kept probabilities in token id order, so the result is a function of
 * the logits, the seed and the position alone, which a GPU port reproduces with a masked
 * prefix scan over the vocabulary.
 */
export class Sampler {
  /** processed logits, then unnormalized probabilities exp((x - max) / T) */
  private readonly work: Float64Array
  /** kept token ids, in id order */
  private readonly candidates: Int32Array
  private readonly rngScratch = new Uint32Array(4)
  /** the candidates' chunk sums (SUM_CHUNKS of them) of the last chunkedTotal */
  private readonly chunkSums = new Float64Array(SUM_CHUNKS)
  /** treeMass's chunk sums, then its tree, and the count of its last members */
  private readonly treeSums = new Float64Array(SUM_CHUNKS)
  private treeCount = 0
  /** keepMostProbable's candidate values (id order), its values sorted or selected, the positions it searches */
  private readonly candidateValues: Float64Array
  private readonly sortedValues: Float64Array
  private readonly positions: Int32Array
  private numCandidates = 0

  constructor(readonly vocabSize: number) {
    this.work = new Float64Array(vocabSize)
    this.candidates = new Int32Array(vocabSize)
    this.candidateValues = new Float64Array(vocabSize)
    this.sortedValues = new Float64Array(vocabSize)
    this.positions = new Int32Array(vocabSize)
  }

  /**
   * Samples row `row` of `logits` ([R, vocabSize]) for a sequence whose next token sits
   * at `position` (prompt length + outputs so far).
   */
  sample(logits: Float32Array, row: number, state: SequenceSamplingState, position: number): number {
    this.applyLogitsProcessors(logits, row, state)
    return this.choose(state, position)
  }

  /**
   * The same draw with the logits processors given as edits (logitsEdits.ts, row `row`'s) in
   * place of the state's: what a device sampler does, for its stand-ins in tests.
   */
  sampleEdited(logits: Float32Array, row: number, state: SequenceSamplingState, position: number, edits: LogitsEdits | undefined): number {
    const V = this.vocabSize
    for (let i = 0; i < V; i++) this.work[i] = logits[row * V + i]
    if (edits !== undefined) applyLogitsEdits(this.work, edits, row)
    return this.choose(state, position)
  }

  /** greedy, or the draw, from the processed logits in `work` */
  private choose(state: SequenceSamplingState, position: number): number {
    if (state.greedy) return this.argmax()
    if (!this.buildDistribution(state)) return this.argmax()
    const u = philoxUniform(state.seedLo, state.seedHi, position, state.sampleIndex, this.rngScratch)
    return this.draw(u)
  }

  /**
   * The distribution a non-greedy draw picks from: kept token ids (in id order, the draw's
   * order) and their normalized probabilities. For tests and for debugging a sampler port.
   */
  distribution(logits: Float32Array, row: number, state: SequenceSamplingState): { ids: Int32Array; probs: Float64Array } {
    this.applyLogitsProcessors(logits, row, state)
    if (!this.buildDistribution(state)) {
      const best = this.argmax()
      return { ids: Int32Array.of(best), probs: Float64Array.of(1) }
    }
    const ids = this.candidates.slice(0, this.numCandidates)
    let total = 0
    for (let i = 0; i < ids.length; i++) total += this.work[ids[i]]
    return { ids, probs: Float64Array.from(ids, (id) => this.work[id] / total) }
  }

  private applyLogitsProcessors(logits: Float32Array, row: number, s: SequenceSamplingState): void {
    const V = this.vocabSize
    const w = this.work
    const base = row * V
    for (let i = 0; i < V; i++) w[i] = logits[base + i]
    for (let i = 0; i < s.logitBiasIds.length; i++) w[s.logitBiasIds[i]] += s.logitBiasValues[i]
    if (s.numOutputTokens < s.params.minTokens) {
      for (let i = 0; i < s.stopTokenIds.length; i++) w[s.stopTokenIds[i]] = Number.NEGATIVE_INFINITY
    }
    if (s.seenTokens !== null) {
      // CTRL's penalty: shrink positive logits, grow negative ones
      const rp = s.params.repetitionPenalty
      for (const id of s.seenTokens) w[id] = w[id] > 0 ? w[id] / rp : w[id] * rp
    }
    const freq = s.params.frequencyPenalty
    const presence = s.params.presencePenalty
    if (freq !== 0 || presence !== 0) {
      for (const [id, count] of s.outputTokenCounts) w[id] -= freq * count + presence
    }
  }

  private argmax(): number {
    const w = this.work
    let best = 0
    for (let i = 1; i < this.vocabSize; i++) if (w[i] > w[best]) best = i
    return best
  }

  /** Fills `candidates` and turns `work` into unnormalized probabilities; false if nothing is finite. */
  private buildDistribution(s: SequenceSamplingState): boolean {
    const V = this.vocabSize
    const w = this.work
    let max = Number.NEGATIVE_INFINITY
    for (let i = 0; i < V; i++) if (w[i] > max) max = w[i]
    if (max === Number.NEGATIVE_INFINITY) return false
    // a division, not a multiplication by 1/T: one rounding, as torch's logits.div_(T)
    const T = s.params.temperature
    // min-p relative to the top token, whose unnormalized probability is exp(0) = 1
    const minP = s.params.minP
    let n = 0
    for (let i = 0; i < V; i++) {
      const e = Math.exp((w[i] - max) / T)
      w[i] = e
      if (e > 0 && e >= minP) this.candidates[n++] = i
    }
    this.numCandidates = n
    const k = s.params.topK
    if (k > 0 && k < n) this.keepMostProbable(k, 1)
    if (s.params.topP < 1) this.keepMostProbable(Number.POSITIVE_INFINITY, s.params.topP)
    return true
  }

  /**
   * Keeps the shortest prefix of the candidates in (probability desc, id asc) order that has
   * `maxCount` members (top-k) or a tree mass (treeMass) of `topP` x that of them all (top-p),
   * leaving it in id order. The prefix is every value above a threshold plus the lowest ids of
   * those equal to it. A GPU block finds the same set (cuda/sampler.cu) by bisection over all
   * the values' bit patterns: the set is defined by the masses alone. Here the search narrows
   * first: the m largest values (a quickselect; m from maxCount or maxMass, x16 until they
   * reach), so that the searches over the threshold (galloping from a plain running sum's
   * guess) and over its ties sort and sum those alone (a member's chunk and order do not
   * change when the others are left out).
   */
  private keepMostProbable(maxCount: number, topP: number): void {
    const c = this.candidates
    const n = this.numCandidates
    const cv = this.candidateValues
    for (let j = 0; j < n; j++) cv[j] = this.work[c[j]]
    const maxMass = topP < 1 ? topP * this.treeMass(n, n, Number.NEGATIVE_INFINITY, 0) : Number.POSITIVE_INFINITY
    const pos = this.positions
    const reaches = (p: number, above: number, ties: number): boolean => {
      const mass = this.treeMass(n, p, above, ties)
      return this.treeCount >= maxCount || mass >= maxMass
    }
    // the m largest (and any equal to the m-th) in id order, positions pos[0, p), until they reach
    let p = 0
    // from maxCount, or from maxMass (no value exceeds the top one's 1, so fewer cannot reach it),
    // x16 a round, and all of them past n / 8
    const first = Number.isFinite(maxCount) ? maxCount : Math.max(64, Math.ceil(maxMass))
    for (let m = Math.min(n, first); ; m = 16 * m > n / 8 ? n : 16 * m) {
      const least = m >= n ? Number.NEGATIVE_INFINITY : this.largest(n, m)
      p = 0
      for (let j = 0; j < n; j++) if (cv[j] >= least) pos[p++] = j
      if (m >= n || reaches(p, least, Number.POSITIVE_INFINITY)) break
    }
    // the largest value v whose {values >= v} reaches: the smallest of pos's (all of them) does
    const sorted = this.sortedValues.subarray(0, p)
    for (let i = 0; i < p; i++) sorted[i] = cv[pos[i]]
    sorted.sort()
    // (the index where a plain running sum of the largest values reaches first: the tree sum
    // differs from it by roundings, so the answer is at or near it; gallop from there)
    const atLeast = (i: number) => reaches(p, sorted[i], Number.POSITIVE_INFINITY)
    let guess = 0
    for (let r = 1, sum = 0; r <= p; r++) {
      sum += sorted[p - r]
      if (r >= maxCount || sum >= maxMass) {
        guess = p - r
        break
      }
    }
    // lo holds (index 0, all of them, always does), hi does not (p: none)
    let lo = 0
    let hi = p
    if (atLeast(guess)) {
      lo = guess
      for (let step = 1; lo + step < p; step *= 2) {
        if (!atLeast(lo + step)) {
          hi = lo + step
          break
        }
        lo += step
      }
    } else {
      hi = guess
      for (let step = 1; hi - step > 0; step *= 2) {
        if (atLeast(hi - step)) {
          lo = hi - step
          break
        }
        hi -= step
      }
    }
    while (hi - lo > 1) {
      const mid = (lo + hi) >>> 1
      if (atLeast(mid)) lo = mid
      else hi = mid
    }
    const threshold = sorted[lo]
    let ties = 0
    for (let i = 0; i < p; i++) if (cv[pos[i]] === threshold) ties++
    // the fewest ties (in id order) that reach with the values above: none do not, all do
    let tlo = 0
    let thi = ties
    while (thi - tlo > 1) {
      const mid = (tlo + thi) >>> 1
      if (reaches(p, threshold, mid)) thi = mid
      else tlo = mid
    }
    let kept = 0
    let rank = 0
    for (let i = 0; i < p; i++) {
      const v = cv[pos[i]]
      if (v > threshold || (v === threshold && rank++ < thi)) c[kept++] = c[pos[i]]
    }
    this.numCandidates = kept
  }

  /** the m-th largest of candidateValues[0, n) (1 <= m < n): a quickselect on a copy */
  private largest(n: number, m: number): number {
    const a = this.sortedValues
    a.set(this.candidateValues.subarray(0, n))
    // the value of rank n - m in ascending order
    const target = n - m
    let lo = 0
    let hi = n - 1
    while (lo < hi) {
      const x = a[lo]
      const y = a[(lo + hi) >>> 1]
      const z = a[hi]
      const pivot = x < y ? (y < z ? y : x < z ? z : x) : x < z ? x : y < z ? z : y
      let i = lo
      let j = hi
      while (i <= j) {
        while (a[i] < pivot) i++
        while (a[j] > pivot) j--
        if (i <= j) {
          const t = a[i]
          a[i++] = a[j]
          a[j--] = t
        }
      }
      if (target <= j) hi = j
      else if (target >= i) lo = i
      else return a[target]
    }
    return a[target]
  }

  /**
   * The mass of the members among the candidates at positions pos[0, p) (id order; candidate
   * values in candidateValues): those above `above`, plus the first `ties` of those equal to it
   * (above -inf: all; ties +inf: every value >= above). Each of SUM_CHUNKS chunks of the whole
   * list (n candidates) adds its members in order, then the chunk sums are added as a fixed
   * binary tree (s[t] += s[t + stride], stride SUM_CHUNKS / 2 down to 1), as a GPU block does
   * in parallel. The members' count is left in treeCount. With p = n, pos is not read: every
   * candidate is a position.
   */
  private treeMass(n: number, p: number, above: number, ties: number): number {
    const cv = this.candidateValues
    const pos = this.positions
    const sums = this.treeSums.fill(0)
    const size = Math.ceil(n / SUM_CHUNKS)
    let count = 0
    let rank = 0
    // positions come in increasing order: each chunk's members are added together, in order
    let chunk = -1
    let chunkEnd = 0
    let sum = 0
    for (let i = 0; i < p; i++) {
      const j = p === n ? i : pos[i]
      const v = cv[j]
      if (v > above || (v === above && rank++ < ties)) {
        if (j >= chunkEnd) {
          if (chunk >= 0) sums[chunk] = sum
          chunk = Math.floor(j / size)
          chunkEnd = (chunk + 1) * size
          sum = 0
        }
        sum += v
        count++
      }
    }
    if (chunk >= 0) sums[chunk] = sum
    for (let stride = SUM_CHUNKS >> 1; stride > 0; stride >>= 1) {
      for (let t = 0; t < stride; t++) sums[t] += sums[t + stride]
    }
    this.treeCount = count
    return sums[0]
  }

  /** the candidates' mass, in SUM_CHUNKS chunks (their sums kept in chunkSums), then the chunks' sum */
  private chunkedTotal(): number {
    const c = this.candidates
    const w = this.work
    const n = this.numCandidates
    const size = Math.ceil(n / SUM_CHUNKS)
    let total = 0
    for (let k = 0; k < SUM_CHUNKS; k++) {
      let sum = 0
      for (let j = k * size, end = Math.min(n, (k + 1) * size); j < end; j++) sum += w[c[j]]
      this.chunkSums[k] = sum
      total += sum
    }
    return total
  }

  /**
   * Inverse CDF over the kept candidates in token id order: the first candidate whose cumulative
   * mass passes u * total, found chunk by chunk (whole chunks skipped by their sums). Where
   * rounding leaves a chunk's own scan short of the target, the scan goes on from there.
   */
  private draw(u: number): number {
    const c = this.candidates
    const w = this.work
    const n = this.numCandidates
    const size = Math.ceil(n / SUM_CHUNKS)
    const target = u * this.chunkedTotal()
    let cumulative = 0
    for (let k = 0; k < SUM_CHUNKS; k++) {
      if (cumulative + this.chunkSums[k] > target) {
        for (let j = k * size, end = Math.min(n, (k + 1) * size); j < end; j++) {
          cumulative += w[c[j]]
          if (cumulative > target) return c[j]
        }
      } else {
        cumulative += this.chunkSums[k]
      }
    }
    return c[n - 1]
  }
}
