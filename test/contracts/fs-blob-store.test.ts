import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { createFsBlobStore } from "../../src/storage/fs-blob-store.ts";
import { runBlobStoreContract } from "./blob-store.contract.ts";

const root = mkdtempSync(join(tmpdir(), "easel-blobs-"));
let n = 0;

runBlobStoreContract("fs blob store", async () => createFsBlobStore(join(root, String(n++))));

test("fs blob store: objects are created 0600 and directories 0700, whatever the umask allows", async () => {
  const previous = process.umask(0o022);
  try {
    const dir = join(root, "modes", "images");
    const store = createFsBlobStore(dir);
    const key = "ab".repeat(32);
    await store.put(key, new Uint8Array([1, 2, 3]), "application/octet-stream");
    assert.equal(statSync(join(dir, "ab", key)).mode & 0o777, 0o600);
    assert.equal(statSync(join(dir, "ab")).mode & 0o777, 0o700);
    assert.equal(statSync(dir).mode & 0o777, 0o700);
  } finally {
    process.umask(previous);
  }
});

after(() => {
  // Writes go through temporary files; none may be left behind.
  const leftovers = (readdirSync(root, { recursive: true }) as string[]).filter((p) => p.endsWith(".tmp"));
  rmSync(root, { recursive: true, force: true });
  assert.deepEqual(leftovers, []);
});
