/**
 * Gateway overhead: the latency an Easel gateway adds to each proxied request, at a steady request rate on loopback.
 * The upstream is a real Easel (HTTP server, OpenAI and Segmind dialects, job service, SQLite keys and credits) whose
 * executor paints images at once, so its own time is small and steady; the gateway is `easel serve`'s composition
 * routing two models to it. Each runs in its own process (bench/gateway-server.ts), as they would in production.
 * Requests are sent open-loop (one every 1/rate s, whether or not earlier ones finished), first straight to the
 * upstream, then the same request through the gateway; the added latency is the difference of the two
 * distributions' percentiles. Scenarios: OpenAI 64x64 PNG to an openai provider (the gateway's fixed costs: its job
 * record and credits, one upstream exchange, the answer), and 1024x1024 JPEG to a segmind provider (a 1024x1024
 * image read, checked and passed through).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { createInterface } from "node:readline";
import { bearer, post } from "../test/gateway/harness.ts";

export interface GatewayBenchRow {
  scenario: string;
  ratePerSecond: number;
  path: "direct" | "gateway";
  requests: number;
  failed: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  meanMs: number;
}

export interface GatewayBenchResult {
  rows: GatewayBenchRow[];
  /** Per scenario: gateway minus direct, at p50 and p99. */
  added: { scenario: string; p50Ms: number; p99Ms: number }[];
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

/** Sends `count` requests at `rate` per second, open-loop; returns each one's latency (ms) and the failures. */
async function steady(count: number, rate: number, send: () => Promise<Response>): Promise<{ ms: number[]; failed: number }> {
  const ms: number[] = [];
  let failed = 0;
  const start = performance.now();
  const inflight: Promise<void>[] = [];
  for (let i = 0; i < count; i++) {
    const due = start + (i * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    inflight.push(
      (async () => {
        const t = performance.now();
        try {
          const res = await send();
          await res.arrayBuffer();
          if (res.ok) ms.push(performance.now() - t);
          else failed++;
        } catch {
          failed++;
        }
      })(),
    );
  }
  await Promise.all(inflight);
  return { ms, failed };
}

function row(scenario: string, ratePerSecond: number, path: GatewayBenchRow["path"], r: { ms: number[]; failed: number }): GatewayBenchRow {
  const s = [...r.ms].sort((a, b) => a - b);
  const mean = s.reduce((a, b) => a + b, 0) / Math.max(1, s.length);
  return { scenario, ratePerSecond, path, requests: s.length + r.failed, failed: r.failed, p50Ms: percentile(s, 50), p90Ms: percentile(s, 90), p99Ms: percentile(s, 99), meanMs: mean };
}

/** Starts bench/gateway-server.ts in a child process and waits for its `{url, key}` line. */
async function server(args: string[]): Promise<{ url: string; key: string; child: ChildProcess }> {
  const child = spawn(process.execPath, ["--import", "tsx", join(import.meta.dirname, "gateway-server.ts"), ...args], { stdio: ["ignore", "pipe", "inherit"] });
  const line = await new Promise<string>((resolve, reject) => {
    child.once("exit", (code) => reject(new Error(`gateway-server ${args[0]} exited with ${code}`)));
    createInterface({ input: child.stdout! }).once("line", resolve);
  });
  return { ...(JSON.parse(line) as { url: string; key: string }), child };
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise((r) => child.once("exit", r));
  child.kill("SIGTERM");
  await exited;
}

export async function benchGateway(o: { quick: boolean; log?: (line: string) => void }): Promise<GatewayBenchResult> {
  const seconds = o.quick ? 4 : 20;
  const log = o.log ?? (() => undefined);
  const upstream = await server(["upstream"]);
  const rows: GatewayBenchRow[] = [];
  const added: GatewayBenchResult["added"] = [];
  try {
    const gw = await server(["gateway", upstream.url, upstream.key]);
    try {
      const scenarios = [
        {
          name: "openai 64x64 png -> openai provider",
          rate: 10,
          direct: () => post(upstream.url, "/v1/images/generations", { model: "sd15", prompt: "x", size: "64x64", response_format: "b64_json" }, bearer(upstream.key)),
          gateway: () => post(gw.url, "/v1/images/generations", { model: "remote", prompt: "x", size: "64x64", response_format: "b64_json" }, bearer(gw.key)),
        },
        {
          // Slower: a 1024x1024 answer costs the upstream alone tens of ms of CPU (a 2-core machine saturates at 10/s).
          name: "1024x1024 jpeg -> segmind provider",
          rate: 2,
          direct: () => post(upstream.url, "/v1/playground-v2.5", { prompt: "x", num_inference_steps: 20, base64: true }, { "x-api-key": upstream.key }),
          gateway: () => post(gw.url, "/v1/playground-v2.5", { prompt: "x", num_inference_steps: 20, base64: true }, { "x-api-key": gw.key }),
        },
      ];
      for (const s of scenarios) {
        const count = s.rate * seconds;
        log(`  gateway: ${s.name}, ${count} requests at ${s.rate}/s each way ...`);
        // Warm-up: connection pools, the JIT, SQLite pages.
        await steady(2 * s.rate, s.rate, s.direct);
        await steady(2 * s.rate, s.rate, s.gateway);
        const direct = row(s.name, s.rate, "direct", await steady(count, s.rate, s.direct));
        const through = row(s.name, s.rate, "gateway", await steady(count, s.rate, s.gateway));
        rows.push(direct, through);
        added.push({ scenario: s.name, p50Ms: through.p50Ms - direct.p50Ms, p99Ms: through.p99Ms - direct.p99Ms });
      }
    } finally {
      await stop(gw.child);
    }
  } finally {
    await stop(upstream.child);
  }
  return { rows, added };
}

export function printGatewayBench(r: GatewayBenchResult, printTable: (header: string[], rows: string[][]) => void): void {
  const f = (x: number) => x.toFixed(1);
  printTable(
    ["gateway overhead (loopback)", "path", "req/s", "requests", "failed", "p50 ms", "p90 ms", "p99 ms", "mean ms"],
    r.rows.map((x) => [x.scenario, x.path, `${x.ratePerSecond}`, `${x.requests}`, `${x.failed}`, f(x.p50Ms), f(x.p90Ms), f(x.p99Ms), f(x.meanMs)]),
  );
  for (const a of r.added) console.log(`  added by the gateway, ${a.scenario}: p50 ${f(a.p50Ms)} ms, p99 ${f(a.p99Ms)} ms`);
}
