import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { HOLDER_FILE, LOCK_FILE, lockDataDir } from "./data-dir-lock.ts";

const holder = (instance: string, pid = process.pid) => ({ instance, pid, host: hostname(), startedAt: "2026-01-01T00:00:00.000Z" });

test("data directory lock: a second holder is refused with the first one named; released, it can be taken", () => {
  const dir = mkdtempSync(join(tmpdir(), "easel-lock-"));
  try {
    const first = lockDataDir(dir, holder("inst_first"));
    first.setUrl("http://127.0.0.1:8123");
    assert.throws(
      () => lockDataDir(dir, holder("inst_second")),
      (e: Error & { code?: string; details?: { holder?: { instance?: string } } }) => {
        assert.equal(e.code, "E_FORBIDDEN");
        assert.match(e.message, new RegExp(`in use by another Easel server \\(pid ${process.pid} on .+, started 2026-01-01T00:00:00.000Z, listening on http://127.0.0.1:8123\\)`));
        assert.equal(e.details?.holder?.instance, "inst_first");
        return true;
      },
    );
    for (const f of [LOCK_FILE, HOLDER_FILE]) assert.equal(statSync(join(dir, f)).mode & 0o777, 0o600, f);
    first.release();
    const second = lockDataDir(dir, holder("inst_second"));
    assert.equal(second.holder.instance, "inst_second");
    second.release();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("data directory lock: held by another process until that process is killed, then free at once", { timeout: 60_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), "easel-lock-"));
  const lockModule = fileURLToPath(new URL("./data-dir-lock.ts", import.meta.url));
  const code = `const { lockDataDir } = await import(${JSON.stringify(lockModule)});
lockDataDir(${JSON.stringify(dir)}, { instance: "inst_child", pid: process.pid, host: "h", startedAt: "t" });
console.log("LOCKED"); setInterval(() => {}, 1000);`;
  const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", code], { stdio: ["ignore", "pipe", "inherit"] });
  try {
    await new Promise<void>((resolve, reject) => {
      child.stdout.on("data", (d) => String(d).includes("LOCKED") && resolve());
      child.on("exit", (c) => reject(new Error(`child exited with ${c}`)));
    });
    assert.throws(() => lockDataDir(dir, holder("inst_parent")), new RegExp(`pid ${child.pid} on h`));
    const exited = new Promise((r) => child.on("exit", r));
    child.kill("SIGKILL");
    await exited;
    const lock = lockDataDir(dir, holder("inst_parent"));
    lock.release();
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  }
});
