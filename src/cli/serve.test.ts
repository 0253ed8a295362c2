/**
 * `easel serve` on a data directory: one server per directory (a second one refuses to start and names the
 * first; the lock goes with the process, kill -9 included), and the directory's files are the owner's only.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { configPaths, loadConfig } from "../config/index.ts";
import { startServer } from "./serve.ts";

const BIN = fileURLToPath(new URL("../../bin/easel.js", import.meta.url));

const children: ChildProcess[] = [];

function serveProcess(dataDir: string, modelsDir: string): ChildProcess {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("EASEL_")));
  return spawnTracked(process.execPath, [BIN, "serve", "--port", "0", "--data-dir", dataDir, "--models-dir", modelsDir], {
    env,
    stdio: ["ignore", "ignore", "pipe"],
  });
}

function spawnTracked(...args: Parameters<typeof spawn>): ChildProcess {
  const child = spawn(...args);
  children.push(child);
  return child;
}

/** Resolves with the child's exit code and stderr. */
function exitOf(child: ChildProcess): Promise<{ code: number | null; stderr: string }> {
  let err = "";
  child.stderr!.on("data", (d) => (err += d));
  return new Promise((resolve) => child.on("exit", (code) => resolve({ code, stderr: err })));
}

/** Resolves with the match once `pattern` appears in the child's stderr, or rejects when it exits first. */
function waitFor(child: ChildProcess, pattern: RegExp): Promise<RegExpExecArray> {
  return new Promise((resolve, reject) => {
    let err = "";
    child.stderr!.on("data", (d) => {
      err += d;
      const m = pattern.exec(err);
      if (m) resolve(m);
    });
    child.on("exit", (code) => reject(new Error(`exited with ${code}: ${err}`)));
  });
}

test("a second server on the same data directory refuses to start, naming the first; the lock dies with the first", { timeout: 120_000 }, async () => {
  const previous = process.umask(0o022);
  const root = mkdtempSync(join(tmpdir(), "easel-serve-"));
  const dataDir = join(root, "data");
  const modelsDir = join(root, "models");
  mkdirSync(modelsDir);
  const first = serveProcess(dataDir, modelsDir);
  try {
    const [, url] = await waitFor(first, /easel listening on (http:\/\/\S+)/);

    const refused = await exitOf(serveProcess(dataDir, modelsDir));
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, new RegExp(`error: the data directory ${dataDir} is in use by another Easel server \\(pid ${first.pid} on \\S+, started [^,]+, listening on ${url.replace(/[.]/g, "\\.")}\\)`));

    // In-process too (the path a supervisor or test harness takes).
    const config = loadConfig({ env: {}, flags: { dataDir, server: { port: 0 }, models: { dir: modelsDir } } });
    await assert.rejects(startServer({ config, log: () => {} }), { code: "E_FORBIDDEN", message: new RegExp(`pid ${first.pid}`) });

    const exited = new Promise((r) => first.on("exit", r));
    first.kill("SIGKILL");
    await exited;
    const server = await startServer({ config, log: () => {} });
    try {
      const holder = JSON.parse(readFileSync(join(dataDir, "easel.lock.json"), "utf8"));
      assert.equal(holder.pid, process.pid);
      assert.equal(holder.url, server.url);

      // Everything the server created in the data directory is its owner's only.
      const paths = configPaths(config);
      assert.equal(statSync(dataDir).mode & 0o777, 0o700, "data directory");
      for (const f of [paths.dbFile, `${paths.dbFile}-wal`, `${paths.dbFile}-shm`, join(dataDir, "url-signing.key"), join(dataDir, "easel.lock"), join(dataDir, "easel.lock.json")]) {
        assert.equal(statSync(f).mode & 0o777, 0o600, f);
      }
    } finally {
      await server.close();
    }
    // Closed, the directory is free again.
    await (await startServer({ config, log: () => {} })).close();
  } finally {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
    process.umask(previous);
    rmSync(root, { recursive: true, force: true });
  }
});
