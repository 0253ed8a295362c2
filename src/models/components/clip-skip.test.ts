import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { expectClose, readRefFloat32, readRefTensor } from "../../../test/helpers/tensors.ts";
import { openComponentWeights, readTensorData } from "../../graph/safetensors.ts";
import { createSession } from "../../runtime/session.ts";
import { prepareClipTextModel } from "./clip-text.ts";

const DIR = "test/fixtures/models/sd15/text_encoder";
const CASE = "test/fixtures/modules/sd15/text_encoder";

/** Reference LayerNorm in float64 over the last axis. */
function layerNorm(x: Float32Array, d: number, w: Float32Array, b: Float32Array, eps: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let r = 0; r < x.length / d; r++) {
    let mean = 0;
    for (let i = 0; i < d; i++) mean += x[r * d + i];
    mean /= d;
    let v = 0;
    for (let i = 0; i < d; i++) v += (x[r * d + i] - mean) ** 2;
    const inv = 1 / Math.sqrt(v / d + eps);
    for (let i = 0; i < d; i++) out[r * d + i] = (x[r * d + i] - mean) * inv * w[i] + b[i];
  }
  return out;
}

test("normed_hidden_states: final_layer_norm of each layer (clip_skip), last entry = last_hidden_state", async () => {
  const model = prepareClipTextModel(DIR, { cacheDir: mkdtempSync(join(tmpdir(), "easel-clipskip-")), outputNormedHiddenStates: true });
  const s = await createSession(model.modelPath);
  const ids = readRefTensor(join(CASE, "input_ids"));
  const out = await s.run({ input_ids: { data: BigInt64Array.from(ids.data as Int32Array, BigInt), shape: ids.shape } });
  const normed = out.normed_hidden_states;
  const L = model.config.numLayers;
  const D = model.config.hiddenSize;
  assert.deepEqual(normed.shape, [L + 1, 1, 77, D]);
  const per = 77 * D;
  const data = normed.data as Float32Array;
  expectClose(data.subarray(L * per), readRefFloat32(join(CASE, "last_hidden_state")).data, { what: "normed[L]" });
  const weights = openComponentWeights(DIR);
  const w = readTensorData(weights.get("text_model.final_layer_norm.weight")!);
  const b = readTensorData(weights.get("text_model.final_layer_norm.bias")!);
  const hidden = readRefFloat32(join(CASE, "hidden_states")).data;
  const penultimate = hidden.subarray((L - 1) * per, L * per);
  expectClose(data.subarray((L - 1) * per, L * per), layerNorm(penultimate, D, w, b, model.config.layerNormEps), { what: "clip_skip 1" });
  await s.release();
});
