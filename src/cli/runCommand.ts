import { Cause, Effect, Exit, type Schema } from "effect"
import { helpText } from "./args.ts"

/**
 * Runs a command-line program: `--help` prints the flags, and any failure prints one clear
 * message (no stack trace) and exits non-zero.
 */
export const runCommand = <F extends Schema.Struct.Fields, E>(
  name: string,
  flags: Schema.Struct<F>,
  program: (argv: ReadonlyArray<string>) => Effect.Effect<void, E>
): void => {
  const argv = process.argv.slice(2)
  if (argv.includes("--help") || argv.includes("-h")) {
    process.stdout.write(helpText(name, flags))
    return
  }
  Effect.runPromiseExit(program(argv)).then((exit) => {
    if (Exit.isSuccess(exit)) process.exit(0)
    const failure = Cause.failureOption(exit.cause)
    const error = failure._tag === "Some" ? failure.value : Cause.squash(exit.cause)
    const message = typeof error === "object" && error !== null && "message" in error ? String(error.message) : String(error)
    process.stderr.write(`${name}: ${message}\n`)
    process.exit(failure._tag === "Some" ? 2 : 1)
  })
}
