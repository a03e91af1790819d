import { Effect } from "effect"

/**
 * A typed step of the forward pass: an Effect from `In` to `Out` that needs services `R`.
 * Stages run once per step (not per kernel), so their Effect overhead is paid a few dozen
 * times per step, never per token or per element.
 */
export interface Stage<In, Out, E = never, R = never> {
  readonly name: string
  readonly run: (input: In) => Effect.Effect<Out, E, R>
}

export const stage = <In, Out, E = never, R = never>(
  name: string,
  run: (input: In) => Effect.Effect<Out, E, R>
): Stage<In, Out, E, R> => ({ name, run })

/** `first` then `second`: the output of one is the input of the next. */
export const andThen = <A, B, C, E1, E2, R1, R2>(
  first: Stage<A, B, E1, R1>,
  second: Stage<B, C, E2, R2>
): Stage<A, C, E1 | E2, R1 | R2> =>
  stage(`${first.name} > ${second.name}`, (input) => Effect.flatMap(first.run(input), second.run))

/** A run of stages of one type, such as the decoder layers of a pipeline stage. */
export const sequence = <A, E, R>(name: string, stages: ReadonlyArray<Stage<A, A, E, R>>): Stage<A, A, E, R> =>
  stage(name, (input) => Effect.reduce(stages, input, (value, next) => next.run(value)))

/** Compose stages left to right into one stage; each output type must be the next input type. */
export function pipeline<A, B, C, E1, E2, R1, R2>(s1: Stage<A, B, E1, R1>, s2: Stage<B, C, E2, R2>): Stage<A, C, E1 | E2, R1 | R2>
export function pipeline<A, B, C, D, E1, E2, E3, R1, R2, R3>(
  s1: Stage<A, B, E1, R1>,
  s2: Stage<B, C, E2, R2>,
  s3: Stage<C, D, E3, R3>
): Stage<A, D, E1 | E2 | E3, R1 | R2 | R3>
export function pipeline<A, B, C, D, F, E1, E2, E3, E4, R1, R2, R3, R4>(
  s1: Stage<A, B, E1, R1>,
  s2: Stage<B, C, E2, R2>,
  s3: Stage<C, D, E3, R3>,
  s4: Stage<D, F, E4, R4>
): Stage<A, F, E1 | E2 | E3 | E4, R1 | R2 | R3 | R4>
export function pipeline<A, B, C, D, F, G, E1, E2, E3, E4, E5, R1, R2, R3, R4, R5>(
  s1: Stage<A, B, E1, R1>,
  s2: Stage<B, C, E2, R2>,
  s3: Stage<C, D, E3, R3>,
  s4: Stage<D, F, E4, R4>,
  s5: Stage<F, G, E5, R5>
): Stage<A, G, E1 | E2 | E3 | E4 | E5, R1 | R2 | R3 | R4 | R5>
export function pipeline(...stages: ReadonlyArray<Stage<any, any, any, any>>): Stage<any, any, any, any> {
  return stage(stages.map((s) => s.name).join(" > "), (input) => Effect.reduce(stages, input, (value, next) => next.run(value)))
}
