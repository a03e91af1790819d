import { Effect, Either, ParseResult, Schema } from "effect"
import { mkdir } from "node:fs/promises"
import { dirname } from "node:path"
import { helpText, parseFlags } from "../src/cli/args.ts"
import { firstServedModel } from "./serve/client.ts"
import { latencyVsLoadSvg, writePlot } from "./serve/plot.ts"
import { datasetPrompts, estimateTokens, randomPrompts } from "./serve/prompts.ts"
import { progressReporter } from "../src/cli/progress.ts"
import { formatTable, gitCommit, type ServeResult } from "./serve/report.ts"
import { runLoad } from "./serve/run.ts"
import { summarize } from "./serve/summary.ts"

/**
 * The serving benchmark: streams /v1/completions requests at an OpenAI-compatible server
 * (Tessera's, vLLM's, any other) and reports what vLLM's benchmark_serving reports, so the
 * two engines are compared by one procedure. Usage: `bun run bench:serve --help`.
 */

const PositiveInt = Schema.NumberFromString.pipe(Schema.int(), Schema.positive())

const RequestRate = Schema.transformOrFail(Schema.String, Schema.Number, {
  strict: true,
  decode: (text, _, ast) => {
    const rate = text === "inf" ? Infinity : Number(text)
    return rate > 0 && !Number.isNaN(rate)
      ? ParseResult.succeed(rate)
      : ParseResult.fail(new ParseResult.Type(ast, text, `a request rate is a positive number or "inf", got "${text}"`))
  },
  encode: (rate) => ParseResult.succeed(rate === Infinity ? "inf" : String(rate))
})

// Optional flags are `Schema.optional` with their defaults applied below: src/cli/args.ts
// reads a field's help and kind from its AST, which `optionalWith({ default })` hides.
const Flags = Schema.Struct({
  url: Schema.String.annotations({ description: "server base URL, e.g. http://127.0.0.1:8000" }),
  requestRate: Schema.Array(RequestRate).annotations({
    description: "Poisson arrivals per second, or inf for all at once; repeat the flag to sweep"
  }),
  numPrompts: Schema.optional(PositiveInt).annotations({ description: "requests per request rate (default 100)" }),
  maxConcurrency: Schema.optional(PositiveInt).annotations({ description: "most requests in flight (default unlimited)" }),
  inputLen: Schema.optional(PositiveInt).annotations({
    description: "random prompt length in tokens, approximated by words (default 1024)"
  }),
  outputLen: Schema.optional(PositiveInt).annotations({ description: "max_tokens of every request, with ignore_eos (default 128)" }),
  dataset: Schema.optional(Schema.String).annotations({ description: 'JSONL of {"prompt": ...} instead of random prompts' }),
  model: Schema.optional(Schema.String).annotations({ description: "model name (default: the first of /v1/models)" }),
  endpoint: Schema.optional(Schema.String).annotations({ description: "completions path (default /v1/completions)" }),
  seed: Schema.optional(Schema.NumberFromString.pipe(Schema.int())).annotations({
    description: "seed of the arrival times and random prompts (default 0)"
  }),
  requestTimeout: Schema.optional(PositiveInt).annotations({ description: "seconds before a request fails (default 600)" }),
  resultFile: Schema.optional(Schema.String).annotations({
    description: "result JSON path (default bench/results/serve-<time>.json)"
  }),
  plot: Schema.optional(Schema.String).annotations({
    description: "latency-vs-load plot, .svg (or .png where rsvg-convert or ImageMagick is installed)"
  })
})

const withDefaults = (flags: Schema.Schema.Type<typeof Flags>) => ({
  ...flags,
  numPrompts: flags.numPrompts ?? 100,
  inputLen: flags.inputLen ?? 1024,
  outputLen: flags.outputLen ?? 128,
  endpoint: flags.endpoint ?? "/v1/completions",
  seed: flags.seed ?? 0,
  requestTimeout: flags.requestTimeout ?? 600
})

/** args.ts reports the schema's whole tree; the field and the innermost reason are what a user needs */
const briefly = (message: string): string => {
  const lines = message.split("\n").map((line) => line.replace(/^[\s└├│─]+/, ""))
  const field = lines.find((line) => line.startsWith("["))
  // an optional field's error also says the value is not undefined, which helps nobody
  const reason = lines.filter((line) => !line.startsWith("Expected undefined")).at(-1)
  return `${field ? `${field.replace(/[[\]"]/g, "")}: ` : ""}${reason}`
}

const main = async (argv: ReadonlyArray<string>): Promise<number> => {
  if (argv.includes("--help")) {
    process.stdout.write(helpText("bun run bench:serve", Flags))
    return 0
  }
  const parsed = await Effect.runPromise(Effect.either(parseFlags(argv, Flags)))
  if (Either.isLeft(parsed)) {
    process.stderr.write(`${briefly(parsed.left.message)}\n\n${helpText("bun run bench:serve", Flags)}`)
    return 2
  }
  const flags = withDefaults(parsed.right)
  const url = new URL(flags.endpoint, flags.url).toString()
  const model = flags.model ?? (await firstServedModel(flags.url))
  const prompts = flags.dataset
    ? await datasetPrompts(flags.dataset, flags.numPrompts)
    : randomPrompts(flags.numPrompts, flags.inputLen, flags.seed)
  const promptTokensEstimate = prompts.map(estimateTokens)

  const runs: Array<ServeResult["runs"][number]> = []
  for (const requestRate of flags.requestRate) {
    const label = `rate ${requestRate === Infinity ? "inf" : requestRate}`
    const run = await runLoad({
      url,
      model,
      prompts,
      outputLen: flags.outputLen,
      requestRate,
      maxConcurrency: flags.maxConcurrency,
      seed: flags.seed,
      timeoutSeconds: flags.requestTimeout,
      onProgress: progressReporter(label)
    })
    const metrics = summarize(run, promptTokensEstimate)
    process.stdout.write(`${formatTable(metrics, { requestRate, maxConcurrency: flags.maxConcurrency })}\n`)
    runs.push({ requestRate: requestRate === Infinity ? "inf" : requestRate, metrics })
  }

  const date = new Date()
  const result: ServeResult = {
    date: date.toISOString(),
    command: ["bun", "run", "bench:serve", ...argv].join(" "),
    commit: gitCommit(),
    url,
    parameters: {
      model,
      numPrompts: flags.numPrompts,
      requestRates: runs.map((r) => r.requestRate),
      maxConcurrency: flags.maxConcurrency ?? null,
      inputLen: flags.dataset ? null : flags.inputLen,
      outputLen: flags.outputLen,
      dataset: flags.dataset ?? null,
      seed: flags.seed
    },
    runs
  }
  const resultFile = flags.resultFile ?? `bench/results/serve-${date.toISOString().replace(/[:.]/g, "-")}.json`
  await mkdir(dirname(resultFile), { recursive: true })
  await Bun.write(resultFile, `${JSON.stringify(result, null, 2)}\n`)
  process.stderr.write(`result: ${resultFile}\n`)
  if (flags.plot) {
    const written = await writePlot(flags.plot, latencyVsLoadSvg(runs))
    process.stderr.write(`plot: ${written}${written === flags.plot ? "" : " (no SVG rasterizer on PATH for the .png)"}\n`)
  }
  return runs.every((r) => r.metrics.completed > 0) ? 0 : 1
}

process.exitCode = await main(process.argv.slice(2)).catch((error: unknown) => {
  process.stderr.write(`bench:serve: ${error instanceof Error ? error.message : String(error)}\n`)
  return 1
})
