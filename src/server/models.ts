import { HttpRouter, HttpServerResponse } from "@effect/platform"
import { Context, Effect, Either, Layer } from "effect"
import { ServedModel } from "../engine/servedModel.ts"
import { loadChatTemplate, type ChatTemplate } from "../tokenizer/chatTemplate.ts"
import { ServerConfig } from "./config.ts"
import { ModelNotFound } from "./errors.ts"
import { TokenTexts } from "./logprobsFormat.ts"

/**
 * The one model this server serves, under the name clients use, with what the endpoints
 * prepare once: its chat template (parsed at start-up, not per request) and the token
 * strings cache for logprobs.
 */
export interface ModelCatalogService {
  readonly name: string
  /** Unix seconds, the `created` of /v1/models */
  readonly created: number
  readonly root: string
  readonly maxModelLen: number
  /** Left: why there is none (the chat endpoint answers 400 with it) */
  readonly chatTemplate: Either.Either<ChatTemplate, string>
  readonly tokenTexts: TokenTexts
}

export class ModelCatalog extends Context.Tag("Tessera/ModelCatalog")<ModelCatalog, ModelCatalogService>() {
  static readonly layer = Layer.effect(
    ModelCatalog,
    Effect.gen(function* () {
      const model = yield* ServedModel
      const { servedModelName } = yield* ServerConfig
      const chatTemplate = Either.try({
        try: () => loadChatTemplate(model.dir, model.tokenizer),
        catch: (e) => (e instanceof Error ? e.message : String(e))
      })
      return {
        name: servedModelName,
        created: Math.floor(Date.now() / 1000),
        root: model.dir,
        maxModelLen: model.maxModelLen,
        chatTemplate,
        tokenTexts: new TokenTexts(model.tokenizer)
      } satisfies ModelCatalogService
    })
  )
}

/** a request may omit `model` (vLLM's default); naming another model is a 404 */
export const checkModel = (requested: string | undefined) =>
  Effect.flatMap(ModelCatalog, (catalog) =>
    requested === undefined || requested === catalog.name ? Effect.void : new ModelNotFound({ model: requested })
  )

/** OpenAI's model object, with vLLM's additions (root, parent, max_model_len) */
const card = (catalog: ModelCatalogService) => ({
  id: catalog.name,
  object: "model",
  created: catalog.created,
  owned_by: "tessera",
  root: catalog.root,
  parent: null,
  max_model_len: catalog.maxModelLen
})

export const listModels = Effect.map(ModelCatalog, (catalog) => HttpServerResponse.unsafeJson({ object: "list", data: [card(catalog)] }))

export const retrieveModel = Effect.gen(function* () {
  const { model } = yield* HttpRouter.params
  const catalog = yield* ModelCatalog
  if (model !== catalog.name) return yield* new ModelNotFound({ model: model ?? "" })
  return HttpServerResponse.unsafeJson(card(catalog))
})
