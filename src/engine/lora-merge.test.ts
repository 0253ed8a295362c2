/** The onnxruntime merge writes the values the JavaScript merge writes (float32 sums in another order: 1e-6). */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { expectClose } from "../../test/helpers/tensors.ts";
import { loadCheckpoint } from "../checkpoint/checkpoint.ts";
import { readSafetensorsHeader, readTensorData, writeSafetensors } from "../graph/safetensors.ts";
import { mergeLorasIntoComponent, planLoraMerge } from "../models/components/lora.ts";
import { mulberry32, writeTinyCheckpoint } from "../models/testing/tiny-checkpoint.ts";
import { precomputeLoraMerges } from "./lora-merge.ts";

test("LoRA merge: onnxruntime and JavaScript agree, LoCon convolutions included", async () => {
  const tmp = mkdtempSync(join(tmpdir(), "easel-lora-merge-"));
  try {
    const dir = join(tmp, "sd15");
    writeTinyCheckpoint(dir, { family: "sd15", seed: 2 });
    const ckpt = loadCheckpoint(dir);
    const unet = ckpt.components.unet!;
    const rand = mulberry32(7);
    const f = (n: number) => new Uint8Array(Float32Array.from({ length: n }, () => rand() - 0.5).buffer);
    const tensors: Parameters<typeof writeSafetensors>[1] = [];
    for (const key of ["down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.weight", "down_blocks.0.resnets.0.conv1.weight"]) {
      const shape = unet.weights.get(key)!.shape;
      const inner = shape.slice(1).reduce((a, b) => a * b, 1);
      const base = `lora_unet_${key.slice(0, -7).replace(/\./g, "_")}`;
      tensors.push({ name: `${base}.lora_down.weight`, dtype: "F32", shape: [3, ...shape.slice(1)], data: f(3 * inner) });
      tensors.push({ name: `${base}.lora_up.weight`, dtype: "F32", shape: shape.length === 4 ? [shape[0], 3, 1, 1] : [shape[0], 3], data: f(shape[0] * 3) });
      tensors.push({ name: `${base}.alpha`, dtype: "F32", shape: [], data: new Uint8Array(Float32Array.of(2).buffer) });
    }
    const lora = join(tmp, "lora.safetensors");
    writeSafetensors(lora, tensors);
    const choices = [{ file: lora, scale: 0.7 }];
    const input = { component: "unet", index: unet.weights, weightFiles: unet.weightFiles, choices };
    const js = mergeLorasIntoComponent({ ...input, cacheDir: join(tmp, "js") })!;
    await precomputeLoraMerges(ckpt, choices, { cacheDir: join(tmp, "ort"), intraOpThreads: 1 });
    const ortFile = planLoraMerge({ ...input, cacheDir: join(tmp, "ort") })!.file;
    const ort = new Map(readSafetensorsHeader(ortFile).entries.map((e) => [e.name, e]));
    assert.deepEqual([...ort.keys()].sort(), [...js.entries.keys()].sort());
    for (const [name, e] of js.entries) {
      const base = readTensorData(unet.weights.get(name)!);
      const merged = readTensorData(e);
      expectClose(readTensorData(ort.get(name)!), merged, { atol: 1e-6, rtol: 1e-6, what: name });
      assert.ok(merged.some((v, i) => Math.abs(v - base[i]) > 1e-3), `${name} changed`);
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});
