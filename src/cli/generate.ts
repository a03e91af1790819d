/**
 * bun run generate --model DIR --prompt TEXT --max-tokens N --temperature T [--chat] [--json]
 * Streams the continuation to stdout; --json prints {"prompt_ids", "output_ids", "text"} at the end.
 */
import { Effect, Schema, Stream } from "effect"
import { Engine } from "../engine/Engine.ts"
import { engineLayer, ServedModel } from "../engine/servedModel.ts"
import { decodeSamplingParams } from "../sampling/SamplingParams.ts"
import { loadChatTemplate } from "../tokenizer/chatTemplate.ts"
import { parseFlags } from "./args.ts"
import { engineFlags } from "./engineFlags.ts"
import { runCommand } from "./runCommand.ts"

const Flags = Schema.Struct({
  ...engineFlags,
  prompt: Schema.String.annotations({ description: "the prompt (required)" }),
  chat: Schema.optional(Schema.Boolean).annotations({ description: "apply the model's chat template to the prompt as a user message" }),
  maxTokens: Schema.optional(Schema.NumberFromString).annotations({ description: "tokens to generate (default 16)" }),
  temperature: Schema.optional(Schema.NumberFromString).annotations({ description: "0 for greedy (default 1)" }),
  topP: Schema.optional(Schema.NumberFromString).annotations({ description: "nucleus sampling mass (default 1)" }),
  topK: Schema.optional(Schema.NumberFromString).annotations({ description: "top-k (default -1: off)" }),
  seed: Schema.optional(Schema.NumberFromString).annotations({ description: "sampling seed" }),
  ignoreEos: Schema.optional(Schema.Boolean).annotations({ description: "keep generating past EOS" }),
  json: Schema.optional(Schema.Boolean).annotations({ description: "print one JSON object at the end instead of streaming" })
})

const program = (argv: ReadonlyArray<string>) =>
  Effect.gen(function* () {
    const flags = yield* parseFlags(argv, Flags)
    const params = yield* decodeSamplingParams({
      max_tokens: flags.maxTokens ?? 16,
      temperature: flags.temperature,
      top_p: flags.topP,
      top_k: flags.topK,
      seed: flags.seed,
      ignore_eos: flags.ignoreEos
    })
    return yield* Effect.gen(function* () {
      const model = yield* ServedModel
      const engine = yield* Engine
      const promptIds = flags.chat
        ? loadChatTemplate(model.dir, model.tokenizer).apply([{ role: "user", content: flags.prompt }], { addGenerationPrompt: true })
        : model.tokenizer.encode(flags.prompt)
      const handle = yield* engine.generate({ promptTokenIds: promptIds, params })
      const outputIds: number[] = []
      let text = ""
      yield* Stream.runForEach(handle.stream, (delta) =>
        Effect.sync(() => {
          outputIds.push(...delta.tokenIds)
          text += delta.text
          if (!flags.json) process.stdout.write(delta.text)
        })
      )
      process.stdout.write(flags.json ? `${JSON.stringify({ prompt_ids: promptIds, output_ids: outputIds, text })}\n` : "\n")
    }).pipe(Effect.provide(engineLayer(flags)))
  })

runCommand("bun run generate", Flags, program)
