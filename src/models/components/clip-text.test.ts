import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { expectClose, readRefFloat32, readRefTensor } from "../../../test/helpers/tensors.ts";
import { saveModel } from "../../graph/external-data.ts";
import { openComponentWeights } from "../../graph/safetensors.ts";
import { createRecordingWeights, createSafetensorsWeights } from "../../graph/weights.ts";
import { createSession } from "../../runtime/session.ts";
import { buildClipTextGraph, clipTextConfigFromJson } from "./clip-text.graph.ts";
import { prepareClipTextModel } from "./clip-text.ts";

const FIX = join(import.meta.dirname, "../../../test/fixtures");
const work = mkdtempSync(join(tmpdir(), "easel-clip-"));
after(() => rmSync(work, { recursive: true, force: true }));

const cases = [
  { id: "sd15/text_encoder", component: "sd15/text_encoder", variant: undefined, pooled: "pooler_output" },
  { id: "sd15/text_encoder_fp16_weights", component: "sd15/text_encoder", variant: "fp16", pooled: "pooler_output" },
  { id: "sd15/text_encoder_bf16_weights", component: "sd15/text_encoder", variant: "bf16", pooled: "pooler_output" },
  { id: "sdxl/text_encoder", component: "sdxl/text_encoder", variant: undefined, pooled: "pooler_output" },
  { id: "sdxl/text_encoder_2", component: "sdxl/text_encoder_2", variant: undefined, pooled: "text_embeds" },
] as const;

for (const c of cases) {
  test(`CLIP text encoder matches transformers: ${c.id}`, async () => {
    const dir = join(FIX, "models", c.component);
    const cfg = clipTextConfigFromJson(JSON.parse(readFileSync(join(dir, "config.json"), "utf8")), join(dir, "config.json"));
    const weights = createSafetensorsWeights(openComponentWeights(dir, { variant: c.variant }), dir);
    const graph = buildClipTextGraph(cfg, weights, { outputHiddenStates: true });
    const { modelPath } = saveModel(graph, join(work, c.id.replace("/", "_")), "model.onnx");
    const session = await createSession(modelPath);
    try {
      const caseDir = join(FIX, "modules", c.id);
      const ids = readRefTensor(join(caseDir, "input_ids"));
      const feeds = { input_ids: { data: BigInt64Array.from(ids.data as Int32Array, (x) => BigInt(x)), shape: ids.shape } };
      const out = await session.run(feeds);
      for (const name of ["last_hidden_state", "hidden_states", c.pooled]) {
        const ref = readRefFloat32(join(caseDir, name));
        assert.deepEqual(out[name].shape, ref.shape, `${name} shape`);
        expectClose(out[name].data as Float32Array, ref, { what: `${c.id} ${name}` });
      }
      // hidden_states[-2] as its own output (what SDXL and SD3 feed the denoiser).
      const hs = readRefFloat32(join(caseDir, "hidden_states"));
      const per = hs.data.length / hs.shape[0];
      const penultimate = hs.data.subarray((hs.shape[0] - 2) * per, (hs.shape[0] - 1) * per);
      expectClose(out.penultimate_hidden_state.data as Float32Array, penultimate, { what: `${c.id} penultimate` });
    } finally {
      await session.release();
    }
  });
}

test("CLIP config: unsupported activation is rejected by name", () => {
  assert.throws(
    () => clipTextConfigFromJson({ hidden_size: 8, num_hidden_layers: 1, num_attention_heads: 2, intermediate_size: 16, vocab_size: 10, hidden_act: "relu" }),
    /hidden_act "relu" is not supported/,
  );
});

for (const component of ["sd15/text_encoder", "sdxl/text_encoder_2"]) {
  test(`CLIP recording weights: the builder requests exactly the ${component} checkpoint's tensors`, () => {
    const dir = join(FIX, "models", component);
    const cfg = clipTextConfigFromJson(JSON.parse(readFileSync(join(dir, "config.json"), "utf8")));
    const rec = createRecordingWeights();
    buildClipTextGraph(cfg, rec.source);
    const got = new Map(rec.recorded().map((r) => [r.name, r.shape]));
    const want = new Map(
      [...openComponentWeights(dir).values()].filter((e) => !e.name.endsWith("position_ids")).map((e) => [e.name, e.shape]),
    );
    assert.deepEqual([...got.keys()].sort(), [...want.keys()].sort());
    for (const [k, s] of want) assert.deepEqual(got.get(k), s, k);
  });
}

test("prepareClipTextModel: builds once, then hits the cache; the cached model runs", async () => {
  const dir = join(FIX, "models/sdxl/text_encoder_2");
  const cacheDir = join(work, "cache");
  const first = prepareClipTextModel(dir, { cacheDir });
  const second = prepareClipTextModel(dir, { cacheDir });
  assert.equal(first.cacheHit, false);
  assert.equal(second.cacheHit, true);
  assert.equal(second.config.projectionDim, 32);
  const session = await createSession(second.modelPath);
  try {
    const caseDir = join(FIX, "modules/sdxl/text_encoder_2");
    const ids = readRefTensor(join(caseDir, "input_ids"));
    const out = await session.run({ input_ids: { data: BigInt64Array.from(ids.data as Int32Array, (x) => BigInt(x)), shape: ids.shape } });
    expectClose(out.text_embeds.data as Float32Array, readRefFloat32(join(caseDir, "text_embeds")), { what: "cached text_embeds" });
  } finally {
    await session.release();
  }
});
