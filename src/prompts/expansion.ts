/**
 * `expand_prompt`: asks a language model behind an OpenAI-compatible chat-completions API (`POST
 * {baseUrl}/chat/completions`, config.promptExpansion naming one of config.providers) for a richer prompt. The
 * provider's connection pool, connect and total timeouts come from the gateway's providers (providers/_shared/http.ts)
 * and its retries from the same backoff the gateway uses (gateway/retry.ts): connection failures, timeouts, 429 and 5xx
 * are retried; 400, 401/403 and 404 fail at once. Both answer forms are read: one JSON body, or (promptExpansion.stream)
 * Server-Sent Events of `chat.completion.chunk` deltas ending with `data: [DONE]`.
 */
import { createParser } from "eventsource-parser";
import type { Config } from "../config/index.ts";
import { EaselError } from "../core/errors.ts";
import { retryDelayMs, sleep } from "../gateway/retry.ts";
import { httpError, parseRetryAfter, readErrorBody, redact, UpstreamError } from "../providers/_shared/errors.ts";
import { createUpstreamHttp, type FetchLike, parseJson, readText, type UpstreamHttp } from "../providers/_shared/http.ts";

export interface PromptExpander {
  /** The expanded prompt; throws E_UPSTREAM_FAILED / E_TIMEOUT (param expand_prompt) when the provider fails. */
  expand(prompt: string, signal?: AbortSignal): Promise<string>;
  close(): Promise<void>;
}

export interface ExpanderOptions {
  fetch?: FetchLike;
  random?: () => number;
}

const PARAM = "expand_prompt";

/** The error a client gets when expand_prompt is asked of a server without an expansion provider. */
export function expansionNotConfigured(): EaselError {
  return new EaselError(
    "E_NOT_SUPPORTED",
    'expand_prompt needs a chat-completions provider: configure promptExpansion: {provider, model} naming a providers.<id> entry of type "openai" (docs/prompts.md), or leave expand_prompt off.',
    { param: PARAM },
  );
}

/** The assistant's text of a non-streamed chat completion. */
function contentOf(json: unknown, provider: string): string {
  const choice = (json as { choices?: { message?: { content?: unknown } }[] })?.choices?.[0];
  const content = choice?.message?.content;
  if (typeof content !== "string") throw new UpstreamError("bad_response", `prompt expansion provider "${provider}" answered without choices[0].message.content`);
  return content;
}

/** Reads an SSE stream of chat.completion.chunk objects into the assistant's text; an `error` event fails it. */
async function readStream(body: AsyncIterable<Uint8Array>, provider: string): Promise<string> {
  let text = "";
  let done = false;
  let failure: UpstreamError | undefined;
  const parser = createParser({
    onEvent(ev) {
      if (done || failure) return;
      if (ev.data === "[DONE]") {
        done = true;
        return;
      }
      let chunk: unknown;
      try {
        chunk = JSON.parse(ev.data);
      } catch {
        failure = new UpstreamError("bad_response", `prompt expansion provider "${provider}" streamed an event that is not JSON`);
        return;
      }
      if ((chunk as { error?: unknown }).error) {
        const said = readErrorBody(ev.data).message ?? "error";
        failure = new UpstreamError("server", `prompt expansion provider "${provider}" failed mid-stream: ${said}`);
        return;
      }
      const delta = (chunk as { choices?: { delta?: { content?: unknown } }[] }).choices?.[0]?.delta?.content;
      if (typeof delta === "string") text += delta;
    },
  });
  const decoder = new TextDecoder();
  for await (const part of body) {
    parser.feed(decoder.decode(part, { stream: true }));
    if (failure) throw failure;
    if (done) break;
  }
  if (failure) throw failure;
  if (!done) throw new UpstreamError("bad_response", `prompt expansion provider "${provider}" ended its stream before data: [DONE]`);
  return text;
}

/** An expander for config.promptExpansion; undefined when it is not configured. */
export function createPromptExpander(config: Config, opts: ExpanderOptions = {}): PromptExpander | undefined {
  const pe = config.promptExpansion;
  if (!pe) return undefined;
  const p = Object.hasOwn(config.providers, pe.provider) ? config.providers[pe.provider] : undefined;
  if (!p) throw new EaselError("E_INPUT_INVALID", `promptExpansion.provider: provider "${pe.provider}" is not configured`, { param: "promptExpansion.provider" });
  if (p.type !== "openai") {
    throw new EaselError("E_INPUT_INVALID", `promptExpansion.provider: provider "${pe.provider}" is of type ${p.type}; chat completions need type "openai"`, {
      param: "promptExpansion.provider",
    });
  }
  if (typeof p.apiKey === "object") {
    throw new EaselError("E_INPUT_INVALID", `providers.${pe.provider}.apiKey: the environment variable ${p.apiKey.env} is not set`, { param: `providers.${pe.provider}.apiKey` });
  }
  const apiKey = p.apiKey;
  const url = `${p.baseUrl.replace(/\/+$/, "")}/chat/completions`;
  const random = opts.random ?? Math.random;
  const http: UpstreamHttp = createUpstreamHttp({ provider: pe.provider, connectTimeoutMs: p.timeouts.connectMs, totalTimeoutMs: p.timeouts.totalMs, fetch: opts.fetch });

  async function once(prompt: string, signal: AbortSignal): Promise<string> {
    const body = {
      model: pe!.model,
      messages: [
        { role: "system", content: pe!.systemPrompt },
        { role: "user", content: prompt },
      ],
      max_tokens: pe!.maxTokens,
      temperature: pe!.temperature,
      ...(pe!.stream ? { stream: true } : {}),
    };
    const headers: Record<string, string> = { "content-type": "application/json", accept: pe!.stream ? "text/event-stream" : "application/json" };
    if (apiKey) headers.authorization = `Bearer ${apiKey}`;
    return http.exchange(url, { method: "POST", headers, body: JSON.stringify(body) }, signal, async (res) => {
      if (res.status !== 200) {
        const said = readErrorBody(await readText(res, pe!.provider).catch(() => ""));
        if (said.message) said.message = redact(said.message, apiKey);
        throw httpError(pe!.provider, res.status, said, { retryAfterMs: parseRetryAfter(res.headers.get("retry-after"), Date.now()) });
      }
      const type = res.headers.get("content-type") ?? "";
      if (pe!.stream && type.includes("text/event-stream")) {
        if (!res.body) throw new UpstreamError("bad_response", `prompt expansion provider "${pe!.provider}" sent no stream`);
        return readStream(res.body, pe!.provider);
      }
      return contentOf(parseJson(await readText(res, pe!.provider), pe!.provider, res.status), pe!.provider);
    });
  }

  return {
    async expand(prompt, signal = new AbortController().signal) {
      for (let attempt = 1; ; attempt++) {
        try {
          const text = (await once(prompt, signal)).trim();
          if (!text) throw new UpstreamError("bad_response", `prompt expansion provider "${pe.provider}" answered an empty prompt`);
          return text;
        } catch (e) {
          if (signal.aborted) throw e;
          if (!(e instanceof UpstreamError)) throw e;
          const wait = e.retryable && attempt <= p.retries.max ? retryDelayMs(attempt, p.retries, random, e.retryAfterMs) : undefined;
          if (wait === undefined) {
            const tries = attempt === 1 ? "" : ` (after ${attempt} tries)`;
            throw new EaselError(e.kind === "timeout" ? "E_TIMEOUT" : "E_UPSTREAM_FAILED", `${e.message}${tries}`, {
              param: PARAM,
              details: { provider: pe.provider, reason: e.kind, ...(e.status ? { status: e.status } : {}) },
            });
          }
          await sleep(wait, signal);
        }
      }
    },
    close: () => http.close(),
  };
}
