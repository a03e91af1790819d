/**
 * bun run serve [--model DIR] [--host H] [--port P] [--api-key K] ...
 * The OpenAI-compatible HTTP server; `--help` lists every flag.
 */
import { Effect, Schema } from "effect"
import { basename } from "node:path"
import { serve } from "../server/server.ts"
import { parseFlags } from "./args.ts"
import { embeddedModel, engineFlags } from "./engineFlags.ts"
import { runCommand } from "./runCommand.ts"

const PositiveInt = Schema.NumberFromString.pipe(Schema.int(), Schema.positive())

const Flags = Schema.Struct({
  ...engineFlags,
  host: Schema.optional(Schema.NonEmptyString).annotations({ description: "address to bind (default 127.0.0.1)" }),
  port: Schema.optional(Schema.NumberFromString.pipe(Schema.int(), Schema.between(0, 65535))).annotations({
    description: "TCP port (default 8000; 0 picks a free one)"
  }),
  servedModelName: Schema.optional(Schema.NonEmptyString).annotations({
    description: "the model name clients use (default: the model directory's name)"
  }),
  apiKey: Schema.optional(Schema.NonEmptyString).annotations({
    description: "require 'Authorization: Bearer KEY' on /v1/* (default: $TESSERA_API_KEY, else none)"
  }),
  maxRequestBodyBytes: Schema.optional(PositiveInt).annotations({ description: "largest request body (default 1 MiB)" }),
  maxWaitingRequests: Schema.optional(PositiveInt).annotations({
    description: "requests queued before the scheduler takes them; beyond it 429 (default 1024)"
  }),
  drainTimeout: Schema.optional(Schema.NumberFromString.pipe(Schema.nonNegative())).annotations({
    description: "seconds in-flight requests get to finish after SIGTERM (default 30)"
  }),
  engineStallTimeout: Schema.optional(Schema.NumberFromString.pipe(Schema.positive())).annotations({
    description: "seconds without engine progress, with work pending, before /ready fails (default 30)"
  })
})

/**
 * args.ts reports a bad value as the schema's whole tree; a user needs the flag and the
 * reasons at its leaves ("--port: Unable to decode "abc" into a number").
 */
const program = (argv: ReadonlyArray<string>) =>
  Effect.flatMap(parseFlags(argv, Flags), (flags) =>
    serve(
      {
        host: flags.host ?? "127.0.0.1",
        port: flags.port ?? 8000,
        servedModelName: flags.servedModelName ?? basename(flags.model ?? embeddedModel),
        apiKey: flags.apiKey ?? (process.env.TESSERA_API_KEY || undefined),
        maxRequestBodyBytes: flags.maxRequestBodyBytes ?? 1024 * 1024,
        maxWaitingRequests: flags.maxWaitingRequests ?? 1024,
        drainTimeoutSeconds: flags.drainTimeout ?? 30,
        engineStallSeconds: flags.engineStallTimeout ?? 30
      },
      flags
    )
  )

runCommand("bun run serve", Flags, program)
