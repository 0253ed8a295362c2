import assert from "node:assert/strict";
import { test } from "node:test";
import { createRecordingWeights, type WeightSource } from "../src/graph/weights.ts";
import { buildClipTextGraph, clipTextConfigFromJson } from "../src/models/components/clip-text.graph.ts";
import { buildUnetGraph } from "../src/models/components/unet.graph.ts";
import { unetConfigFromJson } from "../src/models/components/unet-config.ts";
import { E2E_MODELS } from "./configs.ts";
import { e2eEstimateBytes } from "./e2e.ts";

const params = (record: (s: WeightSource) => void) => {
  const rec = createRecordingWeights({ dtype: "F16" });
  record(rec.source);
  return rec.recorded().reduce((a, w) => a + w.shape.reduce((x, y) => x * y, 1), 0);
};

test("the end-to-end configs build the published models: their parameter counts", () => {
  // stabilityai/sd-turbo (SD 2.1 UNet, OpenCLIP ViT-H/14 text tower) and SDXL's UNet, CLIP ViT-L and OpenCLIP bigG.
  const expected = {
    "sd-turbo": { unet: 865_910_724, text: [340_387_840] },
    "sdxl-turbo": { unet: 2_567_463_684, text: [123_060_480, 694_659_840] },
    sdxl: { unet: 2_567_463_684, text: [123_060_480, 694_659_840] },
  };
  for (const [id, m] of Object.entries(E2E_MODELS)) {
    const e = expected[id as keyof typeof expected];
    assert.equal(params((s) => buildUnetGraph(unetConfigFromJson(m.unet), s)), e.unet, `${id} unet`);
    assert.deepEqual(
      m.textEncoders.map(([, cfg]) => params((s) => buildClipTextGraph(clipTextConfigFromJson(cfg), s))),
      e.text,
      `${id} text encoders`,
    );
  }
});

test("memory estimates: SD-Turbo fits the default 13 GiB limit, SDXL-Turbo and SDXL at 1024² with guidance do not", () => {
  const GiB = 1024 ** 3;
  assert.ok(e2eEstimateBytes(E2E_MODELS["sd-turbo"]) < 13 * GiB);
  assert.ok(e2eEstimateBytes(E2E_MODELS["sdxl-turbo"]) > 13 * GiB);
  assert.ok(e2eEstimateBytes(E2E_MODELS.sdxl) > e2eEstimateBytes(E2E_MODELS["sdxl-turbo"]), "guidance batch 2 at 1024²");
});
