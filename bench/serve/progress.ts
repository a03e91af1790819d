/**
 * Progress on stderr, so stdout keeps only the result table: a bar redrawn in place on a
 * terminal, or a line every tenth of the run (and at most every 5 s) when stderr is a log.
 */
export const progressReporter = (label: string, stream: NodeJS.WriteStream = process.stderr) => {
  const start = performance.now()
  let lastLineAt = start
  let lastDecile = -1
  return (finished: number, total: number) => {
    const elapsed = (performance.now() - start) / 1000
    const rate = elapsed > 0 ? finished / elapsed : 0
    if (stream.isTTY) {
      const width = 30
      const filled = Math.round((finished / total) * width)
      const bar = "#".repeat(filled) + ".".repeat(width - filled)
      stream.write(`\r${label} [${bar}] ${finished}/${total} ${elapsed.toFixed(1)}s ${rate.toFixed(2)} req/s`)
      if (finished === total) stream.write("\n")
      return
    }
    const decile = Math.floor((finished / total) * 10)
    const now = performance.now()
    if (finished === total || (decile > lastDecile && now - lastLineAt >= 5000)) {
      lastDecile = decile
      lastLineAt = now
      stream.write(`${label}: ${finished}/${total} requests, ${elapsed.toFixed(1)}s, ${rate.toFixed(2)} req/s\n`)
    }
  }
}
