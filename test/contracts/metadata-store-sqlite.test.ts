import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after } from "node:test";
import { openSqliteStore } from "../../src/storage/sqlite.ts";
import { runMetadataStoreContract } from "./metadata-store.contract.ts";

const dir = mkdtempSync(join(tmpdir(), "easel-sqlite-"));
after(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;

runMetadataStoreContract("sqlite", () => openSqliteStore(join(dir, `m${n++}.db`)));
