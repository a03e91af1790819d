import type { SequenceSamplingState } from "./samplingState.ts"

/**
 * A sequence's logits processors (Sampler.applyLogitsProcessors) as edits that a device
 * sampler applies to the row's float64 logits, so that a row with a logit bias, a min_tokens
 * mask or penalties is drawn where its logits are, with the CPU sampler's result.
 *
 * The edits of a row come in the CPU's four phases, in its order; within a phase every id is
 * distinct (a record's keys, a Set, a Map), so a phase may be applied in parallel:
 *   0 bias:        w[id] += value
 *   1 min_tokens:  w[id] = -inf                       (value unused)
 *   2 repetition:  w[id] = w[id] > 0 ? w[id] / value : w[id] * value
 *   3 frequency and presence: w[id] -= value, value = frequency x count + presence, computed
 *     here in float64 as the CPU computes it (a device must not fuse it into a multiply-add)
 * Ids outside the vocabulary are skipped (the CPU's typed-array writes ignore them).
 */
export const LOGITS_EDIT_PHASES = 4

export interface LogitsEdits {
  /** [rows * 4 + 1]: row r's phase p edits are [offsets[4r + p], offsets[4r + p + 1]) */
  readonly offsets: Int32Array
  readonly ids: Int32Array
  readonly values: Float64Array
}

/** the edits of each row's next token (undefined rows: none); undefined when no row has any */
export const logitsEdits = (states: ReadonlyArray<SequenceSamplingState | undefined>, rows: number): LogitsEdits | undefined => {
  const ids: number[] = []
  const values: number[] = []
  const offsets = new Int32Array(rows * LOGITS_EDIT_PHASES + 1)
  const push = (id: number, value: number) => {
    ids.push(id)
    values.push(value)
  }
  for (let r = 0; r < rows; r++) {
    const s = states[r]
    const phaseEnd = (phase: number) => (offsets[r * LOGITS_EDIT_PHASES + phase + 1] = ids.length)
    if (s !== undefined) s.logitBiasIds.forEach((id, i) => push(id, s.logitBiasValues[i]))
    phaseEnd(0)
    if (s !== undefined && s.numOutputTokens < s.params.minTokens) s.stopTokenIds.forEach((id) => push(id, 0))
    phaseEnd(1)
    if (s?.seenTokens) for (const id of s.seenTokens) push(id, s.params.repetitionPenalty)
    phaseEnd(2)
    if (s !== undefined && (s.params.frequencyPenalty !== 0 || s.params.presencePenalty !== 0)) {
      for (const [id, count] of s.outputTokenCounts) push(id, s.params.frequencyPenalty * count + s.params.presencePenalty)
    }
    phaseEnd(3)
  }
  return ids.length === 0 ? undefined : { offsets, ids: Int32Array.from(ids), values: Float64Array.from(values) }
}

/**
 * Row `row`'s edits applied to its float64 logits `w`: the reference a device port follows
 * (cuda/sampler.cu's apply_edits), each edit one float64 operation.
 */
export const applyLogitsEdits = (w: Float64Array, edits: LogitsEdits, row: number): void => {
  for (let phase = 0; phase < LOGITS_EDIT_PHASES; phase++) {
    const end = edits.offsets[row * LOGITS_EDIT_PHASES + phase + 1]
    for (let e = edits.offsets[row * LOGITS_EDIT_PHASES + phase]; e < end; e++) {
      const id = edits.ids[e]
      const v = edits.values[e]
      if (id < 0 || id >= w.length) continue
      if (phase === 0) w[id] += v
      else if (phase === 1) w[id] = Number.NEGATIVE_INFINITY
      else if (phase === 2) w[id] = w[id] > 0 ? w[id] / v : w[id] * v
      else w[id] -= v
    }
  }
}
