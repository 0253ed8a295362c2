import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { expectClose, readRefFloat32 } from "../../../test/helpers/tensors.ts";
import { saveModel } from "../../graph/external-data.ts";
import { openComponentWeights } from "../../graph/safetensors.ts";
import { createRecordingWeights, createSafetensorsWeights } from "../../graph/weights.ts";
import { createSession } from "../../runtime/session.ts";
import { ReplayNoise } from "../../tensor/noise.ts";
import { buildVaeDecoderGraph, buildVaeEncoderGraph } from "./vae.graph.ts";
import { latentScaling, posteriorFromMoments, prepareVaeDecoder, samplePosterior } from "./vae.ts";
import { vaeConfigFromJson } from "./vae-config.ts";

const FIX = join(import.meta.dirname, "../../../test/fixtures");
const work = mkdtempSync(join(tmpdir(), "easel-vae-"));
after(() => rmSync(work, { recursive: true, force: true }));

const FAMILIES = ["sd15", "sdxl", "playground", "sd3"] as const;
const vaeDir = (family: string) => join(FIX, "models", family, "vae");
const configOf = (family: string) => vaeConfigFromJson(JSON.parse(readFileSync(join(vaeDir(family), "config.json"), "utf8")));

async function runGraph(graph: ReturnType<typeof buildVaeDecoderGraph>, name: string, input: string, x: { data: Float32Array; shape: number[] }) {
  const { modelPath } = saveModel(graph, join(work, name), "model.onnx");
  const session = await createSession(modelPath, { intraOpThreads: 1 });
  try {
    return await session.run({ [input]: x });
  } finally {
    await session.release();
  }
}

describe("AutoencoderKL decoder matches diffusers vae.decode", () => {
  const cases = [
    ...FAMILIES.map((f) => ({ family: f, id: `${f}/vae_decode`, variant: undefined })),
    { family: "sd15", id: "sd15/vae_decode_fp16_weights", variant: "fp16" as const },
  ];
  for (const c of cases) {
    test(c.id, async () => {
      const weights = createSafetensorsWeights(openComponentWeights(vaeDir(c.family), { variant: c.variant }), vaeDir(c.family));
      const input = readRefFloat32(join(FIX, "modules", c.id, "in_latents"));
      const ref = readRefFloat32(join(FIX, "modules", c.id, "sample"));
      const out = await runGraph(buildVaeDecoderGraph(configOf(c.family), weights), c.id.replace("/", "_"), "latent", input);
      assert.deepEqual(out.sample.shape, ref.shape);
      expectClose(out.sample.data as Float32Array, ref, { what: `${c.id} sample` });
    });
  }
});

describe("AutoencoderKL encoder matches diffusers vae.encode", () => {
  for (const family of FAMILIES) {
    test(`${family}/vae_encode: moments, posterior, scaled latents`, async () => {
      const caseDir = join(FIX, "modules", family, "vae_encode");
      const cfg = configOf(family);
      const weights = createSafetensorsWeights(openComponentWeights(vaeDir(family)), vaeDir(family));
      const out = await runGraph(buildVaeEncoderGraph(cfg, weights), `${family}_enc`, "image", readRefFloat32(join(caseDir, "in_image")));
      const moments = readRefFloat32(join(caseDir, "moments"));
      assert.deepEqual(out.moments.shape, moments.shape);
      expectClose(out.moments.data as Float32Array, moments, { what: `${family} moments` });

      const post = posteriorFromMoments(out.moments.data as Float32Array, out.moments.shape);
      for (const k of ["mean", "logvar", "std"] as const) expectClose(post[k], readRefFloat32(join(caseDir, k)), { what: `${family} ${k}` });
      const [, L, h, w] = post.shape;
      const scaled = latentScaling(cfg).fromVaeOutput(post.mean, L, h * w);
      expectClose(scaled, readRefFloat32(join(caseDir, "latents_scaled")), { what: `${family} latents_scaled` });
    });
  }
});

describe("latent scaling before decode", () => {
  for (const family of FAMILIES) {
    test(`${family}: final latents -> vae_input as the pipeline computes it`, () => {
      const dir = join(FIX, "modules", family, "vae_scaling");
      const latents = readRefFloat32(join(dir, "final_latents"));
      const [, L, h, w] = latents.shape;
      const got = latentScaling(configOf(family)).toVaeInput(latents.data, L, h * w);
      expectClose(got, readRefFloat32(join(dir, "vae_input")), { what: `${family} vae_input` });
    });
  }
});

test("posterior sampling draws one randn of the latent shape", () => {
  const moments = new Float32Array([1, 2, Math.log(4), 100]); // [1, 2, 1, 2]: mean [1, 2], logvar [ln 4, 100 -> 20]
  const p = posteriorFromMoments(moments, [1, 2, 1, 2]);
  assert.deepEqual(p.shape, [1, 1, 1, 2]);
  assert.equal(p.logvar[1], 20);
  const s = samplePosterior(p, new ReplayNoise(new Float32Array([0.5, -1]), 2));
  expectClose(s, [1 + 2 * 0.5, 2 - Math.exp(10)], { rtol: 1e-6 });
});

for (const family of FAMILIES) {
  test(`VAE recording weights: encoder + decoder request exactly the ${family} checkpoint's tensors`, () => {
    const cfg = configOf(family);
    const rec = createRecordingWeights();
    buildVaeEncoderGraph(cfg, rec.source);
    buildVaeDecoderGraph(cfg, rec.source);
    const got = new Map(rec.recorded().map((r) => [r.name, r.shape]));
    const want = new Map([...openComponentWeights(vaeDir(family)).values()].map((e) => [e.name, e.shape]));
    assert.deepEqual([...got.keys()].sort(), [...want.keys()].sort());
    for (const [k, s] of want) assert.deepEqual(got.get(k), s, k);
  });
}

test("legacy attention names (query/key/value/proj_attn, 1x1-conv shapes) decode identically", async () => {
  const dir = vaeDir("sd15");
  const index = openComponentWeights(dir);
  const renamed = new Map(index);
  const p = "decoder.mid_block.attentions.0";
  for (const [now, old] of [
    ["to_q", "query"],
    ["to_k", "key"],
    ["to_v", "value"],
    ["to_out.0", "proj_attn"],
  ]) {
    for (const part of ["weight", "bias"]) {
      const e = renamed.get(`${p}.${now}.${part}`)!;
      renamed.delete(`${p}.${now}.${part}`);
      // Old conversions stored the projection weights as 1x1 convolutions.
      const shape = part === "weight" && old === "query" ? [...e.shape, 1, 1] : e.shape;
      renamed.set(`${p}.${old}.${part}`, { ...e, name: `${p}.${old}.${part}`, shape });
    }
  }
  const input = readRefFloat32(join(FIX, "modules/sd15/vae_decode/in_latents"));
  const out = await runGraph(buildVaeDecoderGraph(configOf("sd15"), createSafetensorsWeights(renamed, dir)), "legacy", "latent", input);
  expectClose(out.sample.data as Float32Array, readRefFloat32(join(FIX, "modules/sd15/vae_decode/sample")), { what: "legacy names" });
});

test("VAE config: unsupported architecture keys and bad values are rejected by key", () => {
  const json = JSON.parse(readFileSync(join(vaeDir("sd15"), "config.json"), "utf8"));
  assert.throws(() => vaeConfigFromJson({ ...json, norm_type: "spatial" }), /"norm_type" = "spatial" is not supported/);
  assert.throws(() => vaeConfigFromJson({ ...json, up_block_types: ["UpDecoderBlock2D"] }), /"up_block_types" must list 4/);
  assert.throws(() => vaeConfigFromJson({ ...json, norm_num_groups: 3 }), /"norm_num_groups" \(3\) must divide/);
  assert.throws(() => vaeConfigFromJson({ ...json, latents_mean: [1, 2] }), /"latents_mean" must be null or a list of 4/);
  const sd3 = configOf("sd3");
  assert.equal(sd3.useQuantConv, false);
  assert.equal(sd3.usePostQuantConv, false);
  assert.equal(sd3.shiftFactor, 0.0609);
});

test("prepareVaeDecoder caches the built graph", () => {
  const cacheDir = join(work, "cache");
  const a = prepareVaeDecoder(vaeDir("sd3"), { cacheDir });
  const b = prepareVaeDecoder(vaeDir("sd3"), { cacheDir });
  assert.equal(a.cacheHit, false);
  assert.equal(b.cacheHit, true);
  assert.equal(a.modelPath, b.modelPath);
  assert.equal(b.config.latentChannels, 16);
});
