/**
 * The Engine through its worker thread on the micro sd15 reference checkpoint: describe, a parity run against the
 * diffusers fixture (so the worker path equals the direct pipeline path), progress, previews, cancellation,
 * checkpoint errors and shutdown.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { after, before, describe, test } from "node:test";
import { expectClose, readRefFloat32 } from "../../test/helpers/tensors.ts";
import { EaselError } from "../core/errors.ts";
import { writeTinyCheckpoint } from "../models/testing/tiny-checkpoint.ts";
import { Engine } from "./engine.ts";

const MODEL = resolve("test/fixtures/models/sd15");
const PNDM_CASE = "test/fixtures/generate/sd15/txt2img_pndm_64x64";

function isCode(code: string, check?: (e: EaselError) => void) {
  return (e: unknown) => {
    assert.ok(e instanceof EaselError, `expected an EaselError, got ${String(e)}`);
    assert.equal(e.code, code, `code of "${e.message}"`);
    check?.(e);
    return true;
  };
}

describe("Engine (worker thread) on the micro sd15 checkpoint", () => {
  let engine: Engine;
  let tmp: string;
  before(() => {
    tmp = mkdtempSync(join(tmpdir(), "easel-engine-"));
    engine = new Engine({ executionProvider: "cpu", intraOpThreads: 1, cacheDir: join(tmp, "cache") });
  });
  after(async () => {
    await engine.close();
    rmSync(tmp, { recursive: true, force: true });
  });

  test("describe reads the family and the defaults from the configs", async () => {
    const d = await engine.describe(MODEL);
    assert.equal(d.family, "sd15");
    // unet sample_size 8 -> 64 px; PNDM (leading spacing) is not a turbo schedule: 50 steps, guidance 7.5.
    assert.deepEqual(d.defaults, { width: 64, height: 64, steps: 50, guidanceScale: 7.5 });
    assert.equal(d.limits.sizeMultiple, 8);
    assert.ok(d.aliases.includes("sd15"), `aliases ${d.aliases}`);
  });

  test("a run with the fixture's init latents reproduces diffusers' final latents; one step event per denoiser call", async () => {
    const c = JSON.parse(readFileSync(join(PNDM_CASE, "case.json"), "utf8"));
    const inp = c.inputs;
    const steps: [number, number][] = [];
    const out = await engine.run(
      MODEL,
      {
        prompt: inp.prompt,
        negativePrompt: inp.negative_prompt,
        n: 1,
        width: inp.width,
        height: inp.height,
        steps: inp.num_inference_steps,
        guidanceScale: inp.guidance_scale,
        seed: 1,
        initLatents: readRefFloat32(join(PNDM_CASE, "init_latents")).data,
      },
      { onStep: (s, total) => steps.push([s, total]) },
    );
    const ref = readRefFloat32(join(PNDM_CASE, "final_latents"));
    assert.deepEqual(out.latentShape, ref.shape);
    assert.ok(out.latents instanceof Float32Array);
    expectClose(out.latents, ref.data, { atol: 1e-3, rtol: 0, what: "final_latents" });
    assert.equal(out.seed, 1);
    assert.equal(out.images.length, 1);
    assert.equal(out.images[0].width, 64);
    assert.equal(out.images[0].rgb.length, 64 * 64 * 3);
    assert.equal(steps.length, c.denoiser_calls);
    assert.deepEqual(
      steps.map(([s]) => s),
      Array.from({ length: c.denoiser_calls }, (_, i) => i + 1),
    );
    assert.ok(steps.every(([, total]) => total === c.denoiser_calls));
  });

  test("previews: 2 sends two preview frames at the output size", async () => {
    const frames: { index: number; step: number; w: number; h: number; len: number }[] = [];
    const out = await engine.run(
      MODEL,
      { prompt: "a red cube", n: 1, width: 64, height: 64, steps: 6, scheduler: "euler", seed: 5, previews: 2 },
      { onPreview: (index, step, imgs) => frames.push({ index, step, w: imgs[0].width, h: imgs[0].height, len: imgs[0].rgb.length }) },
    );
    assert.equal(out.images.length, 1);
    assert.deepEqual(
      frames.map((f) => f.index),
      [0, 1],
    );
    for (const f of frames) {
      assert.equal(f.w, 64);
      assert.equal(f.h, 64);
      assert.equal(f.len, 64 * 64 * 3);
      assert.ok(f.step >= 1 && f.step <= 6, `preview step ${f.step}`);
    }
    assert.ok(frames[0].step < frames[1].step);
  });

  test("aborting after the 2nd step rejects with E_CANCELLED, and the engine serves the next run", async () => {
    const ac = new AbortController();
    let seen = 0;
    let total = 0;
    // Many steps so the worker is still sampling when the abort flag lands.
    await assert.rejects(
      engine.run(MODEL, { prompt: "x", n: 1, width: 64, height: 64, steps: 500, scheduler: "euler", seed: 3 }, {
        signal: ac.signal,
        onStep: (s, t) => {
          seen = s;
          total = t;
          if (s === 2) ac.abort();
        },
      }),
      isCode("E_CANCELLED"),
    );
    assert.ok(seen >= 2 && seen < total, `stopped at step ${seen} of ${total}`);

    await assert.rejects(engine.run(MODEL, { prompt: "x", n: 1, seed: 3, steps: 2 }, { signal: ac.signal }), isCode("E_CANCELLED"));

    const out = await engine.run(MODEL, { prompt: "x", n: 1, width: 64, height: 64, steps: 3, seed: 3 });
    assert.equal(out.images.length, 1);
    assert.ok(out.latents.every(Number.isFinite));
  });

  test("bad parameters come back as E_INPUT_INVALID naming the field", async () => {
    await assert.rejects(
      engine.run(MODEL, { prompt: "x", n: 1, width: 60, height: 64, steps: 2, seed: 1 }),
      isCode("E_INPUT_INVALID", (e) => {
        assert.equal(e.param, "width");
        assert.match(e.message, /multiple of 8/);
      }),
    );
  });

  test("a missing directory and a directory without model_index.json are E_CHECKPOINT_INVALID naming the file", async () => {
    const missing = join(tmp, "no-such-model");
    const empty = join(tmp, "empty-model");
    mkdirSync(empty);
    for (const call of [() => engine.describe(missing), () => engine.run(missing, { prompt: "x", n: 1, seed: 1 })]) {
      await assert.rejects(call(), isCode("E_CHECKPOINT_INVALID", (e) => assert.ok(e.message.includes(missing), e.message)));
    }
    for (const call of [() => engine.describe(empty), () => engine.run(empty, { prompt: "x", n: 1, seed: 1 })]) {
      await assert.rejects(
        call(),
        isCode("E_CHECKPOINT_INVALID", (e) => assert.ok(e.message.includes(join(empty, "model_index.json")), e.message)),
      );
    }
    // The worker survives bad checkpoints.
    assert.equal((await engine.describe(MODEL)).family, "sd15");
  });

  test("runs submitted together are served one after the other, each as if alone", async () => {
    const p = (seed: number) => ({ prompt: "a tree", n: 1, width: 64, height: 64, steps: 3, scheduler: "euler_a", seed });
    const [a, b] = await Promise.all([engine.run(MODEL, p(21)), engine.run(MODEL, p(22))]);
    const a1 = await engine.run(MODEL, p(21));
    const b1 = await engine.run(MODEL, p(22));
    assert.deepEqual(a.latents, a1.latents);
    assert.deepEqual(b.latents, b1.latents);
    assert.notDeepEqual(a.latents, b.latents);
  });

  test("describe detects the SDXL and Playground families of tiny checkpoints", async () => {
    for (const family of ["sdxl", "playground"] as const) {
      const dir = join(tmp, `tiny-${family}`);
      writeTinyCheckpoint(dir, { family, seed: 1 });
      const d = await engine.describe(dir);
      assert.equal(d.family, family);
      const unet = JSON.parse(readFileSync(join(dir, "unet", "config.json"), "utf8"));
      assert.equal(d.defaults.width, unet.sample_size * 8);
      assert.equal(d.limits.sizeMultiple, 8);
      assert.equal(d.kind, family === "playground" ? "edm" : "vp");
      assert.ok(d.aliases.length > 0);
    }
  });

  test("release() drops loaded pipelines and the next run loads again", async () => {
    await engine.release(MODEL);
    await engine.release();
    const out = await engine.run(MODEL, { prompt: "y", n: 2, width: 64, height: 64, steps: 2, seed: 9 });
    assert.equal(out.images.length, 2);
    assert.deepEqual(out.latentShape, [2, 4, 8, 8]);
  });
});

test("close() terminates the worker so the process can exit", () => {
  const cacheDir = mkdtempSync(join(tmpdir(), "easel-engine-close-"));
  try {
    // A child process that uses the engine, then closes it; without close() the worker would keep it alive.
    const script = `
      import { Engine } from ${JSON.stringify(resolve("src/engine/engine.ts"))};
      const engine = new Engine({ executionProvider: "cpu", intraOpThreads: 1, cacheDir: ${JSON.stringify(cacheDir)} });
      const d = await engine.describe(${JSON.stringify(MODEL)});
      const out = await engine.run(${JSON.stringify(MODEL)}, { prompt: "x", n: 1, steps: 1, seed: 1 });
      await engine.close();
      console.log(JSON.stringify({ family: d.family, images: out.images.length }));
    `;
    const file = join(cacheDir, "close.mjs");
    writeFileSync(file, script);
    const r = spawnSync(process.execPath, ["--import", "tsx", file], {
      encoding: "utf8",
      timeout: 120_000,
    });
    assert.equal(r.error, undefined, `child did not exit: ${r.error?.message}\n${r.stderr}`);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout.trim()), { family: "sd15", images: 1 });
  } finally {
    rmSync(cacheDir, { recursive: true, force: true });
  }
});
