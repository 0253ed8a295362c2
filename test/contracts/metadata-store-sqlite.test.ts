import assert from "node:assert/strict";
import { chmodSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { openSqliteStore } from "../../src/storage/sqlite.ts";
import { runMetadataStoreContract } from "./metadata-store.contract.ts";

const dir = mkdtempSync(join(tmpdir(), "easel-sqlite-"));
after(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;

runMetadataStoreContract("sqlite", () => openSqliteStore(join(dir, `m${n++}.db`)));

test("sqlite: the database, its WAL and shared-memory files are 0600 and a new directory 0700; wider files are narrowed", async () => {
  const previous = process.umask(0o022);
  try {
    const file = join(dir, "modes", "easel.db");
    const s = await openSqliteStore(file);
    await s.admitJob({ job: { id: "j1", keyId: null, dialect: "openai", model: "m", params: {} }, cost: 0, now: 1 });
    for (const f of [file, `${file}-wal`, `${file}-shm`]) assert.equal(statSync(f).mode & 0o777, 0o600, f);
    assert.equal(statSync(join(dir, "modes")).mode & 0o777, 0o700);
    await s.close();

    const old = join(dir, "old.db");
    writeFileSync(old, "");
    chmodSync(old, 0o644);
    await (await openSqliteStore(old)).close();
    assert.equal(statSync(old).mode & 0o777, 0o600, "a file left world-readable is narrowed");
  } finally {
    process.umask(previous);
  }
});
