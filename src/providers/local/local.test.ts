/**
 * The local provider over a real Engine (worker thread): the micro sd15 reference checkpoint and a seeded tiny
 * Playground v2.5 checkpoint. Seeds, sizes, img2img from encoded bytes, progress and preview events, cancellation.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { after, before, describe, test } from "node:test";
import sharp from "sharp";
import { EaselError } from "../../core/errors.ts";
import type { GenerationRequest } from "../../core/types.ts";
import { Engine } from "../../engine/engine.ts";
import { writeTinyCheckpoint } from "../../models/testing/tiny-checkpoint.ts";
import { isRawImage, type ProviderEvent, type ProviderResult, type RawImage } from "../spec.ts";
import { createLocalProvider } from "./index.ts";

const SD15 = resolve("test/fixtures/models/sd15");

function raws(r: ProviderResult): RawImage[] {
  return r.images.map((img) => {
    assert.ok(isRawImage(img), "the local provider returns raw RGB images");
    return img;
  });
}

async function pngBytes(width: number, height: number): Promise<Uint8Array> {
  const px = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 3;
      px[i] = (x * 255) / width;
      px[i + 1] = (y * 255) / height;
      px[i + 2] = 128;
    }
  }
  return new Uint8Array(await sharp(px, { raw: { width, height, channels: 3 } }).png().toBuffer());
}

describe("local provider on a real engine", () => {
  let engine: Engine;
  let tmp: string;
  let playgroundDir: string;
  const dirs: Record<string, string> = {};
  const asked: string[] = [];
  const req = (r: Partial<GenerationRequest> = {}): GenerationRequest => ({
    model: "sd15",
    prompt: "a lighthouse at dusk",
    n: 1,
    width: 64,
    height: 64,
    steps: 3,
    output: { format: "png" },
    ...r,
  });
  const provider = (randomSeed?: () => number) =>
    createLocalProvider({
      engine,
      modelDir: (m) => {
        asked.push(m);
        const d = dirs[m];
        if (!d) throw new EaselError("E_MODEL_NOT_FOUND", `model "${m}" is not installed`, { param: "model" });
        return d;
      },
      randomSeed,
    });

  before(() => {
    tmp = mkdtempSync(join(tmpdir(), "easel-local-provider-"));
    engine = new Engine({ executionProvider: "cpu", intraOpThreads: 1, cacheDir: join(tmp, "cache") });
    playgroundDir = join(tmp, "tiny-playground");
    writeTinyCheckpoint(playgroundDir, { family: "playground", seed: 11 });
    dirs.sd15 = SD15;
    dirs["playground-v2.5"] = playgroundDir;
  });
  after(async () => {
    await engine.close();
    rmSync(tmp, { recursive: true, force: true });
  });

  test("a request with a seed gives RawImages of the requested size carrying that seed, reproducibly", async () => {
    const p = provider(() => assert.fail("no random seed is drawn when the request has one"));
    const a = await p.generate(req({ seed: 4242, n: 2, width: 96, height: 64 }), {});
    assert.equal(a.seed, 4242);
    const imgs = raws(a);
    assert.equal(imgs.length, 2);
    for (const img of imgs) {
      assert.equal(img.width, 96);
      assert.equal(img.height, 64);
      assert.equal(img.rgb.length, 96 * 64 * 3);
      assert.equal(img.seed, 4242);
    }
    assert.notDeepEqual(imgs[0].rgb, imgs[1].rgb);
    assert.deepEqual(asked.at(-1), "sd15");
    const b = raws(await p.generate(req({ seed: 4242, n: 2, width: 96, height: 64 }), {}));
    assert.deepEqual(b[0].rgb, imgs[0].rgb);
    assert.deepEqual(b[1].rgb, imgs[1].rgb);
  });

  test("without a seed a random one is drawn, used and reported", async () => {
    const drawn = await provider(() => 987654).generate(req(), {});
    assert.equal(drawn.seed, 987654);
    assert.equal(raws(drawn)[0].seed, 987654);
    const explicit = await provider().generate(req({ seed: 987654 }), {});
    assert.deepEqual(raws(drawn)[0].rgb, raws(explicit)[0].rgb, "the reported seed reproduces the image");

    const r1 = await provider().generate(req(), {});
    const r2 = await provider().generate(req(), {});
    for (const r of [r1, r2]) assert.ok(Number.isSafeInteger(r.seed) && r.seed >= 1 && r.seed < 2 ** 32, `seed ${r.seed}`);
    assert.notEqual(r1.seed, r2.seed);
  });

  test("img2img from PNG bytes, resized to the requested size", async () => {
    const p = provider();
    const same = raws(await p.generate(req({ seed: 3, steps: 4, initImage: await pngBytes(64, 64), strength: 0.5 }), {}));
    assert.equal(same[0].width, 64);
    assert.equal(same[0].height, 64);
    const resized = raws(await p.generate(req({ seed: 3, steps: 4, width: 64, height: 96, initImage: await pngBytes(50, 70), strength: 0.5 }), {}));
    assert.equal(resized[0].width, 64);
    assert.equal(resized[0].height, 96);
    // The init image matters: the same seed from a different picture gives a different result.
    const other = raws(await p.generate(req({ seed: 3, steps: 4, initImage: await pngBytes(32, 32), strength: 0.5 }), {}));
    assert.notDeepEqual(other[0].rgb, same[0].rgb);
  });

  test("a corrupt init image is E_INPUT_INVALID on init_image", async () => {
    const junk = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 1, 2, 3, 4, 5, 6, 7, 8]);
    await assert.rejects(
      provider().generate(req({ seed: 1, initImage: junk, strength: 0.5 }), {}),
      (e: unknown) => e instanceof EaselError && e.code === "E_INPUT_INVALID" && e.param === "init_image",
    );
  });

  test("progress events count the denoiser calls; partial images arrive as preview events", async () => {
    const events: ProviderEvent[] = [];
    const r = await provider().generate(req({ seed: 8, steps: 5, scheduler: "euler", partialImages: 2 }), { onEvent: (e) => events.push(e) });
    const progress = events.filter((e) => e.type === "progress");
    assert.deepEqual(
      progress.map((e) => e.step),
      [1, 2, 3, 4, 5],
    );
    assert.ok(progress.every((e) => e.totalSteps === 5));
    const previews = events.filter((e) => e.type === "preview");
    assert.deepEqual(
      previews.map((e) => e.index),
      [0, 1],
    );
    for (const e of previews) {
      assert.equal(e.image.width, 64);
      assert.equal(e.image.height, 64);
      assert.equal(e.image.seed, r.seed);
    }
  });

  test("an aborted signal cancels the run", async () => {
    const ac = new AbortController();
    await assert.rejects(
      provider().generate(req({ seed: 2, steps: 500, scheduler: "euler" }), {
        signal: ac.signal,
        onEvent: (e) => {
          if (e.type === "progress" && e.step === 2) ac.abort();
        },
      }),
      (e: unknown) => e instanceof EaselError && e.code === "E_CANCELLED",
    );
  });

  test("img2img without a strength uses the family's default (0.3 for Playground v2.5, 0.8 for SD1.5)", async () => {
    const calls = async (model: string, strength: number | undefined, scheduler?: string) => {
      let total = 0;
      await provider().generate(req({ model, seed: 5, steps: 10, scheduler, initImage: await pngBytes(64, 64), strength }), {
        onEvent: (e) => {
          if (e.type === "progress") total = e.totalSteps;
        },
      });
      return total;
    };
    // First-order schedules without repeated timesteps, so denoiser calls = int(steps * strength).
    assert.equal(await calls("playground-v2.5", 0.3), 3);
    assert.equal(await calls("playground-v2.5", undefined), 3);
    assert.equal(await calls("sd15", undefined, "euler"), 8);
    assert.equal(await calls("sd15", 0.3, "euler"), 3);
  });

  test("an unknown model is the registry's error, before any work", async () => {
    await assert.rejects(
      provider().generate(req({ model: "nope", seed: 1 }), {}),
      (e: unknown) => e instanceof EaselError && e.code === "E_MODEL_NOT_FOUND",
    );
  });
});
