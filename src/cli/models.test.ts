/**
 * The model commands as a user runs them (`node bin/easel.js ...` in a child process): pull from a local
 * hub-protocol server (test/helpers/hub-server.ts) through HF_ENDPOINT and HF_TOKEN, models list with size and source,
 * models rm, and the gated refusal's message.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { after, before, describe, test } from "node:test";
import { type FakeHub, filesUnder, startFakeHub } from "../../test/helpers/hub-server.ts";

const run = promisify(execFile);
const FIXTURE = resolve("test/fixtures/models/sd15");

describe("easel pull / models list / models rm", () => {
  let hub: FakeHub;
  let tmp: string;
  before(async () => {
    const files = filesUnder(FIXTURE);
    const commit = "fedcba9876543210fedcba9876543210fedcba98";
    hub = await startFakeHub({ "tiny/micro-sd15": { files, commit }, "tiny/gated": { files, commit, gatedTokens: ["hf_ok"] } });
    tmp = mkdtempSync(join(tmpdir(), "easel-cli-models-"));
  });
  after(async () => {
    await hub.close();
    rmSync(tmp, { recursive: true, force: true });
  });

  const easel = (args: string[], env: Record<string, string> = {}) =>
    run(process.execPath, ["bin/easel.js", ...args, "--data-dir", tmp], { env: { ...process.env, HF_ENDPOINT: hub.endpoint, HF_TOKEN: "", ...env } }).then(
      (r) => ({ code: 0, ...r }),
      (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
    );

  test("pull, list, rm", async () => {
    const pulled = await easel(["pull", "tiny/micro-sd15", "--variant", "fp16", "--name", "tiny"]);
    assert.equal(pulled.code, 0, pulled.stderr);
    assert.match(pulled.stdout, /^tiny\t.*\t12 files, 466 KiB\tcommit fedcba98/);
    assert.match(pulled.stderr, /unet\/diffusion_pytorch_model\.fp16\.safetensors 177 KiB/);
    assert.ok(existsSync(join(tmp, "models", "tiny", "model_index.json")));

    const listed = await easel(["models", "list"]);
    assert.equal(listed.code, 0, listed.stderr);
    assert.match(listed.stdout, /^tiny\tsd15\t64x64.*\t467 KiB, hub tiny\/micro-sd15@fedcba987654 \(main\) fp16\t/m);
    const json = JSON.parse((await easel(["models", "list", "--json"])).stdout) as { id: string; source?: { repo: string } }[];
    assert.equal(json.find((m) => m.id === "tiny")?.source?.repo, "tiny/micro-sd15");

    const removed = await easel(["models", "rm", "tiny"]);
    assert.equal(removed.code, 0, removed.stderr);
    assert.ok(!existsSync(join(tmp, "models", "tiny")));
    const again = await easel(["models", "rm", "tiny"]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /no model "tiny"/);
  });

  test("a gated repository: the message says how to get access; HF_TOKEN opens it", async () => {
    const refused = await easel(["pull", "tiny/gated"]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /accept the licence, then set HF_TOKEN/);
    const ok = await easel(["pull", "tiny/gated"], { HF_TOKEN: "hf_ok" });
    assert.equal(ok.code, 0, ok.stderr);
  });
});
