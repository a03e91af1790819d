/**
 * Progress on stderr, so stdout keeps only results: a bar redrawn in place on a terminal, or
 * a line every tenth of the work (and at most every 5 s) and a last line when stderr is a log.
 * With `quietWhenFast`, work that ends within 5 s prints nothing on a log (loading a small
 * model should not add lines to a command's output).
 */
export interface ProgressUnit {
  /** e.g. "requests", "GB" */
  readonly name: string
  /** units per counted item: 1e9 turns bytes into GB */
  readonly scale: number
  readonly digits: number
}

const items: ProgressUnit = { name: "requests", scale: 1, digits: 0 }

export const progressReporter = (
  label: string,
  unit: ProgressUnit = items,
  { quietWhenFast = false, stream = process.stderr }: { readonly quietWhenFast?: boolean; readonly stream?: NodeJS.WriteStream } = {}
) => {
  const start = performance.now()
  let lastLineAt = start
  let lastDecile = -1
  let printed = false
  return (finished: number, total: number) => {
    const elapsed = (performance.now() - start) / 1000
    const amount = (n: number) => (n / unit.scale).toFixed(unit.digits)
    const rate = `${elapsed > 0 ? (finished / unit.scale / elapsed).toFixed(2) : "0.00"} ${unit.name}/s`
    if (stream.isTTY) {
      const width = 30
      const filled = Math.round((finished / total) * width)
      const bar = "#".repeat(filled) + ".".repeat(width - filled)
      stream.write(`\r${label} [${bar}] ${amount(finished)}/${amount(total)} ${unit.name} ${elapsed.toFixed(1)}s ${rate}`)
      if (finished === total) stream.write("\n")
      return
    }
    const decile = Math.floor((finished / total) * 10)
    const now = performance.now()
    if ((finished === total && (printed || !quietWhenFast)) || (decile > lastDecile && now - lastLineAt >= 5000)) {
      lastDecile = decile
      lastLineAt = now
      printed = true
      stream.write(`${label}: ${amount(finished)}/${amount(total)} ${unit.name}, ${elapsed.toFixed(1)}s, ${rate}\n`)
    }
  }
}
