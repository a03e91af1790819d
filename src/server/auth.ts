import { HttpServerRequest } from "@effect/platform"
import { Effect } from "effect"
import { createHash, timingSafeEqual } from "node:crypto"
import { ServerConfig } from "./config.ts"
import { Unauthorized } from "./errors.ts"

/**
 * `--api-key`: /v1/* requires `Authorization: Bearer <key>`. Both sides are hashed before
 * comparing, so the comparison is constant-time whatever the lengths (timingSafeEqual needs
 * equal lengths, and comparing lengths first would leak the key's length).
 */

const digest = (text: string) => createHash("sha256").update(text, "utf8").digest()

export const keyMatches = (expected: string, authorization: string | undefined): boolean => {
  const given = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? "")?.[1] ?? ""
  return timingSafeEqual(digest(given), digest(expected)) && given !== ""
}

export const authorize = Effect.gen(function* () {
  const { apiKey } = yield* ServerConfig
  if (apiKey === undefined) return
  const request = yield* HttpServerRequest.HttpServerRequest
  if (!keyMatches(apiKey, request.headers["authorization"])) return yield* new Unauthorized()
})
