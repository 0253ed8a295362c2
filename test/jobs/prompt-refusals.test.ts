/**
 * Prompt refusals through the real job service (SQLite store, credits ledger): a prompt refused for a topic or a
 * safety category leaves no job row, no reservation and the balance untouched, in each dialect's error shape; the
 * same key's next request generates and is charged as usual.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { type HttpHarness, httpHarness } from "./http-harness.ts";

describe("prompt refusals before admission", () => {
  let h: HttpHarness;
  let key = "";
  let keyId = "";
  before(async () => {
    h = await httpHarness();
    const k = await h.admin.create({ name: "alice", credits: 100 });
    key = k.key;
    keyId = k.info.id;
  });
  after(async () => h.dispose());

  test("PROMPT_UNSAFE leaves no job and charges nothing; an allowed prompt then runs and is charged", async () => {
    const balance = await h.store.balance(keyId);
    const auth = { authorization: `Bearer ${key}` };
    const refusals = [
      { url: "/api/models/external/v1", payload: { prompt: "a g4mbling den", width: 64, height: 64, prompt_rejection_topics: ["gambling"] } },
      { url: "/v1/images/generations", payload: { prompt: "a nude statue", model: "sd15", size: "64x64", verify_prompt_safety: true } },
      { url: "/v1/image/gen/sd", payload: { model: "sdxl", prompt: "brand-logos on a wall", prompt_rejection_topics: ["brand logos"] } },
    ];
    for (const r of refusals) {
      const res = await h.app.inject({ method: "POST", url: r.url, payload: r.payload, headers: auth });
      assert.equal(res.statusCode, 400, res.body);
      assert.equal(res.headers["x-easel-error-code"], "E_PROMPT_UNSAFE");
    }
    assert.equal(h.provider.calls, 0);
    assert.equal((await h.store.listJobs({ keyId, limit: 10 })).length, 0, "no job recorded");
    assert.equal(await h.store.balance(keyId), balance, "nothing reserved or charged");
    const ok = await h.app.inject({
      method: "POST",
      url: "/api/models/external/v1",
      payload: { prompt: "a red circle", width: 64, height: 64, num_inference_steps: 4, prompt_rejection_topics: ["gambling"], prompt_filter: "cartoon" },
      headers: auth,
    });
    assert.equal(ok.statusCode, 200, ok.body);
    assert.equal(h.provider.calls, 1);
    const jobs = await h.store.listJobs({ keyId, limit: 10 });
    assert.equal(jobs.length, 1);
    assert.match(String(jobs[0].params.prompt), /^cartoon illustration of a red circle/);
    assert.ok((await h.store.balance(keyId))! < balance!, "the allowed request is charged");
  });
});
