import { HttpServerResponse } from "@effect/platform"
import { Data } from "effect"

/**
 * Every way a request can fail, as tagged errors, and the one place that turns them into
 * OpenAI's error body `{"error": {"message", "type", "param", "code"}}` with their status.
 * The OpenAI clients read `type` and `code`; the status picks their exception class.
 */

/** malformed body, wrong types, out-of-range values, a prompt the context cannot hold: 400 */
export class BadRequest extends Data.TaggedError("BadRequest")<{
  readonly message: string
  readonly param?: string
  readonly code?: string
}> {}

/** a well-formed request for something this server does not do (tools, suffix, images): 422 */
export class Unsupported extends Data.TaggedError("Unsupported")<{ readonly message: string; readonly param: string }> {}

export class Unauthorized extends Data.TaggedError("Unauthorized")<{}> {}

export class ModelNotFound extends Data.TaggedError("ModelNotFound")<{ readonly model: string }> {}

export class UnknownRoute extends Data.TaggedError("UnknownRoute")<{ readonly method: string; readonly path: string }> {}

export class MethodNotAllowed extends Data.TaggedError("MethodNotAllowed")<{
  readonly method: string
  readonly path: string
  readonly allow: ReadonlyArray<string>
}> {}

export class PayloadTooLarge extends Data.TaggedError("PayloadTooLarge")<{ readonly limit: number }> {}

/** the engine's waiting queue is full: 429, the client retries later */
export class QueueFull extends Data.TaggedError("QueueFull")<{ readonly capacity: number }> {}

/** draining for shutdown, or the engine is not serving: 503 */
export class Unavailable extends Data.TaggedError("Unavailable")<{ readonly message: string }> {}

/** the engine failed a step while this request ran: 500 */
export class EngineFailure extends Data.TaggedError("EngineFailure")<{ readonly message: string }> {}

export type ApiError =
  | BadRequest
  | Unsupported
  | Unauthorized
  | ModelNotFound
  | UnknownRoute
  | MethodNotAllowed
  | PayloadTooLarge
  | QueueFull
  | Unavailable
  | EngineFailure

export interface ErrorBody {
  readonly error: { readonly message: string; readonly type: string; readonly param: string | null; readonly code: string | null }
}

interface Described {
  readonly status: number
  readonly body: ErrorBody
  readonly headers?: Record<string, string>
}

const body = (message: string, type: string, param: string | null = null, code: string | null = null): ErrorBody => ({
  error: { message, type, param, code }
})

/** seconds a client should wait after a 429: one engine step drains many queued requests */
const retryAfterSeconds = 1

export const describeError = (e: ApiError): Described => {
  switch (e._tag) {
    case "BadRequest":
      return { status: 400, body: body(e.message, "invalid_request_error", e.param ?? null, e.code ?? null) }
    case "Unsupported":
      return { status: 422, body: body(e.message, "invalid_request_error", e.param, "unsupported_parameter") }
    case "Unauthorized":
      return {
        status: 401,
        body: body("Incorrect API key provided: pass it as 'Authorization: Bearer <key>'.", "invalid_request_error", null, "invalid_api_key"),
        headers: { "www-authenticate": "Bearer" }
      }
    case "ModelNotFound":
      return { status: 404, body: body(`The model \`${e.model}\` does not exist.`, "invalid_request_error", "model", "model_not_found") }
    case "UnknownRoute":
      return { status: 404, body: body(`Invalid URL (${e.method} ${e.path})`, "invalid_request_error", null, "not_found") }
    case "MethodNotAllowed":
      return {
        status: 405,
        body: body(`Method ${e.method} is not allowed on ${e.path}; use ${e.allow.join(" or ")}.`, "invalid_request_error", null, "method_not_allowed"),
        headers: { allow: e.allow.join(", ") }
      }
    case "PayloadTooLarge":
      return { status: 413, body: body(`The request body exceeds ${e.limit} bytes.`, "invalid_request_error", null, "request_too_large") }
    case "QueueFull":
      return {
        status: 429,
        body: body(`The server is at capacity (${e.capacity} requests waiting); retry later.`, "rate_limit_error", null, "rate_limit_exceeded"),
        headers: { "retry-after": String(retryAfterSeconds) }
      }
    case "Unavailable":
      return { status: 503, body: body(e.message, "server_error", null, "service_unavailable") }
    case "EngineFailure":
      return { status: 500, body: body(e.message, "server_error", null, "engine_error") }
  }
}

export const errorResponse = (e: ApiError): HttpServerResponse.HttpServerResponse => {
  const { status, body, headers } = describeError(e)
  return HttpServerResponse.unsafeJson(body, { status, ...(headers && { headers }) })
}

/** for a defect: the message stays in the server's log, the client learns only that it failed */
export const internalErrorResponse = (): HttpServerResponse.HttpServerResponse =>
  HttpServerResponse.unsafeJson(body("The server failed to process the request.", "server_error", null, "internal_error"), { status: 500 })
