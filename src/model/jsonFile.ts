import { readFileSync } from "node:fs"
import { Either, ParseResult, Schema } from "effect"
import { loadError } from "./errors.ts"

/** Makes the error for a problem with a file; model loading and the tokenizer pass their own. */
export type FileErrorFactory = (path: string, problem: string) => Error

/** Reads a JSON file; a missing or malformed file is an error naming it. */
export function readJsonFile(path: string, fail: FileErrorFactory = loadError): unknown {
  let text: string
  try {
    text = readFileSync(path, "utf8")
  } catch (e) {
    throw fail(path, describeReadFailure(e))
  }
  try {
    return JSON.parse(text)
  } catch (e) {
    throw fail(path, `not valid JSON (${e instanceof Error ? e.message : String(e)})`)
  }
}

/**
 * Decodes with a Schema, turning a ParseError into one line that names the file and
 * the field: the deepest issue is the most specific one (a union reports its
 * branches' issues too).
 */
export function decodeOrThrow<A, I>(
  schema: Schema.Schema<A, I>,
  json: unknown,
  path: string,
  fail: FileErrorFactory = loadError,
): A {
  const result = Schema.decodeUnknownEither(schema)(json)
  if (Either.isRight(result)) return result.right
  const issues = ParseResult.ArrayFormatter.formatErrorSync(result.left)
  const deepest = issues.reduce((a, b) => (b.path.length > a.path.length ? b : a))
  const field = deepest.path.join(".")
  throw fail(path, field === "" ? deepest.message : `field "${field}": ${deepest.message}`)
}

/** "file not found" for ENOENT, otherwise the system's reason. */
export function describeReadFailure(e: unknown): string {
  const code = (e as { code?: unknown } | null)?.code
  if (code === "ENOENT") return "file not found"
  return `cannot read file (${e instanceof Error ? e.message : String(e)})`
}
