/**
 * The whole HTTP surface over the real job service: createApp + createJobService + a SQLite store + an fs blob
 * store, with a solid-colour provider standing in for the engine and one model per dialect's canonical id
 * (each with its family's real limits and kind).
 */
import { rmSync } from "node:fs";
import type { FastifyInstance } from "fastify";
import { type Config, type ConfigInput, configPaths } from "../../src/config/index.ts";
import type { ModelInfo } from "../../src/core/types.ts";
import { createKeyAdmin, type KeyAdmin } from "../../src/jobs/api-keys.ts";
import { createJobService, type JobService } from "../../src/jobs/job-service.ts";
import type { ImageProvider } from "../../src/providers/spec.ts";
import { createApp } from "../../src/server/app.ts";
import { createFsBlobStore } from "../../src/storage/fs-blob-store.ts";
import type { MetadataStore } from "../../src/storage/metadata-store.ts";
import { openSqliteStore } from "../../src/storage/sqlite.ts";
import { familyKind, familyLimits } from "../helpers/models.ts";
import { solidProvider, testConfig } from "./helpers.ts";

function describeModel(id: string, family: string, size: number, steps: number): ModelInfo {
  return {
    id,
    family,
    kind: familyKind(family),
    backend: "local",
    aliases: [],
    defaults: { width: size, height: size, steps, guidanceScale: 5 },
    limits: familyLimits(family),
    created: 1_700_000_000,
  };
}

/** What each dialect resolves to: OpenAI names them, Monica SD `sd3`, the Playground dialects `playground-v2.5`. */
export const HTTP_MODELS: ModelInfo[] = [
  describeModel("sd15", "sd15", 64, 4),
  describeModel("sdxl", "sdxl", 64, 4),
  describeModel("sd3", "sd3", 64, 4),
  describeModel("playground-v2.5", "playground", 64, 4),
];

export interface HttpHarness {
  app: FastifyInstance;
  svc: JobService;
  store: MetadataStore;
  admin: KeyAdmin;
  config: Config;
  provider: ImageProvider & { calls: number };
  dispose(): Promise<void>;
}

export async function httpHarness(
  o: { config?: ConfigInput; openMode?: boolean; provider?: ImageProvider & { calls: number }; concurrency?: number } = {},
): Promise<HttpHarness> {
  const config = testConfig(o.config);
  const paths = configPaths(config);
  const store = await openSqliteStore(paths.dbFile);
  const provider = o.provider ?? solidProvider();
  const byName = new Map(HTTP_MODELS.map((m) => [m.id, m]));
  const svc = createJobService({
    config,
    store,
    blobs: createFsBlobStore(paths.imagesDir),
    executor: () => provider,
    models: { list: () => HTTP_MODELS, find: (n) => byName.get(n) },
    openMode: o.openMode,
    concurrency: o.concurrency ?? 2,
  });
  const app = await createApp({ config, images: svc });
  return {
    app,
    svc,
    store,
    admin: createKeyAdmin({ store }),
    config,
    provider,
    async dispose() {
      await app.close();
      await svc.close();
      await store.close();
      rmSync(paths.dataDir, { recursive: true, force: true });
    },
  };
}

/** Both ways a dialect takes a key: Bearer (OpenAI, Monica, Playground) and x-api-key (Segmind). */
export const keyHeaders = (key: string): Record<string, string> => ({ authorization: `Bearer ${key}`, "x-api-key": key });
