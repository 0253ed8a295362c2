/**
 * The configured upstream providers (config `providers`): for each, its type's client over its own connection pool
 * (with its connect and total timeouts), its retry policy and circuit breaker settings. Keys are resolved here from
 * the config (given, or read from the environment by config/); a provider whose key variable is unset is refused
 * when a model uses it. URLs and keys come only from the configuration, never from a request.
 */
import { randomInt as cryptoRandomInt } from "node:crypto";
import type { Config } from "../config/index.ts";
import { EaselError } from "../core/errors.ts";
import { createUpstreamHttp, type FetchLike } from "../providers/_shared/http.ts";
import { PROVIDER_REGISTRY, type UpstreamClient, type UpstreamModelSpec, type UpstreamSettings } from "../providers/index.ts";
import type { RetryPolicy } from "./retry.ts";

export type ProvidersConfig = Config["providers"];

export interface UpstreamPolicy {
  retries: RetryPolicy;
  breaker: { failureThreshold: number; resetMs: number };
}

export interface Upstreams {
  /** Type and spec of a provider's model (throws E_INPUT_INVALID for an unknown provider, a missing key, an unknown model). */
  describe(provider: string, upstreamModel: string): { providerType: string; spec: UpstreamModelSpec };
  client(provider: string): UpstreamClient;
  policy(provider: string): UpstreamPolicy;
  close(): Promise<void>;
}

export interface UpstreamsOptions {
  /** Replaces undici's fetch (tests). */
  fetch?: FetchLike;
  /** Random integer in [min, max]; default crypto's. */
  randomInt?: (min: number, max: number) => number;
}

function settingsOf(id: string, p: ProvidersConfig[string]): UpstreamSettings {
  if (typeof p.apiKey === "object") {
    throw new EaselError("E_INPUT_INVALID", `providers.${id}.apiKey: the environment variable ${p.apiKey.env} is not set`, {
      param: `providers.${id}.apiKey`,
    });
  }
  return {
    id,
    type: p.type,
    baseUrl: p.baseUrl.replace(/\/+$/, ""),
    apiKey: p.apiKey,
    easelExtensions: p.easelExtensions,
    connectTimeoutMs: p.timeouts.connectMs,
    totalTimeoutMs: p.timeouts.totalMs,
  };
}

export function createUpstreams(providers: ProvidersConfig, opts: UpstreamsOptions = {}): Upstreams {
  const randomInt = opts.randomInt ?? ((min: number, max: number) => cryptoRandomInt(min, max + 1));
  const clients = new Map<string, UpstreamClient>();
  const configOf = (id: string) => {
    const p = Object.hasOwn(providers, id) ? providers[id] : undefined;
    if (!p) {
      const known = Object.keys(providers);
      throw new EaselError("E_INPUT_INVALID", `provider "${id}" is not configured (providers: ${known.length > 0 ? known.join(", ") : "none"})`, {
        param: "provider",
      });
    }
    return p;
  };
  const client = (id: string): UpstreamClient => {
    let c = clients.get(id);
    if (!c) {
      const settings = settingsOf(id, configOf(id));
      const http = createUpstreamHttp({ provider: id, connectTimeoutMs: settings.connectTimeoutMs, totalTimeoutMs: settings.totalTimeoutMs, fetch: opts.fetch });
      c = PROVIDER_REGISTRY[settings.type].create(settings, { http, randomInt });
      clients.set(id, c);
    }
    return c;
  };
  return {
    describe(provider, upstreamModel) {
      const c = client(provider);
      return { providerType: c.settings.type, spec: PROVIDER_REGISTRY[c.settings.type].describe(upstreamModel, c.settings) };
    },
    client,
    policy(provider) {
      const p = configOf(provider);
      return { retries: p.retries, breaker: p.breaker };
    },
    async close() {
      await Promise.all([...clients.values()].map((c) => c.close().catch(() => undefined)));
      clients.clear();
    },
  };
}
