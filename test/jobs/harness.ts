import { rmSync } from "node:fs";
import type { Config } from "../../src/config/index.ts";
import { configPaths } from "../../src/config/index.ts";
import { createKeyAdmin } from "../../src/jobs/api-keys.ts";
import { createJobService, type JobService } from "../../src/jobs/job-service.ts";
import type { ImageProvider } from "../../src/providers/spec.ts";
import { createFsBlobStore } from "../../src/storage/fs-blob-store.ts";
import type { MetadataStore } from "../../src/storage/metadata-store.ts";
import { openSqliteStore } from "../../src/storage/sqlite.ts";
import { models, testConfig } from "./helpers.ts";

export interface Harness {
  config: Config;
  store: MetadataStore;
  svc: JobService;
  admin: ReturnType<typeof createKeyAdmin>;
  dispose(): Promise<void>;
}

export async function harness(o: {
  provider: Pick<ImageProvider, "generate">;
  config?: Config;
  clock?: () => number;
  openMode?: boolean;
  concurrency?: number;
}): Promise<Harness> {
  const config = o.config ?? testConfig();
  const paths = configPaths(config);
  const store = await openSqliteStore(paths.dbFile);
  const svc = createJobService({
    config,
    store,
    blobs: createFsBlobStore(paths.imagesDir),
    executor: () => o.provider,
    models,
    openMode: o.openMode,
    concurrency: o.concurrency ?? 2,
    clock: o.clock,
  });
  const admin = createKeyAdmin({ store, clock: o.clock });
  return {
    config,
    store,
    svc,
    admin,
    async dispose() {
      await svc.close();
      await store.close();
      rmSync(paths.dataDir, { recursive: true, force: true });
    },
  };
}
