/**
 * Real servers on loopback for the gateway tests:
 * - `startFastUpstream`: a real Easel HTTP server (every dialect, the real job service, SQLite keys and credits,
 *   signed file URLs) whose executor paints a seed-coloured image instantly, so 1024x1024 answers (Segmind's and
 *   Monica's only sizes) cost milliseconds;
 * - `startEngineUpstream`: `easel serve`'s own composition over the micro fixture checkpoints (sd15, playground);
 * - `startProxy`: an HTTP proxy in front of an upstream that can answer a status, drop a connection before or after
 *   forwarding, or refuse connections, request by request;
 * - `startGateway`: `easel serve`'s composition with providers and model entries, the micro sd15 as its local model.
 */
import { mkdirSync, mkdtempSync, symlinkSync } from "node:fs";
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { Writable } from "node:stream";
import { type EaselServer, startServer as startEasel } from "../../src/cli/serve.ts";
import { type ConfigInput, configPaths, loadConfig } from "../../src/config/index.ts";
import type { GenerationRequest, ModelInfo } from "../../src/core/types.ts";
import { createKeyAdmin } from "../../src/jobs/api-keys.ts";
import { createJobService } from "../../src/jobs/job-service.ts";
import type { ImageProvider, ProviderEvent, ProviderResult, RawImage } from "../../src/providers/spec.ts";
import { startServer as listen } from "../../src/server/serve.ts";
import { createFsBlobStore } from "../../src/storage/fs-blob-store.ts";
import { openSqliteStore } from "../../src/storage/sqlite.ts";
import { familyKind, familyLimits } from "../helpers/models.ts";

const FIXTURES = resolve("test/fixtures/models");

export interface Upstream {
  /** http://127.0.0.1:port */
  url: string;
  /** Key name -> secret. */
  keys: Record<string, string>;
  /** Generations the upstream ran (fast upstream only). */
  generations: GenerationRequest[];
  balance(name: string): Promise<number | null>;
  close(): Promise<void>;
}

function model(id: string, family: string, aliases: string[] = []): ModelInfo {
  return {
    id,
    family,
    kind: familyKind(family),
    backend: "local",
    aliases,
    defaults: { width: 1024, height: 1024, steps: 20, guidanceScale: 5 },
    limits: familyLimits(family),
    created: 1_700_000_000,
  };
}

/** What the fast upstream serves: each dialect's canonical ids (no sd3.5, so Monica's sd3_5 is its 404). */
export const UPSTREAM_MODELS: ModelInfo[] = [
  model("playground-v2.5", "playground", ["playground-v2-5", "Playground_v2.5"]),
  model("sdxl", "sdxl"),
  model("sd3", "sd3"),
  model("sd15", "sd15"),
];

function paint(w: number, h: number, seed: number): RawImage {
  const rgb = new Uint8Array(w * h * 3);
  const c = [(seed * 37) % 256, (seed * 91) % 256, (seed * 13) % 256];
  for (let i = 0; i < rgb.length; i += 3) [rgb[i], rgb[i + 1], rgb[i + 2]] = c;
  return { width: w, height: h, rgb, seed };
}

/** Seed-coloured images at once, seeds numbered seed, seed+1, ...; previews when partial images are asked for. */
function paintProvider(log: GenerationRequest[]): ImageProvider {
  return {
    id: "paint",
    async generate(req: GenerationRequest, o: { signal?: AbortSignal; onEvent?: (e: ProviderEvent) => void }): Promise<ProviderResult> {
      log.push(req);
      const seed = req.seed ?? 1 + Math.floor(Math.random() * 1e6);
      o.onEvent?.({ type: "progress", step: 1, totalSteps: 2 });
      for (let i = 0; i < (req.partialImages ?? 0); i++) o.onEvent?.({ type: "preview", index: i, step: i + 1, image: paint(16, 16, seed + 100 + i) });
      o.signal?.throwIfAborted();
      return { seed, images: Array.from({ length: req.n }, (_, i) => paint(req.width, req.height, seed + i)), warnings: [] };
    },
  };
}

async function makeKeys(file: string, keys: Record<string, number | null>): Promise<Record<string, string>> {
  const store = await openSqliteStore(file);
  try {
    const admin = createKeyAdmin({ store });
    const out: Record<string, string> = {};
    for (const [name, credits] of Object.entries(keys)) out[name] = (await admin.create({ name, ...(credits === null ? {} : { credits }) })).key;
    return out;
  } finally {
    await store.close();
  }
}

async function balanceOf(file: string, key: string): Promise<number | null> {
  const store = await openSqliteStore(file);
  try {
    const k = (await store.listKeys()).find((r) => key.startsWith(r.prefix));
    if (!k) throw new Error("no such key");
    const b = await store.balance(k.id);
    return b === null ? null : b / 1000;
  } finally {
    await store.close();
  }
}

/** One credit per 1024x1024 image at 20 steps (prices scale with pixels and steps). */
const PRICING = { default: { perImage: 1, referencePixels: 1024 * 1024, referenceSteps: 20 } };

export async function startFastUpstream(keys: Record<string, number | null>): Promise<Upstream> {
  const dataDir = mkdtempSync(join(tmpdir(), "easel-upstream-"));
  const config = loadConfig({ env: {}, flags: { dataDir, server: { port: 0 }, queue: { concurrency: 8 }, pricing: PRICING } });
  const paths = configPaths(config);
  const secrets = await makeKeys(paths.dbFile, keys);
  const store = await openSqliteStore(paths.dbFile);
  const generations: GenerationRequest[] = [];
  const provider = paintProvider(generations);
  const find = (name: string) => {
    const n = name.toLowerCase();
    return UPSTREAM_MODELS.find((m) => m.id.toLowerCase() === n || m.aliases.some((a) => a.toLowerCase() === n));
  };
  const jobs = createJobService({
    config,
    store,
    blobs: createFsBlobStore(paths.imagesDir),
    executor: () => provider,
    models: { list: () => UPSTREAM_MODELS, find },
    openMode: false,
  });
  const http = await listen({ config, images: jobs, keys: createKeyAdmin({ store }), logger: false });
  return {
    url: http.url,
    keys: secrets,
    generations,
    balance: (name) => balanceOfKey(store, secrets[name]),
    async close() {
      await http.close();
      await jobs.close();
      await store.close();
    },
  };
}

async function balanceOfKey(store: Awaited<ReturnType<typeof openSqliteStore>>, key: string | undefined): Promise<number | null> {
  const k = (await store.listKeys()).find((r) => key?.startsWith(r.prefix));
  if (!k) throw new Error("no such key");
  const b = await store.balance(k.id);
  return b === null ? null : b / 1000;
}

function fixtureDataDir(): string {
  const dataDir = mkdtempSync(join(tmpdir(), "easel-gw-"));
  mkdirSync(join(dataDir, "models"));
  symlinkSync(join(FIXTURES, "sd15"), join(dataDir, "models", "sd15"));
  return dataDir;
}

/** `easel serve` over the micro sd15 and playground checkpoints, with keys. */
export async function startEngineUpstream(keys: Record<string, number | null>): Promise<Upstream> {
  const dataDir = fixtureDataDir();
  symlinkSync(join(FIXTURES, "playground"), join(dataDir, "models", "playground-v2.5"));
  const secrets = await makeKeys(join(dataDir, "easel.db"), keys);
  const s = await startEasel({
    config: loadConfig({ env: {}, flags: { dataDir, server: { port: 0 }, engine: { intraOpThreads: 2 } } }),
    log: () => {},
  });
  return {
    url: s.url,
    keys: secrets,
    generations: [],
    balance: (name) => balanceOf(join(dataDir, "easel.db"), secrets[name] ?? ""),
    close: () => s.close(),
  };
}

export interface Gateway {
  url: string;
  server: EaselServer;
  dataDir: string;
  /** Everything the server logged: Fastify's log lines and its own. */
  logs: string[];
  key: string;
  close(): Promise<void>;
}

/** A gateway Easel: the micro sd15 as local model "sd15", one metered key, every log line captured. */
export async function startGateway(flags: ConfigInput, credits = 1000): Promise<Gateway> {
  const dataDir = fixtureDataDir();
  const { key } = await makeKeys(join(dataDir, "easel.db"), { key: credits });
  const logs: string[] = [];
  const stream = new Writable({
    write(chunk, _enc, done) {
      logs.push(String(chunk));
      done();
    },
  });
  const config = loadConfig({
    env: {},
    flags: { dataDir, server: { port: 0 }, engine: { intraOpThreads: 2 }, queue: { concurrency: 4 }, pricing: PRICING, ...flags },
  });
  const server = await startEasel({ config, logger: { level: "trace", stream }, log: (l) => logs.push(l) });
  return { url: server.url, server, dataDir, logs, key, close: () => server.close() };
}

export type ProxyAction =
  | { type: "pass" }
  | { type: "status"; status: number; body?: string; headers?: Record<string, string> }
  /** Close the connection without an answer, before the upstream sees the request. */
  | { type: "drop" }
  /** Forward the request, let the upstream finish it, then close the connection without an answer. */
  | { type: "drop-after" }
  /** Wait, then forward. */
  | { type: "delay"; ms: number };

export interface FaultProxy {
  url: string;
  /** Requests received (path of each). */
  seen: string[];
  /** Actions for the next requests, in order; then `otherwise`. */
  queue: ProxyAction[];
  otherwise: ProxyAction;
  close(): Promise<void>;
}

export async function startProxy(target: string): Promise<FaultProxy> {
  const t = new URL(target);
  const sockets = new Set<Socket>();
  const p: FaultProxy = { url: "", seen: [], queue: [], otherwise: { type: "pass" }, close: async () => {} };
  const forward = (req: IncomingMessage, body: Buffer, onAnswer: (res: IncomingMessage) => void) => {
    const up = httpRequest({ host: t.hostname, port: t.port, method: req.method, path: req.url, headers: { ...req.headers, host: t.host } }, onAnswer);
    up.on("error", () => req.socket.destroy());
    up.end(body);
  };
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    p.seen.push(req.url ?? "");
    const action = p.queue.shift() ?? p.otherwise;
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      if (action.type === "drop") return req.socket.destroy();
      if (action.type === "status") {
        res.writeHead(action.status, { "content-type": "application/json", ...action.headers });
        return res.end(action.body ?? JSON.stringify({ error: { message: `injected ${action.status}`, type: "server_error" } }));
      }
      if (action.type === "drop-after") {
        return forward(req, body, (up) => {
          up.resume();
          up.on("end", () => req.socket.destroy());
        });
      }
      const pass = () =>
        forward(req, body, (up) => {
          res.writeHead(up.statusCode ?? 502, up.headers);
          up.pipe(res);
        });
      if (action.type === "delay") setTimeout(pass, action.ms);
      else pass();
    });
  });
  server.on("connection", (s: Socket) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  p.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  p.close = async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  };
  return p;
}

/** A loopback port with nothing listening (connections are refused). */
export async function closedPort(): Promise<string> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return `http://127.0.0.1:${port}`;
}

export const post = (base: string, path: string, body: unknown, headers: Record<string, string>) =>
  fetch(`${base}${path}`, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: JSON.stringify(body) });

export const bearer = (key: string) => ({ authorization: `Bearer ${key}` });

/** The x-easel-warnings header, parsed. */
export function warningsOf(res: Response): { code: string; param?: string; message: string }[] {
  const h = res.headers.get("x-easel-warnings");
  return h ? (JSON.parse(h) as { code: string; param?: string; message: string }[]) : [];
}
