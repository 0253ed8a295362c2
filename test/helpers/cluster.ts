/**
 * A scaled-out Easel on loopback for e2e tests and the scale-out benchmark: `easel serve --workers 0` API nodes and
 * `easel worker` processes, each a child process of its own, sharing a fresh PostgreSQL database, a queue of their own
 * on Redis (its keys removed at the end) and either an S3 bucket (s3rver, started by the caller) or one image
 * directory. The metered store handle lets the caller look behind the processes (jobs, ledger).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { Redis } from "ioredis";
import pg from "pg";
import type { MetadataStore } from "../../src/storage/metadata-store.ts";
import { openPostgresStore } from "../../src/storage/postgres.ts";
import { redisUnreachable, TEST_REDIS_URL } from "./redis.ts";

const BIN = fileURLToPath(new URL("../../bin/easel.js", import.meta.url));
export const PG_ADMIN: pg.ClientConfig = { host: "127.0.0.1", port: 5432, database: "postgres", user: process.env.PGUSER ?? "postgres" };

/** undefined when PostgreSQL and Redis both answer; otherwise why not (for a visible skip). */
export async function clusterUnavailable(redisUrl = TEST_REDIS_URL): Promise<string | undefined> {
  const c = new pg.Client({ ...PG_ADMIN, connectionTimeoutMillis: 2000 });
  try {
    await c.connect();
  } catch (e) {
    return `PostgreSQL not reachable at ${PG_ADMIN.host}:${PG_ADMIN.port}: ${(e as Error).message}`;
  } finally {
    await c.end().catch(() => undefined);
  }
  const redis = await redisUnreachable(redisUrl);
  return redis === undefined ? undefined : `Redis not reachable at ${redisUrl}: ${redis}`;
}

export interface ClusterOptions {
  /** The models every process gets unless told otherwise: folder name -> checkpoint directory (linked, not copied). */
  models: Record<string, string>;
  /** queue.leaseSeconds of every process. */
  leaseSeconds: number;
  /** An S3-compatible endpoint and bucket for the images (credentials: s3rver's); unset: one shared directory. */
  s3?: { endpoint: string; bucket: string; accessKeyId: string; secretAccessKey: string };
  /** engine threads per process (default 1: several processes share the machine). */
  threads?: number;
  redisUrl?: string;
  /** Name prefix of the database and queue (default "e2e"). */
  label?: string;
  /** A config file every process reads (`--config`), e.g. limits. */
  config?: Record<string, unknown>;
}

export interface Proc {
  name: string;
  child: ChildProcess;
  /** What the process printed to stderr so far. */
  log(): string;
  /** Resolves when the process has exited (at once if it has). */
  exited(): Promise<void>;
  kill(signal: NodeJS.Signals): Promise<void>;
}

export interface ApiNode extends Proc {
  url: string;
}

export interface WorkerProc extends Proc {
  /** The instance id the worker records as the owner of the jobs it runs. */
  instanceId: string;
}

export interface Cluster {
  databaseUrl: string;
  queueName: string;
  redisUrl: string;
  store: MetadataStore;
  root: string;
  /** `easel serve`, API only unless `workers` says how many jobs it runs itself. */
  apiNode(name: string, o?: { workers?: number }): Promise<ApiNode>;
  /** `cache` names the graph cache directory (a replacement reuses its predecessor's); `models` overrides the cluster's. */
  worker(name: string, o?: { cache?: string; models?: Record<string, string>; args?: string[] }): Promise<WorkerProc>;
  /** Kills every process still running, drops the database, removes the queue's Redis keys and the temporary files. */
  close(): Promise<void>;
}

export async function startCluster(o: ClusterOptions): Promise<Cluster> {
  const redisUrl = o.redisUrl ?? TEST_REDIS_URL;
  const run = `${o.label ?? "e2e"}_${process.pid}_${Date.now().toString(36)}`;
  const database = `easel_${run}`.toLowerCase();
  const queueName = run.replaceAll("_", "-");
  const root = mkdtempSync(join(tmpdir(), "easel-cluster-"));
  const dataDir = join(root, "data");
  mkdirSync(dataDir, { recursive: true });
  const configFile = join(root, "easel.json");
  writeFileSync(configFile, JSON.stringify(o.config ?? {}));
  const databaseUrl = `postgres://${PG_ADMIN.user}@${PG_ADMIN.host}:${PG_ADMIN.port}/${database}`;
  const admin = new pg.Client(PG_ADMIN);
  await admin.connect();
  await admin.query(`create database ${database}`);
  const store = await openPostgresStore({ connectionString: databaseUrl, max: 3 });
  const procs: Proc[] = [];
  let modelSets = 0;
  const modelsDir = (models: Record<string, string>) => {
    const dir = join(root, `models-${modelSets++}`);
    mkdirSync(dir);
    for (const [name, path] of Object.entries(models)) symlinkSync(resolve(path), join(dir, name));
    return dir;
  };
  const clusterModels = modelsDir(o.models);

  function spawnEasel<T>(name: string, args: string[], cache: string, modelsDir: string, ready: RegExp, done: (m: RegExpExecArray, p: Proc) => T): Promise<T> {
    const env: NodeJS.ProcessEnv = {
      ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("EASEL_"))),
      EASEL_DATA_DIR: dataDir,
      EASEL_CACHE_DIR: join(root, `cache-${cache}`),
      EASEL_DATABASE_URL: databaseUrl,
      EASEL_REDIS_URL: redisUrl,
      EASEL_QUEUE_NAME: queueName,
      EASEL_QUEUE_LEASE_SECONDS: String(o.leaseSeconds),
      EASEL_URL_SECRET: "cluster-e2e-url-signing-secret-0123456789",
      EASEL_THREADS: String(o.threads ?? 1),
      ...(o.s3
        ? {
            EASEL_S3_BUCKET: o.s3.bucket,
            EASEL_S3_ENDPOINT: o.s3.endpoint,
            EASEL_S3_FORCE_PATH_STYLE: "1",
            AWS_ACCESS_KEY_ID: o.s3.accessKeyId,
            AWS_SECRET_ACCESS_KEY: o.s3.secretAccessKey,
          }
        : {}),
    };
    const child = spawn(process.execPath, [BIN, ...args, "--models-dir", modelsDir, "--config", configFile], { env, stdio: ["ignore", "ignore", "pipe"] });
    let err = "";
    const exit = new Promise<void>((r) => child.once("exit", () => r()));
    const proc: Proc = {
      name,
      child,
      log: () => err,
      exited: () => exit,
      async kill(signal) {
        if (child.exitCode === null && child.signalCode === null) child.kill(signal);
        await exit;
      },
    };
    procs.push(proc);
    return new Promise((resolve, reject) => {
      child.stderr!.on("data", (d) => {
        const before = err.length;
        err += d;
        if (before === 0 || !ready.test(err.slice(0, before))) {
          const m = ready.exec(err);
          if (m) resolve(done(m, proc));
        }
      });
      child.once("exit", (code, signal) => reject(new Error(`${name} exited (${code ?? signal}) before it was ready: ${err}`)));
    });
  }

  return {
    databaseUrl,
    queueName,
    redisUrl,
    store,
    root,
    apiNode: (name, a = {}) =>
      spawnEasel(name, ["serve", "--workers", String(a.workers ?? 0), "--port", "0"], name, clusterModels, /easel listening on (http:\/\/\S+)/, (m, p) => ({ ...p, url: m[1] })),
    worker: (name, w = {}) =>
      spawnEasel(name, ["worker", ...(w.args ?? [])], w.cache ?? name, w.models ? modelsDir(w.models) : clusterModels, /easel worker (\S+) ready/, (m, p) => ({ ...p, instanceId: m[1] })),
    async close() {
      await Promise.all(procs.map((p) => p.kill("SIGKILL")));
      await store.close().catch(() => undefined);
      // Without FORCE: the killed processes' sessions end within moments.
      for (let i = 0; i < 100; i++) {
        if (await admin.query(`drop database if exists ${database}`).then(() => true, () => false)) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      await admin.end();
      const r = new Redis(redisUrl);
      for (const pattern of [`easel:${queueName}*`, `easel-fair:${queueName}*`, `easel-events:${queueName}*`]) {
        const keys = await r.keys(pattern);
        if (keys.length > 0) await r.del(...keys);
      }
      await r.quit();
      rmSync(root, { recursive: true, force: true });
    },
  };
}
