// The CPU kernel module: one export per entry of src/kernels/catalog.ts, with the catalog's
// arguments (tensor pointers, then scalars) plus `begin, end` for kernels that have a `split`
// role. Memory is imported and shared, so every thread's instance works on the same tensors.

export { embedding } from "./embedding"
export { matmul, add_bias } from "./matmul"
export { rmsnorm, add_rmsnorm, head_rmsnorm } from "./norm"
export { rope } from "./rope"
export { silu_mul } from "./activation"
export { kv_write, rope_kv_write } from "./kv_cache"
export { paged_attention } from "./attention"
export { gather_rows, copy, take_tokens } from "./rows"
export { argmax, softmax } from "./sampling"
export { set_scratch } from "./scratch"

/** first byte past the module's static data: where the host allocator may start */
export function heap_base(): usize {
  return __heap_base
}
