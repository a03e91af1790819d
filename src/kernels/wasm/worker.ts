/**
 * A kernel thread: instantiates the kernel module on the provider's shared memory, then runs
 * the parts of kernel calls that the calling thread posts to its slot of the control block,
 * until told to stop. It never returns to its event loop while serving.
 */
import { catalog } from "../catalog.ts"
import { ARGC, awaitChange, DONE, FAILED, KERNEL, SEQ, type Slot, slotOf, STOP, threadSpinMicros, writeError } from "./control.ts"

declare const self: Worker

export interface KernelThreadInit {
  readonly module: WebAssembly.Module
  readonly memory: WebAssembly.Memory
  readonly controlBlock: SharedArrayBuffer
  readonly slot: number
  readonly scratch: number
  readonly scratchBytes: number
}

type Export = (...args: number[]) => void

/** the thread's first and only message: `null` when it serves, else why it cannot */
export type KernelThreadStarted = string | null

self.onmessage = async (event: MessageEvent<KernelThreadInit>) => {
  const init = event.data
  let kernels: Export[]
  try {
    const instance = await WebAssembly.instantiate(init.module, { env: { memory: init.memory } })
    const exports = instance.exports as Record<string, Export>
    exports.set_scratch(init.scratch, init.scratchBytes)
    // indexed as the caller indexes them: catalog order
    kernels = Object.keys(catalog).map((name) => exports[name])
  } catch (error) {
    self.postMessage(String(error) satisfies KernelThreadStarted)
    return
  }
  self.postMessage(null satisfies KernelThreadStarted)
  serve(slotOf(init.controlBlock, init.slot), kernels)
}

function serve(slot: Slot, kernels: ReadonlyArray<Export>): void {
  const { control, args } = slot
  const call: number[] = []
  let seq = 0
  for (;;) {
    seq = awaitChange(control, SEQ, seq, threadSpinMicros)
    const kernel = control[KERNEL]
    if (kernel === STOP) return
    call.length = control[ARGC]
    for (let i = 0; i < call.length; i++) call[i] = args[i]
    control[FAILED] = 0
    try {
      kernels[kernel].apply(undefined, call)
    } catch (error) {
      control[FAILED] = 1
      writeError(slot, String(error))
    }
    Atomics.store(control, DONE, seq)
    Atomics.notify(control, DONE)
  }
}
