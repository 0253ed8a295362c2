/**
 * `easel worker`: a process that takes jobs from the shared queue (queue.redisUrl), runs them on this machine's
 * engine (or routes them to an upstream, as the gateway would), stores the images in the shared blob store and
 * settles the job in the shared database. It serves no HTTP: API nodes (`easel serve --workers 0`) hold the callers,
 * and the job's progress and previews reach them over Redis.
 *
 * BullMQ holds each job this worker runs under a lock renewed every half lease; if the process dies (kill -9, the
 * machine gone) the lock runs out and another worker takes the job, which is still settled, and charged, once.
 */
import { cpus } from "node:os";
import { Command } from "commander";
import { type Config, configPaths, loadConfig, sharedUrlSecret } from "../config/index.ts";
import { BUILTIN_MODEL } from "../config/builtin-model.ts";
import { EaselError } from "../core/errors.ts";
import { Engine } from "../engine/engine.ts";
import { discoverModels } from "../gateway/registry.ts";
import { createGateway } from "../gateway/route.ts";
import { createUpstreams } from "../gateway/upstreams.ts";
import { newInstanceId } from "../jobs/instance.ts";
import { createJobService } from "../jobs/job-service.ts";
import { createLocalProvider } from "../providers/local/index.ts";
import { createFsBlobStore } from "../storage/fs-blob-store.ts";
import { openPostgresStore } from "../storage/postgres.ts";
import { openS3BlobStore } from "../storage/s3-blob-store.ts";
import { count, openSharedQueue } from "./shared-queue.ts";

export interface WorkerOptions {
  config: Config;
  /** Jobs run at once (default 1: the local engine runs one job at a time). */
  concurrency?: number;
  log?: (line: string) => void;
}

export interface EaselWorker {
  instanceId: string;
  /** Stops taking jobs; the ones running end cancelled (their callers are answered), then everything closes. */
  close(): Promise<void>;
}

export async function startWorker(opts: WorkerOptions): Promise<EaselWorker> {
  const { config } = opts;
  const log = opts.log ?? ((l: string) => console.error(l));
  const concurrency = opts.concurrency ?? 1;
  if (!config.queue.redisUrl) {
    throw new EaselError("E_INPUT_INVALID", "easel worker takes jobs from a shared queue: set queue.redisUrl (EASEL_REDIS_URL)", { param: "queue.redisUrl" });
  }
  if (!config.storage.databaseUrl) {
    throw new EaselError("E_INPUT_INVALID", "easel worker settles jobs in the shared database: set storage.databaseUrl (EASEL_DATABASE_URL)", {
      param: "storage.databaseUrl",
    });
  }
  const urlSecret = sharedUrlSecret(config);
  const paths = configPaths(config);
  const instanceId = newInstanceId();
  const store = await openPostgresStore({ connectionString: config.storage.databaseUrl });
  const engine = new Engine({
    executionProvider: config.engine.executionProvider,
    intraOpThreads: config.engine.intraOpThreads || cpus().length,
    cacheDir: paths.cacheDir,
    t5Quantization: config.engine.t5Quantization,
  });
  const cleanup: (() => Promise<unknown>)[] = [() => engine.close(), () => store.close()];
  try {
    const s3 = config.storage.s3 ? await openS3BlobStore(config.storage.s3) : undefined;
    if (s3) cleanup.push(async () => s3.close());
    else log(`images go to ${paths.imagesDir}: API nodes serve them only if they share that directory (set storage.s3 to share a bucket)`);
    const upstreams = createUpstreams(config.providers);
    cleanup.push(() => upstreams.close());
    const registry = await discoverModels({
      modelsDir: paths.modelsDir,
      entries: config.models.entries,
      builtin: BUILTIN_MODEL,
      defaultModel: config.models.default,
      describe: (dir) => engine.describe(dir),
      describeUpstream: (provider, model) => upstreams.describe(provider, model),
      onSkip: (dir, e) => log(`skipping ${dir}: ${(e as Error).message}`),
    });
    const local = createLocalProvider({ engine, modelDir: (model) => registry.require(model, paths.modelsDir).dir });
    const gateway = createGateway({ registry, local, upstreams, log });
    const shared = (await openSharedQueue(config, concurrency))!;
    cleanup.push(() => shared.events.close());
    const jobs = createJobService({
      config,
      store,
      blobs: s3 ?? createFsBlobStore(paths.imagesDir),
      executor: (req, model) => gateway.executor(req, model),
      models: { list: () => registry.list(), find: (name) => registry.find(name)?.info },
      instanceId,
      ...(urlSecret ? { urlSecret } : {}),
      queue: shared.queue,
      events: shared.events,
      concurrency,
      runJobs: true,
    });
    cleanup.unshift(() => jobs.close());
    const models = registry.list();
    log(`easel worker ${instanceId} ready: queue ${config.queue.name}, ${concurrency} at once; models: ${models.map((m) => m.id).join(", ") || "none"}`);
    return {
      instanceId,
      async close() {
        for (const c of cleanup) await c().catch(() => undefined);
      },
    };
  } catch (e) {
    for (const c of cleanup) await c().catch(() => undefined);
    throw e;
  }
}

export function workerCommand(): Command {
  return new Command("worker")
    .description("take jobs from the shared queue (queue.redisUrl) and run them on this machine's engine")
    .option("--concurrency <n>", "jobs run at once (default 1)", count)
    .option("--models-dir <dir>", "diffusers checkpoints, one folder per model (default <data-dir>/models)")
    .option("--data-dir <dir>", "graph cache (and images when no bucket is set) (default $EASEL_DATA_DIR or ~/.easel)")
    .option("--config <file>", "JSON config file")
    .action(async (o: { concurrency?: number; modelsDir?: string; dataDir?: string; config?: string }) => {
      const config = loadConfig({
        file: o.config,
        flags: { ...(o.dataDir ? { dataDir: o.dataDir } : {}), models: o.modelsDir ? { dir: o.modelsDir } : {} },
      });
      if (o.concurrency === 0) throw new EaselError("E_INPUT_INVALID", "--concurrency must be at least 1", { param: "concurrency" });
      const worker = await startWorker({ config, ...(o.concurrency === undefined ? {} : { concurrency: o.concurrency }) });
      const stop = async () => {
        await worker.close();
        process.exit(0);
      };
      process.once("SIGINT", stop);
      process.once("SIGTERM", stop);
    });
}
