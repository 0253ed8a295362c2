/** Configured providers: a key variable that is unset, an unknown provider or model, stop the start naming them. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { loadConfig } from "../config/index.ts";
import { EaselError } from "../core/errors.ts";
import { createUpstreams } from "./upstreams.ts";

const config = loadConfig({
  env: { SEG_KEY: "seg-secret" },
  flags: {
    providers: {
      seg: { type: "segmind", baseUrl: "https://api.segmind.com/", apiKey: { env: "SEG_KEY" } },
      mon: { type: "monica", baseUrl: "https://openapi.monica.im", apiKey: { env: "MONICA_KEY" } },
    },
  },
});

test("describe: the type's spec for a known model; the key from the environment; the base URL without a trailing slash", async () => {
  const u = createUpstreams(config.providers);
  const d = u.describe("seg", "playground-v2.5");
  assert.equal(d.providerType, "segmind");
  assert.equal(d.spec.kind, "edm");
  assert.equal(u.client("seg").settings.apiKey, "seg-secret");
  assert.equal(u.client("seg").settings.baseUrl, "https://api.segmind.com");
  assert.deepEqual(u.policy("seg").breaker, { failureThreshold: 5, resetMs: 30000 });
  await u.close();
});

test("an unset key variable, an unknown provider and an unknown upstream model are configuration errors", async () => {
  const u = createUpstreams(config.providers);
  const err = (f: () => unknown, re: RegExp) => assert.throws(f, (e: unknown) => e instanceof EaselError && e.code === "E_INPUT_INVALID" && re.test(e.message));
  err(() => u.describe("mon", "sdxl"), /MONICA_KEY is not set/);
  err(() => u.describe("nope", "x"), /provider "nope" is not configured \(providers: seg, mon\)/);
  err(() => u.describe("seg", "flux-pro"), /no request format is known for model "flux-pro"/);
  await u.close();
});
