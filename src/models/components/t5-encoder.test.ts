import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { expectClose, readRefFloat32, readRefTensor } from "../../../test/helpers/tensors.ts";
import { openComponentWeights } from "../../graph/safetensors.ts";
import { createRecordingWeights } from "../../graph/weights.ts";
import { createSession } from "../../runtime/session.ts";
import { buildT5EncoderGraph, t5EncoderConfigFromJson, t5RelativeBuckets } from "./t5-encoder.graph.ts";
import { prepareT5EncoderModel } from "./t5-encoder.ts";

const FIX = join(import.meta.dirname, "../../../test/fixtures");
const DIR = join(FIX, "models/sd3/text_encoder_3");
const work = mkdtempSync(join(tmpdir(), "easel-t5-"));
after(() => rmSync(work, { recursive: true, force: true }));

test("T5 encoder matches transformers: modules/sd3/text_encoder_3 (every hidden state)", async () => {
  const cacheDir = join(work, "cache");
  const prepared = prepareT5EncoderModel(DIR, { cacheDir, outputHiddenStates: true });
  assert.equal(prepared.cacheHit, false);
  assert.equal(prepareT5EncoderModel(DIR, { cacheDir, outputHiddenStates: true }).cacheHit, true);
  const session = await createSession(prepared.modelPath);
  try {
    const caseDir = join(FIX, "modules/sd3/text_encoder_3");
    const ids = readRefTensor(join(caseDir, "input_ids"));
    const out = await session.run({ input_ids: { data: BigInt64Array.from(ids.data as Int32Array, (x) => BigInt(x)), shape: ids.shape } });
    for (const name of ["hidden_states", "last_hidden_state"]) {
      const ref = readRefFloat32(join(caseDir, name));
      assert.deepEqual(out[name].shape, ref.shape, `${name} shape`);
      const diff = expectClose(out[name].data as Float32Array, ref, { what: name });
      console.log(`t5 ${name}: max abs diff ${diff.toExponential(2)}`);
    }
    // A shorter sequence runs through the same graph (the bias table is sliced to S).
    const short = await session.run({ input_ids: { data: BigInt64Array.from([4n, 57n, 1n]), shape: [1, 3] } });
    assert.deepEqual(short.last_hidden_state.shape, [1, 3, 48]);
  } finally {
    await session.release();
  }
});

test("T5 relative buckets: exact below 8, logarithmic to 128, direction in the upper half", () => {
  const maxLen = 300;
  const b = t5RelativeBuckets(maxLen, 32, 128);
  const at = (rp: number) => b[rp + maxLen - 1];
  assert.deepEqual([0, 1, 7].map(at), [0, 17, 23]);
  assert.deepEqual([-1, -7].map(at), [1, 7]);
  // 8 + trunc(ln(a/8)/ln(16)*8): a = 16 -> 10, 32 -> 12, 64 -> 14, >= 128 -> 15 (clamped).
  assert.deepEqual([-16, -32, -64, -127, -128, -299].map(at), [10, 12, 14, 15, 15, 15]);
  assert.deepEqual([15, 16, 299].map(at), [16 + 9, 16 + 10, 16 + 15]);
});

test("T5 recording weights: the builder requests exactly the checkpoint's tensors", () => {
  const cfg = t5EncoderConfigFromJson(JSON.parse(readFileSync(join(DIR, "config.json"), "utf8")));
  const rec = createRecordingWeights();
  buildT5EncoderGraph(cfg, rec.source);
  const got = new Map(rec.recorded().map((r) => [r.name, r.shape]));
  const want = new Map([...openComponentWeights(DIR).values()].map((e) => [e.name, e.shape]));
  assert.deepEqual([...got.keys()].sort(), [...want.keys()].sort());
  for (const [k, s] of want) assert.deepEqual(got.get(k), s, k);
});

test("T5 config: unsupported feed-forward projection is rejected by name", () => {
  assert.throws(
    () => t5EncoderConfigFromJson({ d_model: 8, d_kv: 2, d_ff: 16, num_layers: 1, num_heads: 4, vocab_size: 10, feed_forward_proj: "gated-swishy" }),
    /feed_forward_proj "gated-swishy" is not supported/,
  );
});

test("T5 int8 weight-only linears: close to transformers' fp32 output, int8 weights in the graph", async () => {
  const cacheDir = join(work, "cache-int8");
  const prepared = prepareT5EncoderModel(DIR, { cacheDir, weightQuantization: "int8" });
  assert.equal(prepareT5EncoderModel(DIR, { cacheDir, weightQuantization: "int8" }).cacheHit, true);
  const session = await createSession(prepared.modelPath);
  try {
    const caseDir = join(FIX, "modules/sd3/text_encoder_3");
    const ids = readRefTensor(join(caseDir, "input_ids"));
    const out = await session.run({ input_ids: { data: BigInt64Array.from(ids.data as Int32Array, (x) => BigInt(x)), shape: ids.shape } });
    const ref = readRefFloat32(join(caseDir, "last_hidden_state"));
    // Stated tolerance for int8 weights: 3% of the reference's largest magnitude.
    let maxRef = 0;
    for (const v of ref.data) maxRef = Math.max(maxRef, Math.abs(v));
    const diff = expectClose(out.last_hidden_state.data as Float32Array, ref, { atol: 0.03 * maxRef, what: "int8 last_hidden_state" });
    console.log(`t5 int8 last_hidden_state: max abs diff ${diff.toExponential(2)} (max |ref| ${maxRef.toFixed(3)})`);
    assert.ok(diff > 0, "int8 output should differ from fp32 (the weights really are quantised)");
    assert.ok(readFileSync(prepared.modelPath).includes("DequantizeLinear"), "linears read int8 weights through DequantizeLinear");
  } finally {
    await session.release();
  }
});
