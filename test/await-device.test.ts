import { Cause, Effect, Exit, Fiber } from "effect"
import { describe, expect, it } from "vitest"
import { awaitDevice } from "../src/effects/awaitDevice.ts"

describe("awaitDevice", () => {
  it("returns once the device is done, letting other fibers run while it waits", async () => {
    let polls = 0
    let otherSteps = 0
    const program = Effect.gen(function* () {
      // another fiber that makes progress only when the waiting one yields
      const other = yield* Effect.fork(Effect.forever(Effect.sync(() => otherSteps++).pipe(Effect.zipRight(Effect.yieldNow()))))
      yield* awaitDevice(() => ++polls >= 50)
      yield* Fiber.interrupt(other)
    })
    await Effect.runPromise(program)
    expect(polls).toBe(50)
    expect(otherSteps).toBeGreaterThan(10)
  })

  it("does not yield when the device is already done", () => {
    // runSync fails on an effect that suspends: a finished device must not cost a yield
    expect(() => Effect.runSync(awaitDevice(() => true))).not.toThrow()
  })

  it("surfaces a fault the poll reports as a defect", async () => {
    const exit = await Effect.runPromiseExit(
      awaitDevice(() => {
        throw new Error("illegal address")
      })
    )
    expect(Exit.isFailure(exit)).toBe(true)
    if (Exit.isFailure(exit)) expect(Cause.pretty(exit.cause)).toContain("illegal address")
  })
})
