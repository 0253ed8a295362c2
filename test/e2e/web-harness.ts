/**
 * What the web page's browser tests share: a real server on loopback over the micro checkpoints and the built-in
 * model, Debian's Chromium driven by playwright-core, and screenshots of the main states as test artifacts
 * (`EASEL_TEST_ARTIFACTS`, default tmp/test-artifacts/web).
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { type Browser, chromium, type Page } from "playwright-core";
import { startServer } from "../../src/cli/serve.ts";
import { loadConfig } from "../../src/config/index.ts";
import { withSqliteKeys } from "../helpers/keys.ts";

export const CHROMIUM = "/usr/bin/chromium";
/** Why the browser tests cannot run here (undefined: they can). CI installs Chromium (.ci/run). */
export const skipReason: string | undefined = existsSync(CHROMIUM)
  ? undefined
  : `no Chromium at ${CHROMIUM} (apt-get install chromium); the web page's browser tests are skipped`;

export const ARTIFACTS = resolve(process.env.EASEL_TEST_ARTIFACTS ?? "tmp/test-artifacts/web");

export interface WebServer {
  base: string;
  dataDir: string;
  /** A key with `credits` when the server was started with keys. */
  key?: string;
  keyId?: string;
  balance(): Promise<number | null>;
  close(): Promise<void>;
}

/** A server with the micro SD1.5 and Playground checkpoints beside the built-in model; `credits` creates a key first. */
export async function startWebServer(opts: { credits?: number } = {}): Promise<WebServer> {
  const dataDir = mkdtempSync(join(tmpdir(), "easel-web-"));
  mkdirSync(join(dataDir, "models"));
  symlinkSync(resolve("test/fixtures/models/sd15"), join(dataDir, "models", "sd15"));
  symlinkSync(resolve("test/fixtures/models/playground"), join(dataDir, "models", "playground-v2.5"));
  const dbPath = join(dataDir, "easel.db");
  let key: string | undefined;
  let keyId: string | undefined;
  if (opts.credits !== undefined) {
    const created = await withSqliteKeys(dbPath, (keys) => keys.create({ name: "web", credits: opts.credits }));
    key = created.key;
    keyId = created.info.id;
  }
  const config = loadConfig({ env: {}, flags: { dataDir, server: { host: "127.0.0.1", port: 0 }, engine: { intraOpThreads: 1 } } });
  const s = await startServer({ config, log: () => {} });
  return {
    base: s.url,
    dataDir,
    key,
    keyId,
    async balance() {
      if (!key) return null;
      const res = await fetch(`${s.url}/v1/jobs?limit=1`, { headers: { authorization: `Bearer ${key}` } });
      const h = res.headers.get("x-remaining-credits");
      return h === null ? null : Number(h);
    },
    async close() {
      await s.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export async function launchBrowser(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ["--headless", "--no-sandbox", "--disable-background-networking", "--disable-component-update"],
  });
}

/**
 * The page's script errors and console errors, for a test to assert there are none. Chromium logs every answer
 * with an error status as a console error; the statuses in `expected` (a refused request the test makes on purpose)
 * are left out.
 */
export function watchPage(page: Page, expected: number[] = []): string[] {
  const problems: string[] = [];
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("console", (m) => {
    if (m.type() !== "error") return;
    const status = /status of (\d{3})/.exec(m.text());
    if (status && expected.includes(Number(status[1]))) return;
    problems.push(`console error: ${m.text()}`);
  });
  return problems;
}

export async function screenshot(page: Page, name: string): Promise<void> {
  mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
}

/** Waits until the page has its models (the form is ready). */
export async function pageReady(page: Page): Promise<void> {
  await page.locator("[data-testid=model] option").first().waitFor({ state: "attached" });
}
