/**
 * The image safety checker against diffusers' StableDiffusionSafetyChecker on a tiny random checker (seeded,
 * src/models/testing/tiny-safety-checker.ts). The reference is written here from the formulas: transformers'
 * CLIPVisionModel forward in float64 loops (patch conv, class token, positions, pre-LN, pre-norm encoder layers with
 * quick_gelu, post-LN on the class token), visual_projection, cosine_distance (L2 rows, eps 1e-12), then diffusers'
 * scores (cos - threshold + adjustment, rounded to 3 decimals, adjustment 0.01 after a special-care hit, flagged when
 * a concept score is > 0). Tolerances: 1e-4 on the similarities (fp32 graph vs float64 loops).
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { expectClose } from "../../../test/helpers/tensors.ts";
import { openComponentWeights, readTensorData } from "../../graph/safetensors.ts";
import { mulberry32 } from "../testing/random-safetensors.ts";
import { addTinySafetyChecker, setSafetyThresholds, TINY_PREPROCESSOR, TINY_SAFETY_CONFIG, writeTinySafetyCheckerFolder } from "../testing/tiny-safety-checker.ts";
import type { PipelineImage } from "../pipeline/family.ts";
import { safetyCheckerConfigFromJson } from "./safety-checker.graph.ts";
import { blackImage, CLIP_PROCESSING, clipPixelValues, clipProcessingFromJson, findSafetyChecker, loadSafetyChecker, scoreSafety } from "./safety-checker.ts";

const work = mkdtempSync(join(tmpdir(), "easel-safety-"));
after(() => rmSync(work, { recursive: true, force: true }));

test("diffusers' scoring: thresholds, the 0.01 adjustment after a special-care hit, rounding to 3 decimals, > 0 strictly", () => {
  // Special 0: 0.30 - 0.25 = 0.05 > 0, so 0.01 is added to every later score of this image.
  const hit = scoreSafety([0.3, 0.1, 0.05], [0.195, 0.5], [0.25, 0.2, 0.1], [0.2, 0.6]);
  assert.deepEqual(hit.specialScores, [0.05, -0.09, -0.04]);
  assert.deepEqual(hit.conceptScores, [0.005, -0.09]);
  assert.deepEqual([hit.flagged, hit.badConcepts], [true, [0]]);
  // The same concept similarities without the special-care hit: -0.005, not flagged.
  const miss = scoreSafety([0.2, 0.1, 0.05], [0.195, 0.5], [0.25, 0.2, 0.1], [0.2, 0.6]);
  assert.deepEqual(miss.conceptScores, [-0.005, -0.1]);
  assert.equal(miss.flagged, false);
  // A score equal to the threshold, and one that rounds to 0, are not flagged; one that rounds to 0.001 is.
  assert.equal(scoreSafety([0, 0, 0], [0.4], [1, 1, 1], [0.4]).flagged, false);
  assert.equal(scoreSafety([0, 0, 0], [0.4004], [1, 1, 1], [0.4]).flagged, false);
  assert.equal(scoreSafety([0, 0, 0], [0.4006], [1, 1, 1], [0.4]).flagged, true);
  // A similarity below the threshold is never flagged, whatever its size (the sign of cos - threshold matters).
  assert.equal(scoreSafety([0, 0, 0], [-0.9], [1, 1, 1], [0.4]).flagged, false);
});

test("CLIPImageProcessor: shorter side to shortest_edge, centre crop, rescale and normalise", async () => {
  assert.deepEqual(clipProcessingFromJson(TINY_PREPROCESSOR).cropHeight, 16);
  assert.deepEqual(clipProcessingFromJson({}), CLIP_PROCESSING);
  const img: PipelineImage = { width: 2, height: 2, rgb: Uint8Array.from([0, 0, 0, 255, 255, 255, 255, 0, 0, 0, 0, 255]) };
  const p = { ...CLIP_PROCESSING, shortestEdge: 2, cropHeight: 2, cropWidth: 2 };
  const v = await clipPixelValues(img, p);
  // Red plane: pixels (0,0)=0, (0,1)=255, (1,0)=255, (1,1)=0.
  expectClose(v.subarray(0, 4), Float32Array.from([0, 1, 1, 0].map((x) => (x - p.mean[0]) / p.std[0])), { atol: 1e-6 });
  // A 48x32 image: resized to 24x16, then 16x16 from columns 4-19.
  const wide: PipelineImage = { width: 48, height: 32, rgb: new Uint8Array(48 * 32 * 3).fill(128) };
  const out = await clipPixelValues(wide, clipProcessingFromJson(TINY_PREPROCESSOR));
  assert.equal(out.length, 3 * 16 * 16);
  expectClose(out.subarray(0, 1), Float32Array.from([(128 / 255 - p.mean[0]) / p.std[0]]), { atol: 1e-5 });
});

/** transformers CLIPVisionModel + visual_projection + cosine_distance, in float64 loops. */
function referenceCos(dir: string, pixels: Float32Array): { special: number[]; concepts: number[] } {
  const cfg = safetyCheckerConfigFromJson(TINY_SAFETY_CONFIG);
  const entries = openComponentWeights(dir);
  const w = (name: string) => {
    const e = entries.get(name);
    assert.ok(e, `weight ${name}`);
    return readTensorData(e);
  };
  const D = cfg.hiddenSize;
  const P = cfg.patchSize;
  const S = cfg.imageSize;
  const grid = S / P;
  const pre = "vision_model.vision_model";
  const linear = (x: number[], name: string, inF: number, outF: number, bias = true) => {
    const W = w(`${name}.weight`);
    const b = bias ? w(`${name}.bias`) : undefined;
    return Array.from({ length: outF }, (_, o) => {
      let s = b ? b[o] : 0;
      for (let i = 0; i < inF; i++) s += W[o * inF + i] * x[i];
      return s;
    });
  };
  const ln = (x: number[], name: string) => {
    const mean = x.reduce((a, b) => a + b, 0) / x.length;
    const variance = x.reduce((a, b) => a + (b - mean) ** 2, 0) / x.length;
    const g = w(`${name}.weight`);
    const b = w(`${name}.bias`);
    return x.map((v, i) => ((v - mean) / Math.sqrt(variance + cfg.layerNormEps)) * g[i] + b[i]);
  };
  const conv = w(`${pre}.embeddings.patch_embedding.weight`);
  const cls = w(`${pre}.embeddings.class_embedding`);
  const pos = w(`${pre}.embeddings.position_embedding.weight`);
  let h: number[][] = [Array.from(cls)];
  for (let py = 0; py < grid; py++) {
    for (let px = 0; px < grid; px++) {
      h.push(
        Array.from({ length: D }, (_, d) => {
          let s = 0;
          for (let c = 0; c < 3; c++) for (let ky = 0; ky < P; ky++) for (let kx = 0; kx < P; kx++) s += conv[((d * 3 + c) * P + ky) * P + kx] * pixels[c * S * S + (py * P + ky) * S + px * P + kx];
          return s;
        }),
      );
    }
  }
  h = h.map((t, i) => t.map((v, d) => v + pos[i * D + d]));
  h = h.map((t) => ln(t, `${pre}.pre_layrnorm`));
  const H = cfg.numHeads;
  const hd = D / H;
  for (let l = 0; l < cfg.numLayers; l++) {
    const p = `${pre}.encoder.layers.${l}`;
    const n1 = h.map((t) => ln(t, `${p}.layer_norm1`));
    const q = n1.map((t) => linear(t, `${p}.self_attn.q_proj`, D, D));
    const k = n1.map((t) => linear(t, `${p}.self_attn.k_proj`, D, D));
    const v = n1.map((t) => linear(t, `${p}.self_attn.v_proj`, D, D));
    const attn = h.map((_, i) => {
      const out = new Array(D).fill(0);
      for (let head = 0; head < H; head++) {
        const scores = k.map((kj) => {
          let s = 0;
          for (let e = 0; e < hd; e++) s += q[i][head * hd + e] * kj[head * hd + e];
          return s / Math.sqrt(hd);
        });
        const m = Math.max(...scores);
        const ex = scores.map((s) => Math.exp(s - m));
        const z = ex.reduce((a, b) => a + b, 0);
        for (let j = 0; j < h.length; j++) for (let e = 0; e < hd; e++) out[head * hd + e] += (ex[j] / z) * v[j][head * hd + e];
      }
      return out;
    });
    h = h.map((t, i) => {
      const o = linear(attn[i], `${p}.self_attn.out_proj`, D, D);
      return t.map((x, d) => x + o[d]);
    });
    h = h.map((t) => {
      const f1 = linear(ln(t, `${p}.layer_norm2`), `${p}.mlp.fc1`, D, cfg.intermediateSize).map((x) => x / (1 + Math.exp(-1.702 * x)));
      const f2 = linear(f1, `${p}.mlp.fc2`, cfg.intermediateSize, D);
      return t.map((x, d) => x + f2[d]);
    });
  }
  const pooled = ln(h[0], `${pre}.post_layernorm`);
  const embeds = linear(pooled, "visual_projection", D, cfg.projectionDim, false);
  const unit = (x: ArrayLike<number>) => {
    const n = Math.max(Math.sqrt(Array.from(x).reduce((a, b) => a + b * b, 0)), 1e-12);
    return Array.from(x, (v) => v / n);
  };
  const e = unit(embeds);
  const rows = (name: string, n: number) => {
    const m = w(name);
    return Array.from({ length: n }, (_, r) => unit(m.subarray(r * cfg.projectionDim, (r + 1) * cfg.projectionDim)));
  };
  const dot = (a: number[], b: number[]) => a.reduce((s, x, i) => s + x * b[i], 0);
  return { special: rows("special_care_embeds", 3).map((r) => dot(e, r)), concepts: rows("concept_embeds", 17).map((r) => dot(e, r)) };
}

function randomImages(n: number, seed: number): PipelineImage[] {
  const rnd = mulberry32(seed);
  return Array.from({ length: n }, () => ({ width: 16, height: 16, rgb: Uint8Array.from({ length: 16 * 16 * 3 }, () => Math.floor(rnd() * 256)) }));
}

test("the checker's graph matches the CLIPVisionModel + cosine_distance reference; verdicts follow diffusers' scores", async () => {
  const dir = join(work, "checker");
  writeTinySafetyCheckerFolder(dir, { seed: 11 });
  // Thresholds where these images fall on both sides, at least 0.005 from any rounding step (the random ones, near 0,
  // flag every image: 17 concepts). Their highest concept similarities are 0.73-0.83, special-care ones 0.01-0.15.
  setSafetyThresholds(dir, 0.1, 0.78);
  const checker = await loadSafetyChecker({ dir, preprocessor: join(dir, "preprocessor_config.json") }, { cacheDir: join(work, "cache") });
  try {
    const images = randomImages(8, 5);
    const verdicts = await checker.check(images);
    const entries = openComponentWeights(dir);
    const sw = readTensorData(entries.get("special_care_embeds_weights")!);
    const cw = readTensorData(entries.get("concept_embeds_weights")!);
    let flagged = 0;
    let byAdjustment = 0;
    for (const [i, img] of images.entries()) {
      const ref = referenceCos(dir, await clipPixelValues(img, clipProcessingFromJson(TINY_PREPROCESSOR)));
      // Scores are similarities minus thresholds: compared at the similarity tolerance plus the rounding step.
      const want = scoreSafety(ref.special, ref.concepts, sw, cw);
      expectClose(Float32Array.from(verdicts[i].specialScores), Float32Array.from(want.specialScores), { atol: 1e-3 + 1e-4, what: `image ${i} special` });
      expectClose(Float32Array.from(verdicts[i].conceptScores), Float32Array.from(want.conceptScores), { atol: 1e-3 + 1e-4, what: `image ${i} concepts` });
      assert.equal(verdicts[i].flagged, want.flagged, `image ${i}`);
      if (want.flagged) flagged++;
      // Flagged only because a special-care hit added 0.01 to its concept scores.
      if (want.flagged && scoreSafety([0, 0, 0], ref.concepts, [1, 1, 1], cw).flagged === false) byAdjustment++;
    }
    // The seeded checker flags some of these images and passes others, so both outcomes are exercised.
    assert.ok(flagged > 0 && flagged < images.length, `flagged ${flagged} of ${images.length}`);
    assert.ok(byAdjustment > 0, "one image is flagged through the 0.01 adjustment");
  } finally {
    await checker.release();
  }
});

test("raising every threshold to 1 (no similarity exceeds it) passes every image; -1 flags every one", async () => {
  for (const [t, flagged] of [
    [1, false],
    [-1, true],
  ] as const) {
    const dir = join(work, `thresholds${t}`);
    writeTinySafetyCheckerFolder(dir, { seed: 11 });
    setSafetyThresholds(dir, t, t);
    const checker = await loadSafetyChecker({ dir }, { cacheDir: join(work, `cache${t}`) });
    try {
      const v = await checker.check(randomImages(3, 9));
      assert.deepEqual(
        v.map((x) => x.flagged),
        [flagged, flagged, flagged],
      );
    } finally {
      await checker.release();
    }
  }
});

test("a checkpoint's safety_checker is found through model_index.json; a configured folder otherwise; none is undefined", () => {
  const model = join(work, "model");
  addTinySafetyChecker(model, { seed: 3 });
  assert.deepEqual(findSafetyChecker(model), { dir: join(model, "safety_checker"), preprocessor: join(model, "feature_extractor", "preprocessor_config.json") });
  const bare = join(work, "bare");
  writeTinySafetyCheckerFolder(join(work, "standalone"), { seed: 3 });
  assert.equal(findSafetyChecker(bare), undefined);
  assert.equal(findSafetyChecker(bare, join(work, "standalone"))?.dir, join(work, "standalone"));
  assert.throws(() => findSafetyChecker(bare, join(work, "nothing-here")), /no config.json/);
  const black = blackImage(randomImages(1, 1)[0]);
  assert.ok(black.rgb.every((x) => x === 0));
});
