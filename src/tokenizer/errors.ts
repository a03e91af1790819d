import { Data } from "effect"

/** tokenizer.json / tokenizer_config.json could not be loaded; `message` names `path`. */
export class TokenizerLoadError extends Data.TaggedError("TokenizerLoadError")<{
  readonly path: string
  readonly message: string
}> {}

/**
 * A chat template is missing, fails to parse, or called raise_exception (templates use
 * it to reject conversations they cannot format, e.g. roles out of order).
 */
export class ChatTemplateError extends Data.TaggedError("ChatTemplateError")<{
  readonly message: string
}> {}
