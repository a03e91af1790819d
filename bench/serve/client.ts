/**
 * One streaming `/v1/completions` request, timed the way vLLM's benchmark_serving times it
 * (backend_request_func.py): TTFT is the first chunk that carries a choice, each later
 * choice chunk adds one inter-token gap, and the latency ends at the last choice chunk. The
 * output length comes from the server's `usage` (stream_options.include_usage); a server
 * that sends no usage is counted one token per choice chunk, which is what vLLM streams.
 */

export interface CompletionRequest {
  readonly url: string
  readonly model: string
  readonly prompt: string
  readonly maxTokens: number
  readonly timeoutSeconds: number
}

export type RequestResult =
  | {
      readonly ok: true
      /** from `usage.prompt_tokens`; undefined if the server sent no usage */
      readonly promptTokens: number | undefined
      readonly outputTokens: number
      /** true when `outputTokens` came from `usage`, false when chunks were counted */
      readonly outputTokensFromUsage: boolean
      readonly ttftSeconds: number
      /** gaps between consecutive choice chunks after the first */
      readonly itlSeconds: ReadonlyArray<number>
      readonly latencySeconds: number
      readonly text: string
    }
  | { readonly ok: false; readonly error: string; readonly latencySeconds: number }

interface CompletionChunk {
  readonly choices?: ReadonlyArray<{ readonly text?: string | null }>
  readonly usage?: { readonly prompt_tokens?: number; readonly completion_tokens?: number } | null
}

const seconds = () => performance.now() / 1000

export const sendCompletion = async (request: CompletionRequest): Promise<RequestResult> => {
  const body = {
    model: request.model,
    prompt: request.prompt,
    max_tokens: request.maxTokens,
    // vLLM's extension: keep generating past EOS, so every request decodes exactly max_tokens
    ignore_eos: true,
    temperature: 0,
    stream: true,
    stream_options: { include_usage: true }
  }
  const start = seconds()
  const failed = (error: string): RequestResult => ({ ok: false, error, latencySeconds: seconds() - start })
  let response: Response
  try {
    response = await fetch(request.url, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(request.timeoutSeconds * 1000)
    })
  } catch (error) {
    return failed(error instanceof Error ? error.message : String(error))
  }
  if (!response.ok || !response.body) {
    return failed(`HTTP ${response.status}: ${(await response.text().catch(() => "")).slice(0, 200)}`)
  }

  let ttft: number | undefined
  let lastChunkAt = start
  const itl: Array<number> = []
  let text = ""
  let chunks = 0
  let usage: CompletionChunk["usage"]
  const onEvent = (data: string) => {
    if (data === "[DONE]") return
    const chunk = JSON.parse(data) as CompletionChunk
    if (chunk.choices && chunk.choices.length > 0) {
      const now = seconds()
      if (ttft === undefined) ttft = now - start
      else itl.push(now - lastChunkAt)
      lastChunkAt = now
      text += chunk.choices[0].text ?? ""
      chunks++
    }
    if (chunk.usage) usage = chunk.usage
  }

  try {
    const decoder = new TextDecoder()
    let buffered = ""
    for await (const bytes of response.body) {
      buffered += decoder.decode(bytes, { stream: true })
      // SSE events end with a blank line; a network read may end mid-event
      let end: number
      while ((end = buffered.search(/\r?\n\r?\n/)) !== -1) {
        const event = buffered.slice(0, end)
        buffered = buffered.slice(end).replace(/^\r?\n\r?\n/, "")
        for (const line of event.split(/\r?\n/)) {
          if (line.startsWith("data:")) onEvent(line.slice(5).trim())
        }
      }
    }
  } catch (error) {
    return failed(error instanceof Error ? error.message : String(error))
  }
  if (ttft === undefined) return failed("the stream ended before any token")
  const fromUsage = typeof usage?.completion_tokens === "number"
  return {
    ok: true,
    promptTokens: usage?.prompt_tokens ?? undefined,
    outputTokens: fromUsage ? usage!.completion_tokens! : chunks,
    outputTokensFromUsage: fromUsage,
    ttftSeconds: ttft,
    itlSeconds: itl,
    latencySeconds: lastChunkAt - start,
    text
  }
}

/** The first model the server lists, as vLLM's benchmark does when no --model is given. */
export const firstServedModel = async (baseUrl: string): Promise<string> => {
  const response = await fetch(new URL("/v1/models", baseUrl))
  if (!response.ok) throw new Error(`GET /v1/models: HTTP ${response.status}`)
  const models = (await response.json()) as { data?: ReadonlyArray<{ id: string }> }
  const id = models.data?.[0]?.id
  if (!id) throw new Error("GET /v1/models listed no model: pass --model")
  return id
}
