import { Effect } from "effect"
import { hostLogitsOf, type Logits, type SampledTokens } from "./activations.ts"
import { stage } from "./stage.ts"

/** Chooses a token from one row of logits; `row` is the index of the sampled sequence in the plan. */
export type TokenChooser = (logits: Float32Array, row: number, logitsOf: Logits) => number

/** index of the largest logit, the first on ties (as torch.argmax) */
export const argmax = (logits: Float32Array): number => {
  let best = 0
  for (let v = 1; v < logits.length; v++) if (logits[v] > logits[best]) best = v
  return best
}

export const greedy: TokenChooser = (logits) => argmax(logits)

/** The sampler stage: one token per sampled row. */
export const sampler = (choose: TokenChooser = greedy) =>
  stage("sampler", (logits: Logits) =>
    Effect.sync(() => {
      const R = logits.plan.sampleRows.length
      const V = logits.vocabSize
      if (choose === greedy) return { plan: logits.plan, tokens: logits.argmax.slice() } satisfies SampledTokens
      const values = hostLogitsOf(logits, "the sampler")
      const tokens = new Int32Array(R)
      for (let r = 0; r < R; r++) tokens[r] = choose(values.subarray(r * V, (r + 1) * V), r, logits)
      return { plan: logits.plan, tokens } satisfies SampledTokens
    })
  )
