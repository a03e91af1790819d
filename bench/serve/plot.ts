import type { Distribution, ServeMetrics } from "./summary.ts"

/**
 * Latency against load: one panel each for TTFT, TPOT and end-to-end latency, p50 and p99
 * against the achieved request throughput of each run (give several --request-rate values
 * to draw a curve). Written as SVG, which needs no native code; a .png path is rasterized by
 * an SVG converter found on PATH (rsvg-convert, ImageMagick), and left as SVG if none is.
 */

const panelWidth = 320
const panelHeight = 240
const margin = { left: 56, right: 12, top: 28, bottom: 40 }
const colors = { p50: "#1f77b4", p99: "#d62728" }

const niceMax = (value: number): number => {
  if (value <= 0) return 1
  const scale = 10 ** Math.floor(Math.log10(value))
  return ([1, 2, 5, 10].find((m) => m * scale >= value) ?? 10) * scale
}

const panel = (title: string, offsetX: number, points: ReadonlyArray<{ x: number; d: Distribution }>): string => {
  const xMax = niceMax(Math.max(...points.map((p) => p.x)))
  const yMax = niceMax(Math.max(...points.map((p) => p.d.p99)))
  const plotW = panelWidth - margin.left - margin.right
  const plotH = panelHeight - margin.top - margin.bottom
  const sx = (x: number) => offsetX + margin.left + (x / xMax) * plotW
  const sy = (y: number) => margin.top + plotH - (y / yMax) * plotH
  const out: Array<string> = [`<text x="${offsetX + panelWidth / 2}" y="16" text-anchor="middle" font-weight="bold">${title}</text>`]
  for (let i = 0; i <= 4; i++) {
    const y = (yMax * i) / 4
    const x = (xMax * i) / 4
    out.push(`<line x1="${sx(0)}" y1="${sy(y)}" x2="${sx(xMax)}" y2="${sy(y)}" stroke="#ddd"/>`)
    out.push(`<text x="${sx(0) - 4}" y="${sy(y) + 4}" text-anchor="end">${+y.toPrecision(3)}</text>`)
    out.push(`<text x="${sx(x)}" y="${sy(0) + 16}" text-anchor="middle">${+x.toPrecision(3)}</text>`)
  }
  out.push(`<rect x="${sx(0)}" y="${sy(yMax)}" width="${plotW}" height="${plotH}" fill="none" stroke="#333"/>`)
  out.push(`<text x="${offsetX + margin.left + plotW / 2}" y="${panelHeight - 6}" text-anchor="middle">request throughput (req/s)</text>`)
  out.push(`<text transform="translate(${offsetX + 14} ${margin.top + plotH / 2}) rotate(-90)" text-anchor="middle">ms</text>`)
  for (const key of ["p50", "p99"] as const) {
    const xy = points.map((p) => `${sx(p.x).toFixed(1)},${sy(key === "p50" ? p.d.median : p.d.p99).toFixed(1)}`)
    out.push(`<polyline points="${xy.join(" ")}" fill="none" stroke="${colors[key]}" stroke-width="2"/>`)
    for (const point of xy) {
      const [cx, cy] = point.split(",")
      out.push(`<circle cx="${cx}" cy="${cy}" r="3" fill="${colors[key]}"/>`)
    }
  }
  return out.join("\n")
}

export const latencyVsLoadSvg = (runs: ReadonlyArray<{ readonly metrics: ServeMetrics }>): string => {
  const points = (pick: (m: ServeMetrics) => Distribution) =>
    runs.map(({ metrics }) => ({ x: metrics.requestThroughput, d: pick(metrics) })).sort((a, b) => a.x - b.x)
  const width = panelWidth * 3
  const legendY = panelHeight + 16
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${panelHeight + 28}" font-family="sans-serif" font-size="11">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    panel("Time to first token", 0, points((m) => m.ttftMs)),
    panel("Time per output token", panelWidth, points((m) => m.tpotMs)),
    panel("End-to-end latency", panelWidth * 2, points((m) => m.e2elMs)),
    `<text x="${margin.left}" y="${legendY}" fill="${colors.p50}">● p50</text>`,
    `<text x="${margin.left + 50}" y="${legendY}" fill="${colors.p99}">● p99</text>`,
    `</svg>`
  ].join("\n")
}

const isPng = (bytes: Uint8Array) => bytes.length > 8 && bytes[0] === 0x89 && bytes[1] === 0x50 && bytes[2] === 0x4e

/** Writes the plot; returns the path written, which is the .svg beside a .png nobody could rasterize. */
export const writePlot = async (path: string, svg: string): Promise<string> => {
  if (!path.toLowerCase().endsWith(".png")) {
    await Bun.write(path, svg)
    return path
  }
  const svgPath = path.replace(/\.png$/i, ".svg")
  await Bun.write(svgPath, svg)
  const converters = [
    ["rsvg-convert", "-o", path, svgPath],
    ["magick", svgPath, path],
    ["convert", svgPath, path]
  ]
  for (const command of converters) {
    if (!Bun.which(command[0])) continue
    const result = Bun.spawnSync(command, { stdout: "ignore", stderr: "ignore" })
    const file = Bun.file(path)
    // check the bytes: a stand-in `convert` may exit 0 without writing a PNG
    if (result.exitCode === 0 && (await file.exists()) && isPng(new Uint8Array(await file.arrayBuffer()))) return path
  }
  return svgPath
}
