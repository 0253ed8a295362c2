import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { loadCheckpoint } from "../../checkpoint/checkpoint.ts";
import { loadSd15 } from "../sd15/pipeline.ts";

const MODEL = "test/fixtures/models/sd15";
const cacheDir = mkdtempSync(join(tmpdir(), "easel-unet-int8-"));
after(() => rmSync(cacheDir, { recursive: true, force: true }));

test('precision "int8": the UNet runs quantised, results stay close to fp32, differ from it, and every result says so', async () => {
  const ckpt = loadCheckpoint(MODEL);
  const rt = { executionProvider: "cpu" as const, intraOpThreads: 1, cacheDir };
  const fp32 = await loadSd15(ckpt, rt);
  const int8 = await loadSd15(ckpt, { ...rt, precision: "int8" });
  try {
    const p = { prompt: "a red cube", negativePrompt: "blurry", n: 1, width: 64, height: 64, steps: 4, guidanceScale: 7.5, seed: 7 };
    const ref = await fp32.run(p);
    const q = await int8.run(p);
    assert.equal(ref.warnings.find((w) => w.code === "W_QUANTIZED"), undefined);
    assert.match(q.warnings.find((w) => w.code === "W_QUANTIZED")?.message ?? "", /UNet ran with int8/);
    let num = 0;
    let den = 0;
    for (let i = 0; i < ref.latents.length; i++) {
      num += (q.latents[i] - ref.latents[i]) ** 2;
      den += ref.latents[i] ** 2;
    }
    const rel = Math.sqrt(num / den);
    assert.ok(rel > 0, "int8 changes the latents");
    assert.ok(rel < 0.05, `final latents' relative error ${rel}`);
    // The int8 graph is its own cache entry, with its weights in an .int8.bin file beside it.
    const entries = readdirSync(cacheDir);
    assert.equal(entries.filter((e) => e.startsWith("unet-") && e.endsWith(".int8.bin")).length, 1);
  } finally {
    await Promise.all([fp32.release(), int8.release()]);
  }
});
