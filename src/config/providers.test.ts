/** The gateway's configuration contract: providers (type, baseUrl, apiKey given or {env}) and model entries. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { EaselError } from "../core/errors.ts";
import { loadConfig } from "./index.ts";

const ISSUE_EXAMPLE = {
  providers: {
    openai: { type: "openai", baseUrl: "https://api.openai.com/v1", apiKey: { env: "OPENAI_API_KEY" } },
    backup: { type: "openai", baseUrl: "http://gpu-box.internal:8080/v1", apiKey: "esk_backup" },
    segmind: { type: "segmind", baseUrl: "https://api.segmind.com", apiKey: { env: "SEGMIND_API_KEY" } },
    monica: { type: "monica", baseUrl: "https://openapi.monica.im", apiKey: { env: "MONICA_API_KEY" } },
    pgai: { type: "playground", baseUrl: "https://playground.com", apiKey: { env: "PLAYGROUND_API_KEY" } },
  },
  models: {
    entries: {
      "gpt-image-1": { provider: "openai", upstreamModel: "gpt-image-1" },
      "pg25-remote": { provider: "segmind", upstreamModel: "playground-v2.5", fallbacks: ["playground-v2.5"] },
    },
  },
} as const;

const load = (flags: object, env: Record<string, string> = {}) => loadConfig({ env, flags: flags as never });

test("the issue's example parses; {env} keys are read from the environment, an unset one stays {env}", () => {
  const c = load(ISSUE_EXAMPLE, { OPENAI_API_KEY: "sk-from-env" });
  assert.equal(c.providers.openai.apiKey, "sk-from-env");
  assert.equal(c.providers.backup.apiKey, "esk_backup");
  assert.deepEqual(c.providers.segmind.apiKey, { env: "SEGMIND_API_KEY" });
  assert.deepEqual(c.providers.openai.timeouts, { connectMs: 5000, totalMs: 300000 });
  assert.deepEqual(c.providers.openai.retries, { max: 2, baseDelayMs: 250, maxDelayMs: 10000, maxRetryAfterMs: 30000 });
  assert.deepEqual(c.providers.openai.breaker, { failureThreshold: 5, resetMs: 30000 });
  assert.deepEqual(c.models.entries["pg25-remote"].fallbacks, ["playground-v2.5"]);
});

function refused(flags: object, where: RegExp): void {
  assert.throws(() => load(flags), (e: unknown) => e instanceof EaselError && e.code === "E_INPUT_INVALID" && where.test(e.message));
}

test("bad provider and entry settings are refused naming where", () => {
  refused({ providers: { x: { type: "stability", baseUrl: "https://a.b" } } }, /providers\.x\.type/);
  refused({ providers: { x: { type: "openai", baseUrl: "ftp://a.b" } } }, /providers\.x\.baseUrl/);
  refused({ providers: { x: { type: "openai", baseUrl: "https://a.b", apiKey: { name: "K" } } } }, /providers\.x\.apiKey/);
  refused({ models: { entries: { m: { path: "dir", provider: "x" } } } }, /models\.entries\.m.*exactly one of path, provider or targets/);
  refused({ models: { entries: { m: { targets: [] } } } }, /models\.entries\.m\.targets/);
  refused({ models: { entries: { m: { path: "dir", upstreamModel: "x" } } } }, /upstreamModel goes with provider/);
});
