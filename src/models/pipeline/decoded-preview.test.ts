/**
 * Previews of a checkpoint whose latent space the family's preview factors do not describe (easel-shapes has 8
 * latent channels; the SD1.5 factors are for 4): frames are decoded by the model's own VAE, at the image's size,
 * and asking for them does not change the result.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { after, test } from "node:test";
import { loadCheckpoint } from "../../checkpoint/checkpoint.ts";
import { sd15Family } from "../sd15/index.ts";

const work = mkdtempSync(join(tmpdir(), "easel-decoded-preview-"));
after(() => rmSync(work, { recursive: true, force: true }));

test("previews of a model whose latent channels the family's preview factors do not fit (easel-shapes) are VAE decodes of the x0 estimate, in order, and leave the result unchanged", async () => {
  const ckpt = loadCheckpoint(resolve("models/easel-shapes"));
  assert.ok(ckpt.components.unet?.config.out_channels !== 4, "SD1.5's preview factors are for 4 latent channels");
  const pipe = await sd15Family.load(ckpt, { executionProvider: "cpu", intraOpThreads: 1, cacheDir: join(work, "cache") });
  try {
    const p = { prompt: "a red circle on a blue background", n: 1, steps: 10, seed: 1 };
    const plain = await pipe.run(p);
    const frames: { index: number; step: number; width: number; rgb: Uint8Array }[] = [];
    const steps: number[] = [];
    const withPreviews = await pipe.run(
      { ...p, previews: 2 },
      { onStep: (s) => steps.push(s), onPreview: (index, step, images) => frames.push({ index, step, width: images[0].width, rgb: images[0].rgb }) },
    );
    assert.deepEqual(withPreviews.latents, plain.latents);
    assert.deepEqual(
      frames.map((f) => [f.index, f.width]),
      [
        [0, 128],
        [1, 128],
      ],
    );
    assert.ok(frames[0].step < frames[1].step && frames[1].step < 10);
    assert.deepEqual(steps, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    // The later frame is close to the final picture: a blue background with a red disc in the middle.
    const at = (rgb: Uint8Array, x: number, y: number) => [...rgb.subarray((y * 128 + x) * 3, (y * 128 + x) * 3 + 3)];
    const [r0, , b0] = at(frames[1].rgb, 4, 4);
    const [r1, , b1] = at(frames[1].rgb, 64, 64);
    assert.ok(b0 > 150 && r0 < 100, `corner ${at(frames[1].rgb, 4, 4)}`);
    assert.ok(r1 > 150 && b1 < 100, `centre ${at(frames[1].rgb, 64, 64)}`);
  } finally {
    await pipe.release();
  }
});
