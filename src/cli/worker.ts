
import { Command } from "commander";
import { type Config, configPaths, loadConfig, sharedUrlSecret } from "../config/index.ts";
import { EaselError } from "../core/errors.ts";
import { newInstanceId } from "../jobs/instance.ts";
import { createJobService } from "../jobs/job-service.ts";
import { openPostgresStore } from "../storage/postgres.ts";
import { type Cleanup, createEngine, openBlobs, openModels } from "./compose.ts";
import { count, openSharedQueue } from "./shared-queue.ts";
import { a1111NamesOf } from "../dialects/_shared/a1111-names.ts";

export interface WorkerOptions {
  config: Config;
  /** Jobs run at once (default 1: the local engine runs one job at a time). */
  concurrency?: number;
  log?: (line: string) => void;
}

export interface EaselWorker {
  instanceId: string;
  /**
   * Stops taking jobs, then everything closes. The jobs running end cancelled (their callers are answered), or with
   * `handBack` (SIGTERM, SIGINT) go back to the queue unsettled, their leases released, for another worker to take at once.
   */
  close(opts?: { handBack?: boolean }): Promise<void>;
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
  const engine = createEngine(config);
  const cleanup: Cleanup = [() => engine.close(), () => store.close()];
  try {
    const { blobs, shared: bucket } = await openBlobs(config, cleanup);
    if (!bucket) log(`images go to ${paths.imagesDir}: API nodes serve them only if they share that directory (set storage.s3 to share a bucket)`);
    const { registry, gateway } = await openModels(config, engine, log, cleanup);
    const shared = (await openSharedQueue(config, concurrency))!;
    cleanup.push(() => shared.events.close());
    const jobs = createJobService({
      config,
      store,
      blobs,
      executor: (req, model) => gateway.executor(req, model),
      models: { list: () => registry.list(), find: (name) => registry.find(name)?.info },
      samplerNames: a1111NamesOf,
      instanceId,
      ...(urlSecret ? { urlSecret } : {}),
      queue: shared.queue,
      events: shared.events,
      concurrency,
      runJobs: true,
    });
    cleanup.unshift(() => jobs.close());
    // API nodes admit jobs for a model only while a live worker advertises it.
    await shared.queue.whenServing?.();
    const models = registry.list();
    log(`easel worker ${instanceId} ready: queue ${config.queue.name}, ${concurrency} at once; models: ${models.map((m) => m.id).join(", ") || "none"}`);
    return {
      instanceId,
      async close(o = {}) {
        if (o.handBack) await jobs.close({ handBack: true });
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
      // Stopping hands the running job back to the queue: another worker takes it at once.
      const stop = async () => {
        await worker.close({ handBack: true });
        process.exit(0);
      };
      process.once("SIGINT", stop);
      process.once("SIGTERM", stop);
    });
}
