import { Context, Effect, Layer } from "effect"

/**
 * Collectives of one rank's tensor-parallel group. A single rank's group is the identity;
 * multi-rank implementations (shared memory between CPU workers, NCCL on GPUs) provide the
 * same interface, so stages do not know how many ranks there are.
 */
export interface CommunicatorShape {
  readonly tpRank: number
  readonly tpSize: number
  /** sum `count` f32 values at `ptr` over the TP group, in place */
  readonly allReduceSum: (ptr: number, count: number) => Effect.Effect<void>
  /** concatenate each rank's `[rows, cols]` block along columns into `out` `[rows, cols * tpSize]` */
  readonly allGatherColumns: (out: number, ptr: number, rows: number, cols: number) => Effect.Effect<void>
}

export class Communicator extends Context.Tag("Tessera/Communicator")<Communicator, CommunicatorShape>() {}

/** a TP group of one: nothing to exchange; `copy` moves `count` f32 values on the device */
export const singleRank = (copy: (out: number, src: number, count: number) => void): CommunicatorShape => ({
  tpRank: 0,
  tpSize: 1,
  allReduceSum: () => Effect.void,
  allGatherColumns: (out, ptr, rows, cols) => Effect.sync(() => void (out !== ptr && copy(out, ptr, rows * cols)))
})

export const singleRankLayer = (copy: (out: number, src: number, count: number) => void) => Layer.succeed(Communicator, singleRank(copy))
