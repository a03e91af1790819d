import { Data } from "effect"

/**
 * Loading a model directory failed. `path` is the file (or directory) at fault and
 * `message` already names it, so the error reads well when thrown from synchronous
 * code as a plain exception or printed from an Effect failure.
 */
export class ModelLoadError extends Data.TaggedError("ModelLoadError")<{
  readonly path: string
  readonly message: string
}> {}

/** Builds a ModelLoadError whose message starts with the path it is about. */
export const loadError = (path: string, problem: string): ModelLoadError =>
  new ModelLoadError({ path, message: `${path}: ${problem}` })
