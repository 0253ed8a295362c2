/**
 * The part of an upstream client that is the same for every provider type: plan a request against the upstream
 * model's capabilities, make one POST per planned call with the provider's auth and an Idempotency-Key, hand a 2xx
 * answer to the type's reader and anything else to its error mapping. A provider type supplies a WireFormat.
 */
import type { GenerationRequest } from "../../core/types.ts";
import type { EncodedUpstreamImage, ProviderEvent } from "../spec.ts";
import { planRequest } from "./capabilities.ts";
import { redact, UpstreamError } from "./errors.ts";
import { readText, type UpstreamHttp } from "./http.ts";
import type { PlannedCall, UpstreamClient, UpstreamDeps, UpstreamModelSpec, UpstreamSettings } from "./upstream.ts";

export interface WireRequest {
  /** Appended to the provider's baseUrl. */
  path: string;
  body: unknown;
}

export interface AnswerContext {
  req: GenerationRequest;
  upstreamModel: string;
  call: PlannedCall;
  settings: UpstreamSettings;
  http: UpstreamHttp;
  signal: AbortSignal;
  onEvent?: (e: ProviderEvent) => void;
}

export interface WireFormat {
  describe(upstreamModel: string, settings: Pick<UpstreamSettings, "id" | "easelExtensions">): UpstreamModelSpec;
  request(req: GenerationRequest, upstreamModel: string, call: PlannedCall, settings: UpstreamSettings): WireRequest;
  /** The provider's auth header(s) for a key. */
  auth(apiKey: string): Record<string, string>;
  /** Reads a 2xx answer into images (the body is read within the exchange's deadline). */
  answer(res: import("undici").Response, ctx: AnswerContext): Promise<EncodedUpstreamImage[]>;
  /** A non-2xx answer as an UpstreamError. */
  error(status: number, text: string, headers: Headers | import("undici").Headers, now: number): UpstreamError;
}

/** Removes the key from an error that is about to leave the provider (its message may quote an upstream's text). */
function scrubbed(e: unknown, apiKey: string | undefined): unknown {
  if (!(e instanceof UpstreamError) || !apiKey || !e.message.includes(apiKey)) return e;
  return new UpstreamError(e.kind, redact(e.message, apiKey), { status: e.status, retryAfterMs: e.retryAfterMs, param: e.param });
}

export function createWireClient(settings: UpstreamSettings, deps: UpstreamDeps, wire: WireFormat): UpstreamClient {
  const specs = new Map<string, UpstreamModelSpec>();
  const spec = (model: string) => {
    let s = specs.get(model);
    if (!s) specs.set(model, (s = wire.describe(model, settings)));
    return s;
  };
  return {
    settings,
    plan: (req, upstreamModel) => planRequest(req, spec(upstreamModel).caps, { provider: settings.id, upstreamModel, randomInt: deps.randomInt }),
    async call(req, upstreamModel, call, opts) {
      const { path, body } = wire.request(req, upstreamModel, call, settings);
      const headers: Record<string, string> = {
        "content-type": "application/json",
        accept: call.stream ? "text/event-stream" : "application/json, image/*",
        "idempotency-key": opts.idempotencyKey,
        ...(settings.apiKey ? wire.auth(settings.apiKey) : {}),
      };
      try {
        return await deps.http.exchange(`${settings.baseUrl}${path}`, { method: "POST", headers, body: JSON.stringify(body) }, opts.signal, async (res, signal) => {
          if (res.status < 200 || res.status > 299) throw wire.error(res.status, await readText(res, settings.id), res.headers, Date.now());
          return wire.answer(res, { req, upstreamModel, call, settings, http: deps.http, signal, onEvent: opts.onEvent });
        });
      } catch (e) {
        throw scrubbed(e, settings.apiKey);
      }
    },
    close: () => deps.http.close(),
  };
}
