// Token embedding over a vocab-parallel shard of the table: a rank holds rows
// [vocabStart, vocabEnd) and writes zeros for other tokens, so the all-reduce over TP sums
// to the full lookup.

export function embedding(out: usize, ids: usize, table: usize, T: i32, H: i32, vocabStart: i32, vocabEnd: i32, begin: i32, end: i32): void {
  const rowBytes = <usize>H << 2
  for (let t = begin; t < end; t++) {
    const id = load<i32>(ids + (<usize>t << 2))
    const o = out + <usize>t * rowBytes
    if (id >= vocabStart && id < vocabEnd) memory.copy(o, table + <usize>(id - vocabStart) * rowBytes, rowBytes)
    else memory.fill(o, 0, rowBytes)
  }
}
