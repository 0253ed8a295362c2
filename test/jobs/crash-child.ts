/**
 * Child process of crash-recovery.test.ts: opens the data dir given as argv[2], starts one generation with the
 * key id argv[3] whose provider never finishes, prints RUNNING <jobId> once the job runs, and waits to be killed.
 */
import { configPaths, loadConfig } from "../../src/config/index.ts";
import { createJobService } from "../../src/jobs/job-service.ts";
import { createFsBlobStore } from "../../src/storage/fs-blob-store.ts";
import { openSqliteStore } from "../../src/storage/sqlite.ts";
import { models, request, solidProvider } from "./helpers.ts";

const [dataDir, keyId] = process.argv.slice(2);
const config = loadConfig({ env: {}, flags: { dataDir, pricing: { default: { perImage: 1, referencePixels: 64, referenceSteps: 4 } } } });
const store = await openSqliteStore(configPaths(config).dbFile);
let jobId = "";
const svc = createJobService({
  config,
  store,
  blobs: createFsBlobStore(configPaths(config).imagesDir),
  executor: () => solidProvider({ gate: new Promise(() => {}), onStart: () => process.stdout.write(`RUNNING ${jobId}\n`) }),
  models,
});
const principal = { keyId, name: "crash", remainingCredits: null };
void svc.generate(request({ n: 3 }), { dialect: "openai", principal, onEvent: (e) => void (jobId ||= e.jobId) });
setInterval(() => {}, 1000);
