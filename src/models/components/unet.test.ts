import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { expectClose, readRefFloat32 } from "../../../test/helpers/tensors.ts";
import { saveModel } from "../../graph/external-data.ts";
import { openComponentWeights } from "../../graph/safetensors.ts";
import { createRecordingWeights, createSafetensorsWeights } from "../../graph/weights.ts";
import { createSession, type HostTensor } from "../../runtime/session.ts";
import { buildUnetGraph } from "./unet.graph.ts";
import { prepareUnetModel } from "./unet.ts";
import { unetConfigFromJson } from "./unet-config.ts";

const FIX = join(import.meta.dirname, "../../../test/fixtures");
const work = mkdtempSync(join(tmpdir(), "easel-unet-"));
after(() => rmSync(work, { recursive: true, force: true }));

const cases = [
  { id: "sd15/unet_call", family: "sd15", variant: undefined },
  { id: "sd15/unet_call_fp16_weights", family: "sd15", variant: "fp16" },
  { id: "sdxl/unet_call", family: "sdxl", variant: undefined },
] as const;

const INPUTS: Record<string, string> = {
  sample: "in_sample",
  timestep: "in_timestep",
  encoder_hidden_states: "in_encoder_hidden_states",
  text_embeds: "in_text_embeds",
  time_ids: "in_time_ids",
};

for (const c of cases) {
  test(`UNet2DConditionModel matches diffusers: ${c.id}`, async () => {
    const dir = join(FIX, "models", c.family, "unet");
    const cfg = unetConfigFromJson(JSON.parse(readFileSync(join(dir, "config.json"), "utf8")), join(dir, "config.json"));
    const weights = createSafetensorsWeights(openComponentWeights(dir, { variant: c.variant }), dir);
    const { modelPath } = saveModel(buildUnetGraph(cfg, weights, { hooks: true }), join(work, c.id.replace("/", "_")), "unet.onnx");
    const session = await createSession(modelPath);
    try {
      const caseDir = join(FIX, "modules", c.id);
      const feeds: Record<string, HostTensor> = {};
      for (const name of session.inputNames) feeds[name] = readRefFloat32(join(caseDir, INPUTS[name]));
      const out = await session.run(feeds);
      const ref = readRefFloat32(join(caseDir, "sample"));
      // Hooks first (when the case has them): the first failing module is the one to look at.
      const hookDir = join(caseDir, "hooks");
      const hooks = existsSync(hookDir) ? readdirSync(hookDir).filter((f) => f.endsWith(".json")).map((f) => f.slice(0, -5)) : [];
      const order = ["time_embedding", "add_embedding", "conv_in", "down_blocks.0", "down_blocks.1", "mid_block", "up_blocks.0", "up_blocks.1", "conv_out"];
      for (const h of order.filter((o) => hooks.includes(o))) {
        const r = readRefFloat32(join(hookDir, h));
        const got = out[`hook:${h}`];
        assert.ok(got, `graph has no hook ${h}`);
        assert.deepEqual(got.shape, r.shape, `${h} shape`);
        expectClose(got.data as Float32Array, r, { what: `${c.id} hook ${h}` });
      }
      assert.deepEqual(out.out_sample.shape, ref.shape);
      expectClose(out.out_sample.data as Float32Array, ref, { what: `${c.id} sample` });
    } finally {
      await session.release();
    }
  });
}

test("UNet config: unsupported features are rejected by key", () => {
  const json = JSON.parse(readFileSync(join(FIX, "models/sd15/unet/config.json"), "utf8"));
  assert.throws(() => unetConfigFromJson({ ...json, class_embed_type: "timestep" }), /"class_embed_type" = "timestep" is not supported/);
  assert.throws(() => unetConfigFromJson({ ...json, down_block_types: ["SimpleCrossAttnDownBlock2D", "DownBlock2D"] }), /down_block_types/);
});

test("UNet build: a missing or wrongly shaped weight names the key and the file", () => {
  const dir = join(FIX, "models/sd15/unet");
  const cfg = unetConfigFromJson(JSON.parse(readFileSync(join(dir, "config.json"), "utf8")));
  const index = openComponentWeights(dir);
  const missing = new Map(index);
  missing.delete("down_blocks.0.attentions.1.transformer_blocks.0.attn2.to_k.weight");
  assert.throws(
    () => buildUnetGraph(cfg, createSafetensorsWeights(missing, dir)),
    (e: Error & { code?: string }) =>
      e.code === "E_CHECKPOINT_INVALID" &&
      e.message.includes('"down_blocks.0.attentions.1.transformer_blocks.0.attn2.to_k.weight" is missing') &&
      e.message.includes("diffusion_pytorch_model.safetensors"),
  );
  const wrong = new Map(index);
  const e0 = index.get("conv_in.weight")!;
  wrong.set("conv_in.weight", { ...e0, shape: [8, 4, 1, 1] });
  assert.throws(
    () => buildUnetGraph(cfg, createSafetensorsWeights(wrong, dir)),
    /weight "conv_in.weight" in .*diffusion_pytorch_model.safetensors has shape \[8, 4, 1, 1\], expected \[8, 4, 3, 3\]/,
  );
});

for (const family of ["sd15", "sdxl"]) {
  test(`UNet recording weights: the builder requests exactly the ${family} checkpoint's tensors`, () => {
    const dir = join(FIX, "models", family, "unet");
    const cfg = unetConfigFromJson(JSON.parse(readFileSync(join(dir, "config.json"), "utf8")));
    const rec = createRecordingWeights();
    buildUnetGraph(cfg, rec.source);
    const got = new Map(rec.recorded().map((r) => [r.name, r.shape]));
    const want = new Map([...openComponentWeights(dir).values()].map((e) => [e.name, e.shape]));
    assert.deepEqual([...got.keys()].sort(), [...want.keys()].sort());
    for (const [k, s] of want) assert.deepEqual(got.get(k), s, k);
  });
}

test("prepareUnetModel: second call is a cache hit that runs, a different variant is not a hit", async () => {
  const dir = join(FIX, "models/sd15/unet");
  const cacheDir = join(work, "cache");
  const first = prepareUnetModel(dir, { cacheDir });
  const second = prepareUnetModel(dir, { cacheDir });
  const fp16 = prepareUnetModel(dir, { cacheDir, variant: "fp16" });
  assert.equal(first.cacheHit, false);
  assert.equal(second.cacheHit, true);
  assert.equal(second.modelPath, first.modelPath);
  assert.equal(fp16.cacheHit, false);
  assert.notEqual(fp16.modelPath, first.modelPath);
  const session = await createSession(second.modelPath);
  try {
    const caseDir = join(FIX, "modules/sd15/unet_call");
    const feeds: Record<string, HostTensor> = {};
    for (const name of session.inputNames) feeds[name] = readRefFloat32(join(caseDir, INPUTS[name]));
    const out = await session.run(feeds);
    expectClose(out.out_sample.data as Float32Array, readRefFloat32(join(caseDir, "sample")), { what: "cached sd15 unet" });
  } finally {
    await session.release();
  }
});
