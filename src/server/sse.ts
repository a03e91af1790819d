import { HttpServerResponse } from "@effect/platform"
import { Effect, Stream } from "effect"
import { describeError, type ApiError } from "./errors.ts"

/**
 * Server-sent events as OpenAI streams them: `data: <json>\n\n` per chunk, then
 * `data: [DONE]\n\n`. The status line is already 200 when a stream fails midway, so the
 * error goes in-band as one `data: {"error": ...}` event before [DONE], as vLLM does.
 */

const encoder = new TextEncoder()
const event = (data: string) => encoder.encode(`data: ${data}\n\n`)
const done = event("[DONE]")

export const sseResponse = <E extends ApiError>(
  chunks: Stream.Stream<unknown, E>,
  /** runs once the last byte is handed to the socket, or when the client goes away */
  onComplete: Effect.Effect<void>
): HttpServerResponse.HttpServerResponse => {
  const body = chunks.pipe(
    Stream.map((chunk) => event(JSON.stringify(chunk))),
    Stream.catchAll((e) => Stream.succeed(event(JSON.stringify(describeError(e).body)))),
    Stream.concat(Stream.succeed(done)),
    Stream.ensuring(onComplete)
  )
  return HttpServerResponse.stream(body, {
    contentType: "text/event-stream",
    headers: { "cache-control": "no-cache", "x-accel-buffering": "no" }
  })
}
