/**
 * The real server (`startServer` on loopback) for the AUTOMATIC1111 client tests: the micro sd15 fixture installed
 * twice, as "sd15" and "sd15-b" (for model switches), and the micro sdxl fixture as "sdxl" (whose UNet has no
 * attention at full latent resolution, so 1024x1024 stays quick); with or without an API key.
 */
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import sharp from "sharp";
import { startServer } from "../../src/cli/serve.ts";
import { loadConfig } from "../../src/config/index.ts";
import { withSqliteKeys } from "../helpers/keys.ts";

const SD15_FIXTURE = resolve("test/fixtures/models/sd15");
const SDXL_FIXTURE = resolve("test/fixtures/models/sdxl");

export interface A1111Server {
  base: string;
  /** The key (undefined for an open server). */
  key?: string;
  keyId?: string;
  dataDir: string;
  /** The key's balance, read from the server's database. */
  balance(): Promise<number | null>;
  /** How many jobs the key (or the open server) has, by the job API. */
  jobCount(): Promise<number>;
  close(): Promise<void>;
}

export async function startA1111Server(opts: {
  withKey: boolean;
  credits?: number | null;
  defaultModel?: string;
  /** Config flags beside the defaults here (e.g. `images`). */
  flags?: Record<string, unknown>;
}): Promise<A1111Server> {
  const dataDir = mkdtempSync(join(tmpdir(), "easel-a1111-"));
  const modelsDir = join(dataDir, "models");
  mkdirSync(modelsDir);
  symlinkSync(SD15_FIXTURE, join(modelsDir, "sd15"));
  symlinkSync(SD15_FIXTURE, join(modelsDir, "sd15-b"));
  symlinkSync(SDXL_FIXTURE, join(modelsDir, "sdxl"));
  const dbPath = join(dataDir, "easel.db");
  let key: string | undefined;
  let keyId: string | undefined;
  if (opts.withKey) {
    const created = await withSqliteKeys(dbPath, (keys) => keys.create({ name: "a1111", credits: opts.credits ?? null }));
    key = created.key;
    keyId = created.info.id;
  }
  const config = loadConfig({
    env: {},
    flags: {
      dataDir,
      server: { host: "127.0.0.1", port: 0 },
      engine: { intraOpThreads: 2 },
      models: { default: opts.defaultModel ?? "sd15" },
      ...opts.flags,
    },
  });
  const s = await startServer({ config, log: () => {} });
  return {
    base: s.url,
    key,
    keyId,
    dataDir,
    balance: () => withSqliteKeys(dbPath, async (admin) => (keyId ? ((await admin.list()).find((k) => k.id === keyId)?.credits ?? null) : null)),
    async jobCount() {
      const res = await fetch(`${s.url}/v1/jobs?limit=100`, { headers: key ? { authorization: `Bearer ${key}` } : {} });
      assert.equal(res.status, 200);
      return ((await res.json()) as { data: unknown[] }).data.length;
    },
    async close() {
      await s.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** `Authorization: Basic base64(user:password)`, as Open WebUI, SillyTavern and A1111's --api-auth spell it. */
export function basicAuth(userPass: string): string {
  return `Basic ${Buffer.from(userPass).toString("base64")}`;
}

/** Decodes an answer's base64 PNG; its size, pixels' spread and `parameters` text chunk. */
export async function readPng(b64: string) {
  const bytes = Buffer.from(b64, "base64");
  const meta = await sharp(bytes).metadata();
  assert.equal(meta.format, "png");
  const stats = await sharp(bytes).stats();
  const parameters = meta.comments?.find((c) => c.keyword === "parameters")?.text;
  return { width: meta.width, height: meta.height, flat: stats.channels.every((c) => c.stdev < 1), parameters };
}
