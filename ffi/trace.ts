/**
 * TESSERA_FFI_TRACE=1 logs every native call to stderr: symbol, arguments (pointers in hex),
 * status and wall time. Off, the symbols are used as they are, at no cost.
 */
export const traceEnabled = (): boolean => {
  const value = process.env.TESSERA_FFI_TRACE
  return value !== undefined && value !== "" && value !== "0"
}

const show = (arg: unknown): string => {
  if (typeof arg === "number") return Number.isInteger(arg) && arg > 0xffffffff ? `0x${arg.toString(16)}` : String(arg)
  if (ArrayBuffer.isView(arg)) return `${arg.constructor.name}(${(arg as unknown as { length: number }).length})`
  return String(arg)
}

type NativeFn = (...args: never[]) => unknown

/** `symbols` with every function wrapped to log its calls */
export const traced = <S extends Record<string, NativeFn>>(symbols: S, log: (line: string) => void = (line) => void process.stderr.write(`${line}\n`)): S => {
  const wrapped: Record<string, NativeFn> = {}
  for (const [name, fn] of Object.entries(symbols)) {
    const call = fn as unknown as (...args: unknown[]) => unknown
    wrapped[name] = ((...args: unknown[]) => {
      const start = performance.now()
      const result = call(...args)
      const micros = ((performance.now() - start) * 1000).toFixed(1)
      log(`[ffi] ${name}(${args.map(show).join(", ")}) -> ${show(result)} (${micros} us)`)
      return result
    }) as NativeFn
  }
  return wrapped as S
}
