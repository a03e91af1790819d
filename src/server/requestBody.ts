import { HttpServerRequest } from "@effect/platform"
import { Effect, Either, ParseResult, Schema, Stream } from "effect"
import { ServerConfig } from "./config.ts"
import { BadRequest, PayloadTooLarge } from "./errors.ts"

/**
 * A JSON request body, read under the size limit and decoded by a Schema. The limit is
 * checked on the declared Content-Length first and again while reading, so a chunked or
 * lying client cannot make the server buffer more than the limit.
 */

const utf8 = new TextDecoder("utf-8", { fatal: true })

const readLimited = (request: HttpServerRequest.HttpServerRequest, limit: number) =>
  Effect.gen(function* () {
    const declared = Number(request.headers["content-length"] ?? Number.NaN)
    if (declared > limit) return yield* new PayloadTooLarge({ limit })
    // a request without a body has no stream to read (the platform fails it): it is empty
    if ((request.source as Request).body === null) return Buffer.alloc(0)
    const chunks: Uint8Array[] = []
    let size = 0
    yield* request.stream.pipe(
      Stream.mapError(() => new BadRequest({ message: "The request body could not be read." })),
      Stream.runForEach((chunk) => {
        size += chunk.length
        if (size > limit) return new PayloadTooLarge({ limit })
        chunks.push(chunk)
        return Effect.void
      })
    )
    return Buffer.concat(chunks, size)
  })

/** "param: reason", from the first failing field; unions list each alternative's reason */
export const describeParseError = (error: ParseResult.ParseError): BadRequest => {
  const issues = ParseResult.ArrayFormatter.formatErrorSync(error)
  const first = issues[0]
  const samePath = issues.filter((i) => i.path.join(".") === first.path.join("."))
  // `optionalWith({ nullable: true })` adds "Expected null / undefined" branches nobody asked about
  const reasons = samePath.map((i) => i.message).filter((m) => !/^Expected (null|undefined), actual/.test(m))
  const param = first.path.length > 0 ? first.path.join(".") : undefined
  const reason = (reasons.length > 0 ? reasons : [first.message]).join("; or ")
  return new BadRequest({ message: param ? `${param}: ${reason}` : reason, ...(param && { param }) })
}

export const decodeJsonBody = <A, I>(schema: Schema.Schema<A, I>) =>
  Effect.gen(function* () {
    const request = yield* HttpServerRequest.HttpServerRequest
    const { maxRequestBodyBytes } = yield* ServerConfig
    const bytes = yield* readLimited(request, maxRequestBodyBytes)
    let text: string
    try {
      text = utf8.decode(bytes)
    } catch {
      return yield* new BadRequest({ message: "The request body is not valid UTF-8." })
    }
    if (bytes.length === 0) return yield* new BadRequest({ message: "The request body is empty; send a JSON object." })
    let json: unknown
    try {
      json = JSON.parse(text)
    } catch (e) {
      return yield* new BadRequest({ message: `The request body is not valid JSON: ${e instanceof Error ? e.message : String(e)}` })
    }
    if (typeof json !== "object" || json === null || Array.isArray(json)) {
      return yield* new BadRequest({ message: "The request body must be a JSON object." })
    }
    const decoded = Schema.decodeUnknownEither(schema, { errors: "all" })(json)
    if (Either.isLeft(decoded)) return yield* describeParseError(decoded.left)
    return decoded.right
  })
