import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { expectClose, readRefFloat32 } from "../../../test/helpers/tensors.ts";
import { saveModel } from "../../graph/external-data.ts";
import { openComponentWeights } from "../../graph/safetensors.ts";
import { createInlineWeights, createRecordingWeights } from "../../graph/weights.ts";
import { createSession } from "../../runtime/session.ts";
import { sd3TransformerConfigFromJson } from "./config.ts";
import { buildMmditGraph } from "./mmdit.graph.ts";
import { prepareMmditModel } from "./mmdit.ts";

const FIX = join(import.meta.dirname, "../../../test/fixtures");
const DIR = join(FIX, "models/sd3/transformer");
const work = mkdtempSync(join(tmpdir(), "easel-mmdit-"));
after(() => rmSync(work, { recursive: true, force: true }));

const HOOK_ORDER = [
  "pos_embed",
  "time_text_embed",
  "context_embedder",
  "transformer_blocks.0",
  "transformer_blocks.0.out1",
  "transformer_blocks.1.out1",
  "norm_out",
  "proj_out",
];

test("SD3 transformer matches diffusers: modules/sd3/transformer_call (hooks in forward order, then sample)", async () => {
  const prepared = prepareMmditModel(DIR, { cacheDir: join(work, "cache"), hooks: true });
  const session = await createSession(prepared.modelPath);
  try {
    const caseDir = join(FIX, "modules/sd3/transformer_call");
    const inp = (n: string) => {
      const r = readRefFloat32(join(caseDir, n));
      return { data: r.data, shape: r.shape };
    };
    const out = await session.run({
      hidden_states: inp("in_sample"),
      timestep: inp("in_timestep"),
      encoder_hidden_states: inp("in_encoder_hidden_states"),
      pooled_projections: inp("in_pooled_projections"),
    });
    for (const h of HOOK_ORDER) {
      const ref = readRefFloat32(join(caseDir, "hooks", h));
      const got = out[`hook:${h}`];
      assert.ok(got, `graph has no hook ${h}`);
      assert.deepEqual(got.shape, ref.shape, `hook ${h} shape`);
      expectClose(got.data as Float32Array, ref, { what: `hook ${h}` });
    }
    const ref = readRefFloat32(join(caseDir, "sample"));
    assert.deepEqual(out.sample.shape, ref.shape);
    const diff = expectClose(out.sample.data as Float32Array, ref, { what: "sample" });
    console.log(`sd3 transformer sample: max abs diff ${diff.toExponential(2)}`);
  } finally {
    await session.release();
  }
});

test("SD3 transformer recording weights: the builder requests exactly the checkpoint's tensors", () => {
  const cfg = sd3TransformerConfigFromJson(JSON.parse(readFileSync(join(DIR, "config.json"), "utf8")));
  const rec = createRecordingWeights();
  buildMmditGraph(cfg, rec.source);
  const got = new Map(rec.recorded().map((r) => [r.name, r.shape]));
  const want = new Map([...openComponentWeights(DIR).values()].map((e) => [e.name, e.shape]));
  assert.deepEqual([...got.keys()].sort(), [...want.keys()].sort());
  for (const [k, s] of want) assert.deepEqual(got.get(k), s, k);
});

test("SD3.5-medium layout: qk RMS norms, dual attention blocks and 9-way AdaLN are read with diffusers' names and shapes; the graph runs", async () => {
  const json = JSON.parse(readFileSync(join(DIR, "config.json"), "utf8"));
  const cfg = sd3TransformerConfigFromJson({ ...json, num_layers: 3, qk_norm: "rms_norm", dual_attention_layers: [0, 1] });
  const rec = createRecordingWeights();
  buildMmditGraph(cfg, rec.source);
  const shapes = new Map(rec.recorded().map((r) => [r.name, r.shape]));
  const D = 16;
  const expected: [string, number[] | undefined][] = [
    ["transformer_blocks.0.norm1.linear.weight", [9 * D, D]],
    ["transformer_blocks.2.norm1.linear.weight", [6 * D, D]],
    ["transformer_blocks.2.norm1_context.linear.weight", [2 * D, D]],
    ["transformer_blocks.1.attn.norm_q.weight", [8]],
    ["transformer_blocks.1.attn.norm_added_k.weight", [8]],
    ["transformer_blocks.0.attn2.to_q.weight", [D, D]],
    ["transformer_blocks.0.attn2.norm_k.weight", [8]],
    ["transformer_blocks.1.attn2.to_out.0.bias", [D]],
    ["transformer_blocks.2.attn2.to_q.weight", undefined],
    ["transformer_blocks.2.attn.to_add_out.weight", undefined],
    ["transformer_blocks.2.ff_context.net.0.proj.weight", undefined],
  ];
  for (const [k, s] of expected) assert.deepEqual(shapes.get(k), s, k);

  // Seeded weights in [-0.2, 0.2): the graph must run end to end at a non-square size.
  let seed = 1;
  const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31 - 0.5) * 0.4;
  const tensors: Record<string, { shape: number[]; data: Float32Array }> = {};
  for (const r of rec.recorded()) tensors[r.name] = { shape: r.shape, data: Float32Array.from({ length: r.shape.reduce((a, b) => a * b, 1) }, rand) };
  const { modelPath } = saveModel(buildMmditGraph(cfg, createInlineWeights(tensors)), join(work, "sd35m"), "model.onnx");
  const session = await createSession(modelPath);
  try {
    const B = 1;
    const out = await session.run({
      hidden_states: { data: Float32Array.from({ length: B * 16 * 6 * 4 }, rand), shape: [B, 16, 6, 4] },
      timestep: { data: Float32Array.from([500]), shape: [B] },
      encoder_hidden_states: { data: Float32Array.from({ length: B * 5 * 48 }, rand), shape: [B, 5, 48] },
      pooled_projections: { data: Float32Array.from({ length: B * 40 }, rand), shape: [B, 40] },
    });
    assert.deepEqual(out.sample.shape, [B, 16, 6, 4]);
    assert.ok((out.sample.data as Float32Array).every(Number.isFinite));
  } finally {
    await session.release();
  }
});
