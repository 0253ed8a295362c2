/**
 * The parts `easel serve` and `easel worker` compose the same way: the engine, the image store, and the models
 * (local folders, the built-in model, upstream providers) behind the gateway.
 */
import { cpus } from "node:os";
import { join } from "node:path";
import { BUILTIN_MODEL } from "../config/builtin-model.ts";
import { type Config, configPaths } from "../config/index.ts";
import { Engine } from "../engine/engine.ts";
import { discoverModels, type ModelRegistry } from "../gateway/registry.ts";
import { createGateway, type Gateway } from "../gateway/route.ts";
import { createUpstreams } from "../gateway/upstreams.ts";
import { createLocalProvider } from "../providers/local/index.ts";
import type { BlobStore } from "../storage/blob-store.ts";
import { createFsBlobStore } from "../storage/fs-blob-store.ts";
import { openS3BlobStore } from "../storage/s3-blob-store.ts";

/** Closers, run in order when the process stops or its start fails. */
export type Cleanup = (() => Promise<unknown>)[];

export function createEngine(config: Config): Engine {
  return new Engine({
    executionProvider: config.engine.executionProvider,
    intraOpThreads: config.engine.intraOpThreads || cpus().length,
    cacheDir: configPaths(config).cacheDir,
    t5Quantization: config.engine.t5Quantization,
    precision: enginePrecision(config),
    ...(config.engine.memoryLimitGiB ? { memoryLimitBytes: Math.floor(config.engine.memoryLimitGiB * 1024 ** 3) } : {}),
  });
}

/** engine.precision as the engine takes it ("bf16" never passes the config's own check). */
export function enginePrecision(config: Config): "fp32" | "int8" {
  return config.engine.precision === "int8" ? "int8" : "fp32";
}

/** Image bytes: the S3-compatible bucket when one is configured (probed now: a bad one fails the start), else the data directory. */
export async function openBlobs(config: Config, cleanup: Cleanup): Promise<{ blobs: BlobStore; shared: boolean }> {
  if (!config.storage.s3) return { blobs: createFsBlobStore(configPaths(config).imagesDir), shared: false };
  const s3 = await openS3BlobStore(config.storage.s3);
  cleanup.push(async () => s3.close());
  return { blobs: s3, shared: true };
}

/** Every model this process can run or route, and the gateway that picks the executor per request. */
export async function openModels(config: Config, engine: Engine, log: (line: string) => void, cleanup: Cleanup): Promise<{ registry: ModelRegistry; gateway: Gateway }> {
  const paths = configPaths(config);
  const upstreams = createUpstreams(config.providers);
  cleanup.push(() => upstreams.close());
  const registry = await discoverModels({
    modelsDir: paths.modelsDir,
    entries: config.models.entries,
    builtin: BUILTIN_MODEL,
    defaultModel: config.models.default,
    defaultAliases: config.models.defaultAliases,
    describe: (dir) => engine.describe(dir),
    describeUpstream: (provider, model) => upstreams.describe(provider, model),
    onSkip: (dir, e) => log(`skipping ${dir}: ${(e as Error).message}`),
  });
  const local = createLocalProvider({
    engine,
    modelDir: (model) => registry.require(model, paths.modelsDir).dir,
    lorasDir: join(paths.modelsDir, "loras"),
    safety: config.safety,
  });
  return { registry, gateway: createGateway({ registry, local, upstreams, log }) };
}
