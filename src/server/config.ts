import { Context } from "effect"

/** What the HTTP front end was told on the command line, beyond the engine's own flags. */
export interface ServerOptions {
  readonly host: string
  readonly port: number
  /** the `model` clients name; the model directory's basename unless given */
  readonly servedModelName: string
  /** when set, /v1/* requires `Authorization: Bearer <apiKey>` */
  readonly apiKey: string | undefined
  readonly maxRequestBodyBytes: number
  /** requests accepted but not yet scheduled; beyond it, 429 */
  readonly maxWaitingRequests: number
  /** after SIGTERM, how long in-flight requests may take before the process exits anyway */
  readonly drainTimeoutSeconds: number
  /** /ready fails when work is pending and the engine has not progressed for this long */
  readonly engineStallSeconds: number
}

export class ServerConfig extends Context.Tag("Tessera/ServerConfig")<ServerConfig, ServerOptions>() {}
