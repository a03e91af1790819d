import { applyLogitsEdits, type LogitsEdits } from "./logitsEdits.ts"
import { philoxUniform } from "./philox.ts"
import type { SequenceSamplingState } from "./samplingState.ts"

const median3 = (a: number, b: number, c: number): number =>
  a > b ? (b > c ? b : a > c ? c : a) : a > c ? a : b > c ? c : b

/**
 * The sums over the kept candidates (the draw's total and cumulative mass, top-p's total) run
 * over this many consecutive chunks of the candidate list, each added up in order, then the
 * chunk sums in order: the order a GPU block of as many threads adds in parallel and
 * reproduces bit for bit (cuda/sampler.cu).
 */
export const SUM_CHUNKS = 1024

const swap = (c: Int32Array, i: number, j: number): void => {
  const t = c[i]
  c[i] = c[j]
  c[j] = t
}

/**
 * Turns one logits row into one token id. vLLM v1's order: logit bias and min_tokens
 * masking, then repetition / frequency / presence penalties, then either greedy argmax or
 * temperature -> min-p -> top-k -> top-p -> an inverse-CDF draw with one Philox uniform
 * keyed by (seed, position, sample index).
 *
 * Everything runs in float64 in scratch arrays sized to the vocabulary once, so a token
 * costs no allocation. Ties are broken by the lower token id everywhere, and the draw
 * accumulates the kept probabilities in token id order, so the result is a function of
 * the logits, the seed and the position alone, which a GPU port reproduces with a masked
 * prefix scan over the vocabulary.
 */
export class Sampler {
  /** processed logits, then unnormalized probabilities exp((x - max) / T) */
  private readonly work: Float64Array
  /** kept token ids; in id order except inside keepMostProbable */
  private readonly candidates: Int32Array
  private readonly rngScratch = new Uint32Array(4)
  /** the candidates' chunk sums (SUM_CHUNKS of them) of the last chunkedTotal */
  private readonly chunkSums = new Float64Array(SUM_CHUNKS)
  private numCandidates = 0

  constructor(readonly vocabSize: number) {
    this.work = new Float64Array(vocabSize)
    this.candidates = new Int32Array(vocabSize)
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
    if (k > 0 && k < n) this.keepMostProbable(k, Number.POSITIVE_INFINITY)
    if (s.params.topP < 1) this.keepMostProbable(Number.POSITIVE_INFINITY, s.params.topP * this.chunkedTotal())
    return true
  }

  /**
   * Keeps the shortest prefix of the candidates in (probability desc, id asc) order whose
   * count reaches `maxCount` (top-k) or whose mass reaches `maxMass` (top-p), leaving it in
   * id order. A quickselect with three-way partitions: linear on average, no sort of the
   * whole vocabulary (a flat distribution can keep most of it), ties split by lower id.
   */
  private keepMostProbable(maxCount: number, maxMass: number): void {
    const c = this.candidates
    const w = this.work
    // c[0, lo) is kept and outranks c[lo, hi); c[hi, n) is dropped; count and mass are c[0, lo)'s
    let lo = 0
    let hi = this.numCandidates
    let count = 0
    let mass = 0
    while (lo < hi) {
      const pivot = median3(w[c[lo]], w[c[(lo + hi) >>> 1]], w[c[hi - 1]])
      // Dutch flag: greater [lo, g), equal [g, e), less [e, hi)
      let g = lo
      let e = hi
      for (let i = lo; i < e; ) {
        const x = w[c[i]]
        if (x > pivot) swap(c, i++, g++)
        else if (x < pivot) swap(c, i, --e)
        else i++
      }
      let greaterMass = 0
      for (let j = lo; j < g; j++) greaterMass += w[c[j]]
      if (count + (g - lo) >= maxCount || mass + greaterMass >= maxMass) {
        hi = g
        continue
      }
      count += g - lo
      mass += greaterMass
      c.subarray(g, e).sort()
      let j = g
      while (j < e && count < maxCount && mass < maxMass) {
        mass += w[c[j++]]
        count++
      }
      lo = j
      if (j < e || count >= maxCount || mass >= maxMass) break
    }
    this.numCandidates = lo
    c.subarray(0, lo).sort()
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
