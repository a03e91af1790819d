import { Data, Effect, Either, ParseResult, Schema, SchemaAST } from "effect"
import { parseArgs } from "node:util"

/**
 * Command-line flags described by an Effect Schema struct: each field is a `--kebab-case`
 * flag, its description annotation is its help text, and decoding the strings through the
 * schema validates them. Unknown flags and bad values are errors, never ignored.
 */
export class UsageError extends Data.TaggedError("UsageError")<{ readonly message: string }> {}

const kebab = (name: string) => name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)

type Fields = Schema.Struct.Fields

interface Flag {
  readonly name: string
  readonly boolean: boolean
  readonly multiple: boolean
  readonly description: string
}

const isKind = (ast: SchemaAST.AST, test: (ast: SchemaAST.AST) => boolean): boolean => {
  if (test(ast)) return true
  if (SchemaAST.isUnion(ast)) return ast.types.some((t) => isKind(t, test))
  if (SchemaAST.isRefinement(ast)) return isKind(ast.from, test)
  return false
}

const description = (...annotated: ReadonlyArray<SchemaAST.Annotated>): string => {
  for (const a of annotated) {
    const d = SchemaAST.getDescriptionAnnotation(a)
    if (d._tag === "Some") return d.value
  }
  return ""
}

/** the flags of a struct, read from its encoded side (what the command line provides) */
const flagsOf = <F extends Fields>(schema: Schema.Struct<F>): ReadonlyArray<Flag> => {
  const fields: Record<string, { readonly ast: SchemaAST.Annotated & { readonly type?: SchemaAST.AST } }> = schema.fields as never
  return SchemaAST.getPropertySignatures(Schema.encodedSchema(schema).ast).map((ps) => {
    const declared = fields[String(ps.name)]?.ast
    return {
      name: String(ps.name),
      boolean: isKind(ps.type, SchemaAST.isBooleanKeyword),
      multiple: isKind(ps.type, SchemaAST.isTupleType),
      description: description(...(declared ? [declared, ...(declared.type ? [declared.type] : [])] : []), ps, ps.type)
    }
  })
}

export const helpText = <F extends Fields>(command: string, schema: Schema.Struct<F>): string => {
  const lines = flagsOf(schema).map((flag) => `  ${`--${kebab(flag.name)}${flag.boolean ? "" : " VALUE"}`.padEnd(34)} ${flag.description}`)
  return `usage: ${command} [flags]\n\n${lines.join("\n")}\n  ${"--help".padEnd(34)} show this help\n`
}

/**
 * Parses `argv` into the schema's type. Numbers arrive as strings: declare numeric fields with
 * `Schema.NumberFromString` (refined as needed).
 */
export const parseFlags = <F extends Fields>(
  argv: ReadonlyArray<string>,
  schema: Schema.Struct<F>
): Effect.Effect<Schema.Schema.Type<Schema.Struct<F>>, UsageError> =>
  Effect.gen(function* () {
    const flags = flagsOf(schema)
    const names = flags.map((f) => f.name)
    const options = Object.fromEntries(
      flags.map((f) => [kebab(f.name), { type: f.boolean ? "boolean" : "string", multiple: f.multiple }] as const)
    )
    const parsed = yield* Effect.try({
      try: () => parseArgs({ args: [...argv], options, strict: true, allowPositionals: false }).values,
      catch: (error) => new UsageError({ message: error instanceof Error ? error.message : String(error) })
    })
    const input = Object.fromEntries(names.flatMap((name) => (kebab(name) in parsed ? [[name, parsed[kebab(name)]]] : [])))
    const decoded = Schema.decodeUnknownEither(schema as unknown as Schema.Schema<Schema.Schema.Type<Schema.Struct<F>>, Schema.Schema.Encoded<Schema.Struct<F>>>, { onExcessProperty: "error" })(input)
    if (Either.isLeft(decoded)) {
      // one line per bad flag, named as the user typed it
      const issues = ParseResult.ArrayFormatter.formatErrorSync(decoded.left)
      // an optional flag's "or undefined" branch says nothing a user can act on
      const lines = issues.filter((issue) => !issue.message.startsWith("Expected undefined")).map((issue) => `${issue.path.length ? `--${kebab(String(issue.path[0]))}: ` : ""}${issue.message}`)
      return yield* new UsageError({ message: [...new Set(lines)].join("\n") })
    }
    return decoded.right
  })
