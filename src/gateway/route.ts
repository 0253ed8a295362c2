/**
 * Routing: the executor the job service runs for each job. A local model without fallbacks runs on the local
 * provider as it is. Any other model is served by trying, in order, its own targets (upstream targets in a
 * weighted-random order, or its local checkpoint), then the targets of each of its fallbacks:
 *
 * - each upstream call is retried on connection errors, timeouts, 429 and 5xx (backoff with jitter, or Retry-After)
 *   while its provider's circuit breaker lets requests through;
 * - an upstream that is out of credits, answers nonsense or stays down after its retries fails over to the next
 *   target; a 400, 401 or 404 answer is the answer (in the client's dialect, with the upstream's message): the
 *   request or the configuration is wrong, and neither a retry nor another target would do better;
 * - the images of a fallback carry a W_FALLBACK warning naming it; the job is charged once, at its own price.
 *
 * The job's route (target, every attempt, latency) comes back with the result and is recorded with the job.
 */
import { randomBytes } from "node:crypto";
import { EaselError, toEaselError } from "../core/errors.ts";
import { checkModelLimits } from "../core/limits.ts";
import type { GenerationRequest, ModelInfo, RouteAttempt, RouteRecord, Warning } from "../core/types.ts";
import { transcodeWarning } from "../providers/_shared/capabilities.ts";
import { UpstreamError } from "../providers/_shared/errors.ts";
import { sniffFormat } from "../providers/_shared/images.ts";
import type { PlannedCall, UpstreamClient, UpstreamPlan } from "../providers/_shared/upstream.ts";
import type { EncodedUpstreamImage, ImageProvider, ProviderGenerateOptions, ProviderResult } from "../providers/spec.ts";
import { CircuitBreaker } from "./breaker.ts";
import type { ModelRegistry, RegisteredModel, UpstreamTarget } from "./registry.ts";
import { retryDelayMs, sleep } from "./retry.ts";
import type { Upstreams } from "./upstreams.ts";

export const W_FALLBACK = "W_FALLBACK";

export interface GatewayOptions {
  registry: ModelRegistry;
  local: ImageProvider;
  upstreams: Upstreams;
  /** ms since the epoch. */
  clock?: () => number;
  /** [0, 1): target choice by weight, backoff jitter. */
  random?: () => number;
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
  log?: (line: string) => void;
  /** While upstream calls run, a progress event this often (keeps a client's stream alive). */
  progressIntervalMs?: number;
}

export interface Gateway {
  /** The executor of a job (job service's `executor`). */
  executor(req: GenerationRequest, model: ModelInfo): ImageProvider;
  /** A provider's circuit state (diagnostics and tests). */
  circuit(provider: string): "closed" | "open" | "half_open";
}

/** One place a model's images can come from. */
interface Candidate {
  model: RegisteredModel;
  target: UpstreamTarget | "local";
  /** Reached through a fallback of the requested model. */
  fallback: boolean;
}

/** Local failures that another target may not have (5xx); client errors and cancellations are the answer. */
function localFailsOver(e: EaselError): boolean {
  return e.status >= 500 && e.code !== "E_CANCELLED";
}

/** An upstream's final answer (400, 401, 404) as the client's error, with the upstream's message. */
function clientError(e: UpstreamError, provider: string): EaselError {
  const details = { upstream: { provider, status: e.status ?? null } };
  if (e.kind === "auth") return new EaselError("E_AUTH_INVALID", e.message, { details });
  if (e.kind === "not_found") return new EaselError("E_MODEL_NOT_FOUND", e.message, { param: e.param ?? "model", details });
  return new EaselError("E_INPUT_INVALID", e.message, { param: e.param, details });
}

export function createGateway(o: GatewayOptions): Gateway {
  const clock = o.clock ?? Date.now;
  const random = o.random ?? Math.random;
  const wait = o.sleep ?? sleep;
  const log = o.log ?? (() => undefined);
  const progressEvery = o.progressIntervalMs ?? 5000;
  const breakers = new Map<string, CircuitBreaker>();

  const breaker = (provider: string): CircuitBreaker => {
    let b = breakers.get(provider);
    if (!b) {
      const { failureThreshold, resetMs } = o.upstreams.policy(provider).breaker;
      b = new CircuitBreaker({ failureThreshold, resetMs, clock, onChange: (from, to) => log(`provider "${provider}": circuit ${from} -> ${to}`) });
      breakers.set(provider, b);
    }
    return b;
  };

  /** Weighted random order without repetition: a target with twice the weight is first twice as often. */
  function weightedOrder(targets: readonly UpstreamTarget[]): UpstreamTarget[] {
    const left = [...targets];
    const out: UpstreamTarget[] = [];
    while (left.length > 0) {
      let r = random() * left.reduce((s, t) => s + t.weight, 0);
      let i = 0;
      while (i < left.length - 1 && (r -= left[i].weight) >= 0) i++;
      out.push(...left.splice(i, 1));
    }
    return out;
  }

  function own(m: RegisteredModel, fallback: boolean): Candidate[] {
    if (m.backend === "local") return [{ model: m, target: "local", fallback }];
    return weightedOrder(m.targets).map((target) => ({ model: m, target, fallback }));
  }

  function candidates(m: RegisteredModel): Candidate[] {
    const out = own(m, false);
    for (const name of m.fallbacks ?? []) {
      const f = o.registry.find(name);
      if (f) out.push(...own(f, true));
    }
    return out;
  }

  /** One upstream call, retried while it is worth it and the breaker lets it through. */
  async function callWithRetry(
    client: UpstreamClient,
    req: GenerationRequest,
    c: Candidate & { target: UpstreamTarget },
    call: PlannedCall,
    signal: AbortSignal,
    attempts: RouteAttempt[],
    opts: ProviderGenerateOptions,
  ): Promise<EncodedUpstreamImage[]> {
    const { provider, upstreamModel } = c.target;
    const policy = o.upstreams.policy(provider).retries;
    const b = breaker(provider);
    const idempotencyKey = `easel-gw-${randomBytes(12).toString("hex")}`;
    const base = { model: c.model.info.id, provider, upstreamModel, call: call.index };
    for (let attempt = 1; ; attempt++) {
      if (!b.tryAcquire()) {
        attempts.push({ ...base, attempt, outcome: "skipped", reason: "circuit_open", ms: 0 });
        const s = Math.ceil(b.retryAfterMs / 1000);
        throw new UpstreamError("circuit_open", `provider "${provider}" is not being called after repeated failures (circuit open, next probe in ${s} s)`, {
          retryAfterMs: b.retryAfterMs,
        });
      }
      const started = clock();
      // Once a partial image reached the client, another try would show it a second set: the first answer stands.
      let streamed = false;
      try {
        const images = await client.call(req, upstreamModel, call, {
          signal,
          idempotencyKey,
          onEvent: (e) => {
            streamed = true;
            opts.onEvent?.(e);
          },
        });
        b.success();
        attempts.push({ ...base, attempt, outcome: "ok", status: 200, ms: clock() - started });
        return images.slice(0, call.n);
      } catch (err) {
        if (signal.aborted) {
          b.release();
          throw err;
        }
        const e = err instanceof UpstreamError ? err : new UpstreamError("bad_response", `provider "${provider}": ${(err as Error)?.message ?? err}`, { cause: err });
        attempts.push({ ...base, attempt, outcome: "failed", ...(e.status ? { status: e.status } : {}), reason: e.kind, ms: clock() - started });
        // An answer the request caused (400, 401, 404) still shows a provider that is up.
        if (e.failsOver) b.failure();
        else b.success();
        if (!e.retryable || streamed || attempt > policy.max) throw e;
        const delay = retryDelayMs(attempt, policy, random, e.retryAfterMs);
        if (delay === undefined) throw e;
        log(`provider "${provider}": ${e.kind}${e.status ? ` (${e.status})` : ""}; retry ${attempt} of ${policy.max} in ${delay} ms`);
        await wait(delay, signal);
      }
    }
  }

  /** Every call of a plan: the first alone (when the circuit is half-open it is the probe), the rest together. */
  async function runPlan(
    client: UpstreamClient,
    req: GenerationRequest,
    c: Candidate & { target: UpstreamTarget },
    plan: UpstreamPlan,
    attempts: RouteAttempt[],
    opts: ProviderGenerateOptions,
  ): Promise<EncodedUpstreamImage[]> {
    const stop = new AbortController();
    const signal = opts.signal ? AbortSignal.any([opts.signal, stop.signal]) : stop.signal;
    let done = 0;
    const total = plan.calls.length;
    const progress = () => opts.onEvent?.({ type: "progress", step: done, totalSteps: total });
    progress();
    const beat = setInterval(progress, progressEvery);
    beat.unref?.();
    const one = async (call: PlannedCall) => {
      try {
        const images = await callWithRetry(client, req, c, call, signal, attempts, opts);
        done++;
        progress();
        return images;
      } catch (e) {
        stop.abort(e);
        throw e;
      }
    };
    try {
      const [first, ...rest] = plan.calls;
      const head = await one(first);
      const tail = await Promise.all(rest.map(one));
      return [head, ...tail].flat();
    } catch (e) {
      // A sibling aborted by the first failure rejects with that failure; the caller's own abort stays an abort.
      if (opts.signal?.aborted) throw opts.signal.reason;
      throw e;
    } finally {
      clearInterval(beat);
    }
  }

  function name(c: Candidate): string {
    return c.target === "local" ? `"${c.model.info.id}" (local)` : `provider "${c.target.provider}" (model "${c.target.upstreamModel}")`;
  }

  async function route(m: RegisteredModel, req: GenerationRequest, given: ProviderGenerateOptions): Promise<ProviderResult> {
    const started = clock();
    const attempts: RouteAttempt[] = [];
    const failures: string[] = [];
    let last: unknown;
    // Once a partial image reached the client, another target's images would follow a different set: no failover.
    let previewed = false;
    const opts: ProviderGenerateOptions = {
      ...given,
      onEvent: (e) => {
        if (e.type === "preview") previewed = true;
        given.onEvent?.(e);
      },
    };
    const finish = (c: Candidate, res: ProviderResult, warnings: Warning[]): ProviderResult => {
      if (c.fallback) {
        warnings.push({
          code: W_FALLBACK,
          param: "model",
          message: `model "${m.info.id}" could not be served (${failures.join("; ")}); its fallback "${c.model.info.id}" made the images`,
        });
        log(`model "${m.info.id}": served by fallback ${name(c)}`);
      }
      const target =
        c.target === "local"
          ? { model: c.model.info.id, provider: "local" }
          : { model: c.model.info.id, provider: c.target.provider, providerType: c.target.providerType, upstreamModel: c.target.upstreamModel };
      const route: RouteRecord = { target, fallback: c.fallback, attempts, latencyMs: clock() - started };
      return { ...res, warnings: [...res.warnings, ...warnings], route };
    };

    for (const c of candidates(m)) {
      if (c.target === "local") {
        const info = c.model.info;
        const localReq = { ...req, model: info.id };
        const t = clock();
        try {
          if (c.fallback) checkModelLimits(localReq, info.defaults, info.limits, req.initImage !== undefined);
        } catch (e) {
          attempts.push({ model: info.id, provider: "local", call: 0, attempt: 1, outcome: "skipped", reason: "cannot_honour", ms: 0 });
          failures.push(`${name(c)} cannot take this request: ${(e as Error).message}`);
          last ??= e;
          continue;
        }
        try {
          const res = await o.local.generate(localReq, opts);
          attempts.push({ model: info.id, provider: "local", call: 0, attempt: 1, outcome: "ok", ms: clock() - t });
          return finish(c, res, []);
        } catch (err) {
          if (opts.signal?.aborted) throw err;
          const e = toEaselError(err);
          attempts.push({ model: info.id, provider: "local", call: 0, attempt: 1, outcome: "failed", reason: e.code, ms: clock() - t });
          if (!localFailsOver(e) || previewed) throw e;
          failures.push(`${name(c)}: ${e.message}`);
          last = e;
          continue;
        }
      }
      const target = c.target;
      const client = o.upstreams.client(target.provider);
      let plan: UpstreamPlan;
      try {
        plan = client.plan(req, target.upstreamModel);
      } catch (e) {
        // The model's own targets were checked before admission; a fallback that cannot honour it is passed over.
        if (!c.fallback) throw e;
        attempts.push({ model: c.model.info.id, provider: target.provider, upstreamModel: target.upstreamModel, call: 0, attempt: 1, outcome: "skipped", reason: "cannot_honour", ms: 0 });
        failures.push(`${name(c)} cannot take this request: ${(e as Error).message}`);
        continue;
      }
      const before = attempts.length;
      try {
        const images = await runPlan(client, req, c as Candidate & { target: UpstreamTarget }, plan, attempts, opts);
        const warnings = [...plan.warnings];
        const formats = new Set(images.map((i) => sniffFormat(i.bytes) ?? i.mime));
        for (const f of formats) if (f !== req.output.format) warnings.push(transcodeWarning(req.output.format, f, target.provider));
        if (images.length < req.n) {
          warnings.push({ code: "W_PARAM_ADAPTED", param: "n", message: `${name(c)} made ${images.length} of the ${req.n} images asked for` });
        }
        return finish(c, { seed: images[0]?.seed ?? 0, images, warnings: [] }, warnings);
      } catch (err) {
        if (opts.signal?.aborted) throw err;
        if (!(err instanceof UpstreamError)) throw err;
        if (!err.failsOver) throw clientError(err, target.provider);
        const tries = attempts.length - before;
        failures.push(`${err.message}${tries > 1 ? ` (${tries} attempts)` : ""}`);
        last = err;
        if (previewed) break;
      }
    }
    throw finalError(m, failures, last);
  }

  function finalError(m: RegisteredModel, failures: string[], last: unknown): EaselError {
    const message = `model "${m.info.id}" could not be served: ${failures.join("; ")}`;
    if (last instanceof UpstreamError) {
      const retryAfterSeconds = last.retryAfterMs === undefined ? undefined : Math.max(1, Math.ceil(last.retryAfterMs / 1000));
      const details = { reason: last.kind, ...(retryAfterSeconds === undefined ? {} : { retryAfterSeconds }) };
      return new EaselError(last.kind === "timeout" ? "E_TIMEOUT" : "E_UPSTREAM_FAILED", message, { details });
    }
    const e = last === undefined ? new EaselError("E_UPSTREAM_FAILED", message) : toEaselError(last);
    return new EaselError(e.code, message, { param: e.param, details: e.details });
  }

  return {
    executor(_req, model) {
      const m = o.registry.find(model.id);
      if (!m) throw new EaselError("E_MODEL_NOT_FOUND", `model "${model.id}" is not registered`, { param: "model" });
      if (m.backend === "local" && (m.fallbacks ?? []).length === 0) return o.local;
      return {
        id: "gateway",
        check(r) {
          // Every target of the model's own must take the request: they are equivalent, and any may be chosen.
          if (m.backend === "upstream") for (const t of m.targets) o.upstreams.client(t.provider).plan(r, t.upstreamModel);
        },
        generate: (r, opts) => route(m, r, opts),
      };
    },
    circuit: (provider) => breaker(provider).state,
  };
}
