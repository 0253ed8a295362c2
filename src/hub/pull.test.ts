/**
 * `pullModel` against test/helpers/hub-server.ts, a local server speaking the hub's file API. The endpoints and
 * headers followed: GET /api/models/{repo}/revision/{rev} (`sha`), GET /api/models/{repo}/tree/{sha}?recursive=true
 * (paged by `Link: <...>; rel="next"`; `oid`, `size`, `lfs.oid` = sha256, `lfs.size`), GET /{repo}/resolve/{sha}/{path}
 * (302 to a second origin for LFS files with `X-Linked-Etag`, `X-Linked-Size`, `X-Repo-Commit`; `Range: bytes=N-`
 * answered 206 with `Content-Range`), 401/403 with `X-Error-Code: GatedRepo`, 401 `RepoNotFound`, 404
 * `RevisionNotFound`. The repository served is the micro sd15 checkpoint of test/fixtures, plus files a pull must skip.
 */
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { after, before, describe, test } from "node:test";
import { type FakeHub, filesUnder, hashOf, startFakeHub } from "../../test/helpers/hub-server.ts";
import { EaselError } from "../core/errors.ts";
import { Engine } from "../engine/engine.ts";
import { describeSource, listInstalledModels, removeInstalledModel } from "./installed.ts";
import { type PullProgress, pullModel, SOURCE_FILE } from "./pull.ts";

const FIXTURE = resolve("test/fixtures/models/sd15");
const COMMIT = "0123456789abcdef0123456789abcdef01234567";
const UNET = "unet/diffusion_pytorch_model.safetensors";

/** What a real pipeline repository also holds and a pull must leave: pickles, ONNX, Flax, a root single file, an unnamed folder. */
const EXTRA: Record<string, string> = {
  "README.md": "# micro sd15\n",
  "v1-5-pruned-emaonly.safetensors": "single file",
  "unet/diffusion_pytorch_model.bin": "pickle",
  "unet/diffusion_pytorch_model.non_ema.safetensors": "non ema",
  "text_encoder/flax_model.msgpack": "flax",
  "vae/model.onnx": "onnx",
  "vae_1_0/diffusion_pytorch_model.safetensors": "an older vae",
  "safety_checker/config.json": "{}",
};

const isCode = (code: string, pattern?: RegExp) => (e: unknown) => {
  assert.ok(e instanceof EaselError, `expected an EaselError, got ${String(e)}`);
  assert.equal(e.code, code, e.message);
  if (pattern) assert.match(e.message, pattern);
  return true;
};

describe("easel pull from a hub-protocol server", () => {
  let hub: FakeHub;
  let tmp: string;
  let n = 0;
  const fixtureFiles = filesUnder(FIXTURE);
  const modelsDir = () => join(tmp, `models-${++n}`);

  before(async () => {
    tmp = mkdtempSync(join(tmpdir(), "easel-pull-"));
    const files = new Map(fixtureFiles);
    for (const [p, v] of Object.entries(EXTRA)) files.set(p, Buffer.from(v));
    hub = await startFakeHub({
      "tiny/micro-sd15": { files, commit: COMMIT },
      "tiny/gated-sd15": { files: new Map(fixtureFiles), commit: COMMIT, gatedTokens: ["hf_granted"] },
      "tiny/not-a-pipeline": { files: new Map([["model.safetensors", Buffer.from("x")]]), commit: COMMIT },
    });
  });
  after(async () => {
    await hub.close();
    rmSync(tmp, { recursive: true, force: true });
  });

  test("downloads only the plain-precision files the engine needs, verified, and records the source", async () => {
    const dir = modelsDir();
    const seen: PullProgress[] = [];
    hub.log.length = 0;
    const r = await pullModel({ ref: "tiny/micro-sd15", modelsDir: dir, endpoint: hub.endpoint, token: "hf_abc", onProgress: (p) => seen.push(structuredClone(p)) });
    assert.equal(r.name, "micro-sd15");
    assert.equal(r.commit, COMMIT);
    const got = filesUnder(join(dir, "micro-sd15"));
    const expected = [...fixtureFiles.keys()].filter((p) => !/\.(fp16|bf16)\.safetensors$/.test(p)).sort();
    assert.deepEqual([...got.keys()].filter((p) => p !== SOURCE_FILE).sort(), expected);
    for (const p of expected) assert.ok(got.get(p)!.equals(fixtureFiles.get(p)!), p);
    assert.ok(!existsSync(join(dir, ".pull", "micro-sd15")), "staging folder is gone");

    const source = JSON.parse(got.get(SOURCE_FILE)!.toString());
    assert.equal(source.repo, "tiny/micro-sd15");
    assert.equal(source.commit, COMMIT);
    assert.equal(source.files.find((f: { path: string }) => f.path === UNET).sha256, hashOf(fixtureFiles.get(UNET)!));

    // The tree came in pages (Link followed); LFS bytes came from the CDN origin, which never saw the token.
    assert.ok(hub.log.filter((l) => l.url.includes("/tree/")).length > 1, "tree pages");
    const cdn = hub.log.filter((l) => l.server === "cdn");
    assert.equal(cdn.length, expected.filter((p) => p.endsWith(".safetensors")).length);
    assert.ok(cdn.every((l) => l.authorization === undefined), "no Authorization sent to the CDN");
    assert.ok(hub.log.filter((l) => l.server === "hub").every((l) => l.authorization === "Bearer hf_abc"));

    // Progress: per file and in total, ending with every byte done.
    const last = seen.at(-1)!;
    assert.equal(last.phase, "done");
    assert.equal(last.doneBytes, last.totalBytes);
    assert.equal(last.totalBytes, r.bytes);
    assert.ok(last.files.every((f) => f.done === f.size));
    assert.ok(seen.some((p) => p.phase === "downloading" && p.doneBytes > 0 && p.doneBytes < p.totalBytes));

    const listed = listInstalledModels(dir);
    assert.deepEqual(
      listed.map((m) => m.name),
      ["micro-sd15"],
    );
    assert.equal(listed[0].bytes, [...got.values()].reduce((a, b) => a + b.length, 0));
    assert.match(describeSource(listed[0].source), /^hub tiny\/micro-sd15@0123456789ab \(main\)$/);

    await assert.rejects(pullModel({ ref: "tiny/micro-sd15", modelsDir: dir, endpoint: hub.endpoint }), isCode("E_INPUT_INVALID", /already exists/));
    const removed = removeInstalledModel(dir, "micro-sd15");
    assert.equal(removed.bytes, listed[0].bytes);
    assert.deepEqual(listInstalledModels(dir), []);
    assert.throws(() => removeInstalledModel(dir, "micro-sd15"), isCode("E_NOT_FOUND"));
    assert.throws(() => removeInstalledModel(dir, "../x"), isCode("E_INPUT_INVALID"));
  });

  test("--variant fp16 takes the fp16 weights and no second precision; @revision by sha; --name", async () => {
    const dir = modelsDir();
    await pullModel({ ref: `tiny/micro-sd15@${COMMIT}`, variant: "fp16", name: "sd15-half", modelsDir: dir, endpoint: hub.endpoint });
    const got = [...filesUnder(join(dir, "sd15-half")).keys()].filter((p) => p.endsWith(".safetensors")).sort();
    assert.deepEqual(got, ["text_encoder/model.fp16.safetensors", "unet/diffusion_pytorch_model.fp16.safetensors", "vae/diffusion_pytorch_model.fp16.safetensors"]);
  });

  test("a dropped connection is resumed with a Range request in the same run", async () => {
    const dir = modelsDir();
    hub.log.length = 0;
    hub.dropAfter.set(hashOf(fixtureFiles.get(UNET)!), 100_000);
    await pullModel({ ref: "tiny/micro-sd15", modelsDir: dir, endpoint: hub.endpoint });
    assert.ok(readFileSync(join(dir, "micro-sd15", UNET)).equals(fixtureFiles.get(UNET)!));
    assert.ok(hub.log.some((l) => l.server === "cdn" && l.range === "bytes=100000-"), JSON.stringify(hub.log.filter((l) => l.range)));
  });

  test("an interrupted pull registers nothing, and the next pull resumes the partial file", async () => {
    const dir = modelsDir();
    hub.dropAfter.set(hashOf(fixtureFiles.get(UNET)!), 100_000);
    await assert.rejects(pullModel({ ref: "tiny/micro-sd15", modelsDir: dir, endpoint: hub.endpoint, attempts: 1 }), isCode("E_UPSTREAM_FAILED", /pull again to resume/));
    assert.ok(!existsSync(join(dir, "micro-sd15")));
    assert.deepEqual(listInstalledModels(dir), []);
    assert.equal(statSync(join(dir, ".pull", "micro-sd15", `${UNET}.incomplete`)).size, 100_000);
    hub.log.length = 0;
    await pullModel({ ref: "tiny/micro-sd15", modelsDir: dir, endpoint: hub.endpoint });
    assert.ok(readFileSync(join(dir, "micro-sd15", UNET)).equals(fixtureFiles.get(UNET)!));
    assert.ok(hub.log.some((l) => l.range === "bytes=100000-"));
    // Files finished in the first run were not fetched again.
    assert.ok(!hub.log.some((l) => l.url.includes("model_index.json")));
  });

  test("bytes that do not match the hub's sha256 are refused and removed", async () => {
    const dir = modelsDir();
    const unetHash = hashOf(fixtureFiles.get(UNET)!);
    const corrupting: typeof fetch = async (input, init) => {
      const res = await fetch(input, init);
      if (!res.url.endsWith(unetHash)) return res;
      const bytes = Buffer.from(await res.arrayBuffer());
      bytes[1000] ^= 0xff;
      return new Response(bytes, { status: res.status, headers: res.headers });
    };
    await assert.rejects(pullModel({ ref: "tiny/micro-sd15", modelsDir: dir, endpoint: hub.endpoint, fetch: corrupting }), isCode("E_UPSTREAM_FAILED", /sha256 .* does not match/));
    assert.ok(!existsSync(join(dir, "micro-sd15")));
    assert.ok(!existsSync(join(dir, ".pull", "micro-sd15", `${UNET}.incomplete`)));
  });

  test("a gated repository: without a token, with a token lacking access, then with access", async () => {
    const dir = modelsDir();
    await assert.rejects(
      pullModel({ ref: "tiny/gated-sd15", modelsDir: dir, endpoint: hub.endpoint }),
      isCode("E_FORBIDDEN", new RegExp(`gated or private; open ${hub.endpoint}/tiny/gated-sd15, log in and accept the licence, then set HF_TOKEN`)),
    );
    await assert.rejects(pullModel({ ref: "tiny/gated-sd15", modelsDir: dir, endpoint: hub.endpoint, token: "hf_other" }), isCode("E_FORBIDDEN", /has no access yet/));
    const r = await pullModel({ ref: "tiny/gated-sd15", modelsDir: dir, endpoint: hub.endpoint, token: "hf_granted" });
    assert.equal(r.name, "gated-sd15");
  });

  test("unknown repository or revision, bad references, repositories that are not pipelines", async () => {
    const dir = modelsDir();
    await assert.rejects(pullModel({ ref: "tiny/missing", modelsDir: dir, endpoint: hub.endpoint }), isCode("E_NOT_FOUND"));
    await assert.rejects(pullModel({ ref: "tiny/micro-sd15@v9", modelsDir: dir, endpoint: hub.endpoint }), isCode("E_NOT_FOUND", /revision "v9"/));
    await assert.rejects(pullModel({ ref: "not a repo", modelsDir: dir, endpoint: hub.endpoint }), isCode("E_INPUT_INVALID", /owner\/name/));
    await assert.rejects(pullModel({ ref: "tiny/micro-sd15", name: "../up", modelsDir: dir, endpoint: hub.endpoint }), isCode("E_INPUT_INVALID"));
    await assert.rejects(pullModel({ ref: "tiny/not-a-pipeline", modelsDir: dir, endpoint: hub.endpoint }), isCode("E_NOT_SUPPORTED", /model\.safetensors/));
  });

  test("the pulled model generates exactly what the original folder generates", async () => {
    const dir = modelsDir();
    await pullModel({ ref: "tiny/micro-sd15", modelsDir: dir, endpoint: hub.endpoint });
    const engine = new Engine({ executionProvider: "cpu", intraOpThreads: 1, cacheDir: join(tmp, "cache") });
    try {
      const params = { prompt: "a red cube", n: 1, width: 64, height: 64, steps: 3, scheduler: "euler", seed: 11 };
      const pulled = await engine.run(join(dir, "micro-sd15"), params);
      const original = await engine.run(FIXTURE, params);
      assert.equal(pulled.images.length, 1);
      assert.ok(Buffer.from(pulled.images[0].rgb).equals(Buffer.from(original.images[0].rgb)));
    } finally {
      await engine.close();
    }
  });
});
