import { Effect, Schema } from "effect"
import { hostLogitsOf, type Logits } from "../stages/activations.ts"
import { stage } from "../stages/stage.ts"

/**
 * Adds a fixed bias to chosen tokens' logits for every request, as OpenAI's `logit_bias`
 * does per request: `{"bias": {"<token id>": -100..100}}`. -100 bans a token, 100 forces it.
 */
export const name = "logit-bias"

export const Options = Schema.Struct({
  bias: Schema.Record({ key: Schema.String, value: Schema.Number.pipe(Schema.between(-100, 100)) }).pipe(
    // checked on the whole record: a refined key schema would silently drop bad keys
    Schema.filter((bias) => Object.keys(bias).every((k) => /^\d+$/.test(k)) || "bias keys must be token ids")
  )
})

export const make = (options: typeof Options.Type) => {
  const entries = Object.entries(options.bias).map(([token, bias]) => [Number(token), bias] as const)
  return stage("logit bias", (logits: Logits) =>
    Effect.sync(() => {
      const V = logits.vocabSize
      const values = hostLogitsOf(logits, "logit bias")
      for (let row = 0; row < values.length / V; row++) {
        for (const [token, bias] of entries) if (token < V) values[row * V + token] += bias
      }
      return logits
    })
  )
}
