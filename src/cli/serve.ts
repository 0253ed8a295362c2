/**
 * `easel serve`: the composition root of a running server — config, metadata store, blob store, engine,
 * model registry, job service and HTTP app — and its orderly start and stop.
 */
import { mkdirSync } from "node:fs";
import { hostname } from "node:os";
import { Command, InvalidArgumentError, Option } from "commander";
import type { FastifyInstance } from "fastify";
import { type Config, configPaths, loadConfig, sharedUrlSecret } from "../config/index.ts";
import { EaselError } from "../core/errors.ts";
import { localModel, type ModelRegistry } from "../gateway/registry.ts";
import type { PullResult } from "../hub/pull.ts";
import type { Gateway } from "../gateway/route.ts";
import { createKeyAdmin } from "../jobs/api-keys.ts";
import { newInstanceId } from "../jobs/instance.ts";
import { createJobService, type JobService } from "../jobs/job-service.ts";
import { decideOpenMode } from "../jobs/open-mode.ts";
import { createPromptExpander, createPromptService } from "../prompts/index.ts";
import { startServer as listen } from "../server/serve.ts";
import { lockDataDir } from "../storage/data-dir-lock.ts";
import type { MetadataStore } from "../storage/metadata-store.ts";
import { openPostgresStore } from "../storage/postgres.ts";
import { openSqliteStore } from "../storage/sqlite.ts";
import { type Cleanup, createEngine, openBlobs, openModels } from "./compose.ts";
import { count, openSharedQueue } from "./shared-queue.ts";
import { a1111NamesOf } from "../dialects/_shared/a1111-names.ts";

export interface EaselServer {
  app: FastifyInstance;
  url: string;
  registry: ModelRegistry;
  jobs: JobService;
  /** Routing to upstream providers (circuit states). */
  gateway: Gateway;
  /**
   * Stops serving. With `handBack` over a shared queue (SIGTERM, SIGINT), it first stops taking jobs and hands the ones
   * it runs back to the queue for other workers; callers waiting here are answered once those jobs settle, then it stops.
   */
  close(opts?: { handBack?: boolean }): Promise<void>;
}

export interface StartOptions {
  config: Config;
  /** Fastify logger; default: info-level JSON lines. */
  logger?: boolean | object;
  log?: (line: string) => void;
  /**
   * Jobs this server runs at once on its own engine (`--workers N`; default queue.concurrency). 0: an API-only node
   * that queues jobs for `easel worker` processes (needs queue.redisUrl).
   */
  workers?: number;
}

/** Starts everything a server needs and listens; the returned close() stops it in reverse order. */
export async function startServer(opts: StartOptions): Promise<EaselServer> {
  const { config } = opts;
  const log = opts.log ?? ((l: string) => console.error(l));
  const paths = configPaths(config);
  mkdirSync(paths.dataDir, { recursive: true, mode: 0o700 });
  const instanceId = newInstanceId();
  const urlSecret = sharedUrlSecret(config);
  const workers = opts.workers ?? config.queue.concurrency;
  if (workers === 0 && !config.queue.redisUrl) {
    throw new EaselError("E_INPUT_INVALID", "--workers 0 (an API-only node) needs a shared queue for workers to take jobs from: set queue.redisUrl (EASEL_REDIS_URL)", {
      param: "workers",
    });
  }
  let store: MetadataStore;
  let lock: { release(): void; setUrl(url: string): void };
  if (config.storage.databaseUrl) {
    // A shared database: other nodes run jobs from it too, so there is no directory lock, and crash recovery keeps
    // the jobs of owners that may still run (instance.ts).
    lock = { release: () => undefined, setUrl: () => undefined };
    store = await openPostgresStore({ connectionString: config.storage.databaseUrl });
  } else {
    // One server per data directory (a second one's crash recovery would fail this one's running jobs, and both
    // would run jobs from one SQLite file): refused here, naming the server that holds it.
    lock = lockDataDir(paths.dataDir, { instance: instanceId, pid: process.pid, host: hostname(), startedAt: new Date().toISOString() });
    try {
      store = await openSqliteStore(paths.dbFile);
    } catch (e) {
      lock.release();
      throw e;
    }
  }
  const engine = createEngine(config);
  const cleanup: Cleanup = [() => engine.close(), () => store.close()];
  try {
    const open = decideOpenMode(config, (await store.countKeys()) > 0);
    if (open.error) throw new EaselError("E_FORBIDDEN", open.error);
    const { blobs } = await openBlobs(config, cleanup);
    const { registry, gateway } = await openModels(config, engine, log, cleanup);
    const shared = await openSharedQueue(config, workers);
    if (shared) cleanup.push(() => shared.events.close());
    const jobs = createJobService({
      config,
      store,
      blobs,
      executor: (req, model) => gateway.executor(req, model),
      models: { list: () => registry.list(), find: (name) => registry.find(name)?.info },
      samplerNames: a1111NamesOf,
      openMode: open.open,
      instanceId,
      ...(urlSecret ? { urlSecret } : {}),
      // Holding the data directory's lock over its SQLite file, this is the only server using it: every other
      // owner of an unsettled job is gone (a host name that changed, as in a new container, included).
      ...(config.storage.databaseUrl ? {} : { ownerAlive: () => false }),
      ...(shared ? { queue: shared.queue, events: shared.events } : {}),
      concurrency: Math.max(1, workers),
      runJobs: workers > 0,
    });
    cleanup.unshift(() => jobs.close());
    if (shared && workers > 0) await shared.queue.whenServing?.();
    if (shared) {
      // Jobs in a shared queue belong to it, not to this process: one whose worker died is handed out again when
      // its lease runs out. Only jobs the queue no longer holds are failed, now and every minute, by every API node
      // (settling is exactly once, so nodes that race only repeat a no-op).
      log(`jobs: shared queue ${config.queue.name} on Redis; ${workers > 0 ? `${workers} worker(s) here` : "API only (--workers 0)"}`);
      const sweep = async () => {
        const r = await jobs.recoverCrashedJobs();
        if (r.failed.length > 0) log(`failed ${r.failed.length} job(s) the shared queue no longer holds and released their credits`);
      };
      await sweep();
      const lost = setInterval(() => void sweep().catch((e) => log(`lost-job sweep failed: ${e.message}`)), 60_000);
      lost.unref();
      cleanup.unshift(async () => clearInterval(lost));
    } else {
      const recovered = await jobs.recoverCrashedJobs();
      if (recovered.failed.length > 0) log(`marked ${recovered.failed.length} interrupted job(s) failed and released their credits`);
    }
    const retention = setInterval(() => void jobs.runRetention().catch((e) => log(`retention failed: ${e.message}`)), 3600_000);
    retention.unref();
    cleanup.unshift(async () => clearInterval(retention));

    // Prompt features; the semantic part of prompt rejection (config.prompts.semanticThreshold) asks the engine for the
    // local model's CLIP text embeddings.
    const prompts = createPromptService({
      config,
      expander: createPromptExpander(config),
      embedderFor: (name) => {
        const m = registry.find(name);
        return m?.backend === "local" ? (texts) => engine.embedText(m.dir, texts) : undefined;
      },
    });
    cleanup.unshift(() => prompts.close());
    // A model pulled through the admin API is served at once by this process (with a shared queue, by the workers
    // that have it: each worker machine pulls it and restarts).
    const onModelPulled = async (r: PullResult) => {
      registry.register(localModel(r.name, r.dir, await engine.describe(r.dir), [], Math.floor(Date.now() / 1000)));
      log(`models: pulled ${r.name} is served`);
    };
    const http = await listen({ config, images: jobs, keys: createKeyAdmin({ store }), logger: opts.logger ?? false, prompts, onModelPulled });
    cleanup.unshift(() => http.close());
    const address = http.url;
    lock.setUrl(address);
    const models = registry.list();
    log(`easel listening on ${address} (${open.open ? "open: no API keys, loopback only" : "API keys required"})`);
    const where = (m: (typeof models)[number]) => (m.backend === "local" ? m.family : `${m.family} via ${m.backend}`);
    log(models.length > 0 ? `models: ${models.map((m) => `${m.id} [${where(m)}]`).join(", ")}` : `no models found in ${paths.modelsDir}`);
    return {
      app: http.app,
      url: address,
      registry,
      jobs,
      gateway,
      async close(o = {}) {
        if (o.handBack && shared) await jobs.close({ handBack: true });
        for (const c of cleanup) await c().catch(() => undefined);
        lock.release();
      },
    };
  } catch (e) {
    for (const c of cleanup) await c().catch(() => undefined);
    lock.release();
    throw e;
  }
}

function port(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError(`port must be 0-65535, got "${v}"`);
  return n;
}

export function serveCommand(): Command {
  return new Command("serve")
    .description("serve every API dialect over the models in the models directory")
    .option("--host <host>", "address to bind (default 127.0.0.1)")
    .option("--port <port>", "port (default 8080)", port)
    .option("--models-dir <dir>", "diffusers checkpoints, one folder per model (default <data-dir>/models)")
    .option("--data-dir <dir>", "SQLite file, images and graph cache (default $EASEL_DATA_DIR or ~/.easel)")
    .option("--config <file>", "JSON config file")
    .option("--workers <n>", "jobs run at once on this machine's engine (default queue.concurrency); 0: API only, for easel worker processes", count)
    .addOption(
      new Option("--precision <p>", "denoiser precision (engine.precision): fp32, or int8 (faster on AVX-512 VNNI, results differ slightly and say so)").choices([
        "fp32",
        "int8",
        "bf16",
      ]),
    )
    .action(async (o: { host?: string; port?: number; modelsDir?: string; dataDir?: string; config?: string; workers?: number; precision?: "fp32" | "int8" | "bf16" }) => {
      const config = loadConfig({
        file: o.config,
        flags: {
          ...(o.dataDir ? { dataDir: o.dataDir } : {}),
          server: { ...(o.host ? { host: o.host } : {}), ...(o.port !== undefined ? { port: o.port } : {}) },
          models: o.modelsDir ? { dir: o.modelsDir } : {},
          ...(o.precision ? { engine: { precision: o.precision } } : {}),
        },
      });
      const server = await startServer({ config, logger: { level: "info" }, ...(o.workers === undefined ? {} : { workers: o.workers }) });
      const stop = async () => {
        await server.close({ handBack: true });
        process.exit(0);
      };
      process.once("SIGINT", stop);
      process.once("SIGTERM", stop);
    });
}
