import { Scheduler } from "effect"

/**
 * An Effect scheduler that hands the event loop a turn at least every `sliceMs` of fiber
 * work. Effect's default chains up to 2048 microtask drains before it lets the event loop
 * run, and the engine loop yields once per step, so under load incoming HTTP requests (and
 * a client's disconnect) waited for whole runs of engine steps: /health took 150 ms behind
 * one busy request on the embedded model. setImmediate runs after pending I/O, without
 * setTimeout's clamp, so the engine loses almost nothing and the listener stays responsive.
 */
export class EventLoopFairScheduler implements Scheduler.Scheduler {
  private sliceStart = performance.now()
  private readonly getRunner = Scheduler.SchedulerRunner.cached((depth, drain) => {
    if (depth >= 2048 || performance.now() - this.sliceStart >= this.sliceMs) {
      setImmediate(() => {
        this.sliceStart = performance.now()
        drain(0)
      })
    } else {
      queueMicrotask(() => drain(depth + 1))
    }
  })

  constructor(private readonly sliceMs: number) {}

  shouldYield(fiber: Parameters<Scheduler.Scheduler["shouldYield"]>[0]): number | false {
    return Scheduler.defaultScheduler.shouldYield(fiber)
  }

  scheduleTask(task: Scheduler.Task, priority: number, fiber?: Parameters<Scheduler.Scheduler["scheduleTask"]>[2]): void {
    this.getRunner(fiber).scheduleTask(task, priority)
  }
}
