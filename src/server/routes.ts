import { HttpRouter, HttpServerRequest } from "@effect/platform"
import { Cause, Effect } from "effect"
import { authorize } from "./auth.ts"
import { chatCompletions } from "./chat.ts"
import { completions } from "./completions.ts"
import { errorResponse, internalErrorResponse, MethodNotAllowed, UnknownRoute, type ApiError } from "./errors.ts"
import { health, metrics, ready } from "./health.ts"
import { listModels, retrieveModel } from "./models.ts"
import { generationEndpoint } from "./reply.ts"

/**
 * The routes, and what every request goes through around them: the API key on /v1/*,
 * 404 and 405 (told apart by this table), and every failure turned into OpenAI's error
 * body, so that no request can end without a JSON answer.
 */

const router = HttpRouter.empty.pipe(
  HttpRouter.get("/v1/models", listModels),
  HttpRouter.get("/v1/models/:model", retrieveModel),
  HttpRouter.post("/v1/completions", generationEndpoint(completions)),
  HttpRouter.post("/v1/chat/completions", generationEndpoint(chatCompletions)),
  HttpRouter.get("/health", health),
  HttpRouter.get("/ready", ready),
  HttpRouter.get("/metrics", metrics)
)

const patterns = Array.from(router.routes, (route) => ({
  methods: route.method === "GET" ? ["GET", "HEAD"] : [route.method],
  regex: new RegExp(`^${route.path.replace(/:[^/]+/g, "[^/]+")}$`)
}))

/** the methods some route has for this path: none is a 404, some is a 405 */
const allowedMethods = (path: string) => [...new Set(patterns.filter((p) => p.regex.test(path)).flatMap((p) => p.methods))]

const pathOf = (url: string) => {
  const query = url.indexOf("?")
  return query === -1 ? url : url.slice(0, query)
}

export const httpApp = Effect.map(HttpRouter.toHttpApp(router), (routed) =>
  Effect.gen(function* () {
    const request = yield* HttpServerRequest.HttpServerRequest
    const path = pathOf(request.url)
    if (path.startsWith("/v1/")) yield* authorize
    return yield* routed.pipe(
      Effect.catchTag("RouteNotFound", (): Effect.Effect<never, MethodNotAllowed | UnknownRoute> => {
        const allow = allowedMethods(path)
        return allow.length > 0 ? new MethodNotAllowed({ method: request.method, path, allow }) : new UnknownRoute({ method: request.method, path })
      })
    )
  }).pipe(
    Effect.catchAll((e) => Effect.succeed(isApiError(e) ? errorResponse(e) : internalErrorResponse())),
    Effect.catchAllCause((cause) =>
      Cause.isInterruptedOnly(cause)
        ? Effect.failCause(cause)
        : Effect.as(Effect.logError("request failed", cause), internalErrorResponse())
    )
  )
)

const apiErrorTags: ReadonlySet<string> = new Set<ApiError["_tag"]>([
  "BadRequest",
  "Unsupported",
  "Unauthorized",
  "ModelNotFound",
  "UnknownRoute",
  "MethodNotAllowed",
  "PayloadTooLarge",
  "QueueFull",
  "Unavailable",
  "EngineFailure"
])

const isApiError = (e: unknown): e is ApiError =>
  typeof e === "object" && e !== null && "_tag" in e && apiErrorTags.has((e as { _tag: string })._tag)
