/**
 * The kernel threads of a provider: Bun Workers, each with its own instance of the kernel
 * module on the shared memory. A split call posts one part to each thread through the
 * control block, runs the first part on the calling thread, and waits for the others.
 */
import { ARGC, awaitValue, callerSpinMicros, DONE, FAILED, KERNEL, readError, SEQ, type Slot, slotBytes, slotOf, STOP } from "./control.ts"
import type { KernelThreadInit, KernelThreadStarted } from "./worker.ts"

type Export = (...args: number[]) => void

export class KernelThreads {
  private seq = 0
  private closed = false

  private constructor(
    private readonly workers: ReadonlyArray<Worker>,
    private readonly slots: ReadonlyArray<Slot>
  ) {}

  /** threads that run parts of a call, the caller's included */
  get size(): number {
    return this.workers.length + 1
  }

  /** starts one thread per scratch region (each thread's private working memory) */
  static async start(
    module: WebAssembly.Module,
    memory: WebAssembly.Memory,
    scratch: ReadonlyArray<number>,
    scratchBytes: number
  ): Promise<KernelThreads> {
    const controlBlock = new SharedArrayBuffer(slotBytes * scratch.length)
    const workers = scratch.map(() => new Worker(new URL("./worker.ts", import.meta.url).href))
    try {
      await Promise.all(
        workers.map(
          (worker, slot) =>
            new Promise<void>((resolve, reject) => {
              worker.onmessage = ({ data }: MessageEvent<KernelThreadStarted>) =>
                data === null ? resolve() : reject(new Error(`kernel thread ${slot + 1} failed to start: ${data}`))
              worker.onerror = (event) => reject(new Error(`kernel thread ${slot + 1} failed to start: ${event.message}`))
              const init: KernelThreadInit = { module, memory, controlBlock, slot, scratch: scratch[slot], scratchBytes }
              worker.postMessage(init)
            })
        )
      )
    } catch (error) {
      for (const worker of workers) worker.terminate()
      throw error
    }
    // the threads block in Atomics.wait, never in their event loop: they must not keep the process alive
    for (const worker of workers) worker.unref()
    return new KernelThreads(workers, scratch.map((_, slot) => slotOf(controlBlock, slot)))
  }

  /**
   * Runs `fn(...args, bounds[p], bounds[p + 1])` for each part p < parts: part 0 here, part p on
   * thread p. `kernel` is the catalog index of `fn`. Appends the bounds of part 0 to `args`.
   */
  run(kernel: number, fn: Export, args: number[], bounds: Int32Array, parts: number): void {
    if (this.closed) throw new Error("WASM kernel provider is closed")
    const seq = (this.seq = (this.seq + 1) | 0)
    const argc = args.length
    for (let p = 1; p < parts; p++) {
      const { control, args: slotArgs } = this.slots[p - 1]
      for (let i = 0; i < argc; i++) slotArgs[i] = args[i]
      slotArgs[argc] = bounds[p]
      slotArgs[argc + 1] = bounds[p + 1]
      control[KERNEL] = kernel
      control[ARGC] = argc + 2
      Atomics.store(control, SEQ, seq)
      Atomics.notify(control, SEQ)
    }
    try {
      args.push(bounds[0], bounds[1])
      fn.apply(undefined, args)
    } finally {
      // even when part 0 failed: the next call must not start while threads still run this one
      for (let p = 1; p < parts; p++) awaitValue(this.slots[p - 1].control, DONE, seq, callerSpinMicros)
    }
    for (let p = 1; p < parts; p++) {
      const slot = this.slots[p - 1]
      if (slot.control[FAILED]) throw new Error(`kernel thread ${p} failed: ${readError(slot)}`)
    }
  }

  close(): void {
    if (this.closed) return
    this.closed = true
    for (const { control } of this.slots) {
      control[KERNEL] = STOP
      Atomics.store(control, SEQ, (this.seq + 1) | 0)
      Atomics.notify(control, SEQ)
    }
    for (const worker of this.workers) worker.terminate()
  }
}
