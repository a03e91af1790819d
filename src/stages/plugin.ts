import { Data, Effect, Schema } from "effect"
import { isAbsolute, resolve } from "node:path"
import { pathToFileURL } from "node:url"
import type { Logits } from "./activations.ts"
import type { Stage } from "./stage.ts"

/**
 * A stage plugin: a module that exports a `name`, an Effect Schema `Options` for its options
 * and `make(options)` returning a stage. Plugins run between lm_head and the sampler, on the
 * host logits (a logits processor, a logit bias, a penalty).
 */
export interface StagePlugin<Options> {
  readonly name: string
  readonly Options: Schema.Schema<Options, any>
  readonly make: (options: Options) => Stage<Logits, Logits>
}

export class PluginError extends Data.TaggedError("PluginError")<{ readonly specifier: string; readonly message: string }> {}

/**
 * `--pipeline-plugin SPEC` where SPEC is a module specifier optionally followed by `=` and
 * the options as JSON: `./src/plugins/logitBias.ts={"bias":{"42":-100}}`.
 */
export const parsePluginSpec = (spec: string): { specifier: string; options: unknown } => {
  const eq = spec.indexOf("={")
  if (eq < 0) return { specifier: spec, options: {} }
  return { specifier: spec.slice(0, eq), options: JSON.parse(spec.slice(eq + 1)) }
}

const toImportable = (specifier: string): string =>
  specifier.startsWith(".") || isAbsolute(specifier) ? pathToFileURL(resolve(specifier)).href : specifier

export const loadPlugin = (specifier: string, options: unknown): Effect.Effect<Stage<Logits, Logits>, PluginError> =>
  Effect.gen(function* () {
    const fail = (message: string) => new PluginError({ specifier, message: `pipeline plugin ${specifier}: ${message}` })
    const module = yield* Effect.tryPromise({
      try: () => import(toImportable(specifier)) as Promise<Partial<StagePlugin<unknown>>>,
      catch: (cause) => fail(`cannot be imported (${cause instanceof Error ? cause.message : String(cause)})`)
    })
    if (typeof module.name !== "string" || !Schema.isSchema(module.Options) || typeof module.make !== "function") {
      return yield* fail("must export `name`, an Effect Schema `Options` and `make(options)`")
    }
    const decoded = yield* Schema.decodeUnknown(module.Options)(options).pipe(
      Effect.mapError((error) => fail(`invalid options: ${error.message}`))
    )
    return module.make(decoded)
  })
