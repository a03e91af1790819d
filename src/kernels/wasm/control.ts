/**
 * The control block through which the calling thread hands kernel calls to the kernel
 * threads: a SharedArrayBuffer with one slot per thread, driven by Atomics (a call costs a
 * few stores and a notify, never a postMessage).
 *
 * In a slot, the caller writes the job (kernel, arguments, then `seq`) and the thread writes
 * the answer (`done = seq`, and an error if the kernel failed); the two halves sit on
 * different cache lines so they do not ping-pong between cores.
 */

export const slotBytes = 1024

/** Int32 indices in a slot, written by the caller */
export const SEQ = 0
export const KERNEL = 1
export const ARGC = 2
/** Int32 indices in a slot, written by the kernel thread */
export const DONE = 16
export const FAILED = 17
export const ERROR_LENGTH = 18

/** `KERNEL` value that tells a thread to return */
export const STOP = -1

const argsByte = 128
export const maxArgs = 24
const errorByte = argsByte + maxArgs * 8
const errorChars = (slotBytes - errorByte) / 2

/**
 * How long a waiting thread polls before it sleeps in Atomics.wait. Waking a sleeping thread
 * costs ~50-150 us on a virtualised machine, more than many kernel parts, so both sides poll
 * for a while: a kernel thread after each part (the next split call of a layer usually comes
 * within that time), the caller for its parts to finish. Both then sleep, so that an idle
 * provider, or one sharing its cores with other processes, does not burn CPU.
 */
export const threadSpinMicros = 200
export const callerSpinMicros = 1000

export interface Slot {
  readonly control: Int32Array
  readonly args: Float64Array
  readonly error: Uint16Array
}

export const slotOf = (block: SharedArrayBuffer, index: number): Slot => {
  const base = index * slotBytes
  return {
    control: new Int32Array(block, base, argsByte / 4),
    args: new Float64Array(block, base + argsByte, maxArgs),
    error: new Uint16Array(block, base + errorByte, errorChars)
  }
}

export const writeError = (slot: Slot, message: string): void => {
  const length = Math.min(message.length, slot.error.length)
  for (let i = 0; i < length; i++) slot.error[i] = message.charCodeAt(i)
  slot.control[ERROR_LENGTH] = length
}

export const readError = (slot: Slot): string =>
  String.fromCharCode(...slot.error.subarray(0, slot.control[ERROR_LENGTH]))

/** waits until `control[index]` holds `value`: polls for up to `spinMicros`, then sleeps */
export const awaitValue = (control: Int32Array, index: number, value: number, spinMicros: number): void => {
  const deadline = performance.now() + spinMicros / 1000
  for (let spin = 1; ; spin++) {
    if (Atomics.load(control, index) === value) return
    if ((spin & 255) === 0 && performance.now() > deadline) break
  }
  for (;;) {
    const seen = Atomics.load(control, index)
    if (seen === value) return
    Atomics.wait(control, index, seen)
  }
}

/** waits until `control[index]` differs from `seen` and returns the new value: polls for up to `spinMicros`, then sleeps */
export const awaitChange = (control: Int32Array, index: number, seen: number, spinMicros: number): number => {
  const deadline = performance.now() + spinMicros / 1000
  for (let spin = 1; ; spin++) {
    const value = Atomics.load(control, index)
    if (value !== seen) return value
    if ((spin & 255) === 0 && performance.now() > deadline) break
  }
  for (;;) {
    Atomics.wait(control, index, seen)
    const value = Atomics.load(control, index)
    if (value !== seen) return value
  }
}
