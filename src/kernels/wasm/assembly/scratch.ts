// Per-thread scratch memory. Globals live in the instance, not in the shared memory, so each
// thread's instance points at its own region: kernels that need a little working state
// (attention's running max and sum per head) use it without allocating.

export let scratch: usize = 0
export let scratchBytes: usize = 0

export function set_scratch(ptr: usize, bytes: usize): void {
  scratch = ptr
  scratchBytes = bytes
}
