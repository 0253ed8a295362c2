import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after } from "node:test";
import { createFsBlobStore } from "../../src/storage/fs-blob-store.ts";
import { runBlobStoreContract } from "./blob-store.contract.ts";

const root = mkdtempSync(join(tmpdir(), "easel-blobs-"));
let n = 0;

runBlobStoreContract("fs blob store", async () => createFsBlobStore(join(root, String(n++))));

after(() => {
  // Writes go through temporary files; none may be left behind.
  const leftovers = (readdirSync(root, { recursive: true }) as string[]).filter((p) => p.endsWith(".tmp"));
  rmSync(root, { recursive: true, force: true });
  assert.deepEqual(leftovers, []);
});
