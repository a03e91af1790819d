import { HttpServerResponse } from "@effect/platform"
import { Effect, Exit, type Stream } from "effect"
import { randomUUID } from "node:crypto"
import type { ApiError } from "./errors.ts"
import { Lifecycle } from "./lifecycle.ts"
import { sseResponse } from "./sse.ts"

/**
 * What a generation endpoint answers: one JSON body, or a stream of chunks sent as SSE.
 * The endpoint's admission (see Lifecycle) lasts until the reply is complete: for JSON the
 * handler's end, for a stream its last event.
 */
export type Reply =
  | { readonly _tag: "Json"; readonly body: unknown }
  | { readonly _tag: "Events"; readonly chunks: Stream.Stream<unknown, ApiError> }

/** OpenAI-style ids: a prefix and 32 hex digits */
export const requestId = (prefix: "cmpl" | "chatcmpl"): string => `${prefix}-${randomUUID().replaceAll("-", "")}`

export const generationEndpoint = <R>(
  handler: Effect.Effect<Reply, ApiError, R>
): Effect.Effect<HttpServerResponse.HttpServerResponse, ApiError, R | Lifecycle> =>
  Effect.gen(function* () {
    const lifecycle = yield* Lifecycle
    const release = yield* lifecycle.admit
    const reply = yield* handler.pipe(Effect.onExit((exit) => (Exit.isSuccess(exit) && exit.value._tag === "Events" ? Effect.void : release)))
    return reply._tag === "Json" ? HttpServerResponse.unsafeJson(reply.body) : sseResponse(reply.chunks, release)
  })
