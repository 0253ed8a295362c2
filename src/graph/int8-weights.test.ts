import assert from "node:assert/strict";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { createSession } from "../runtime/session.ts";
import { TorchGenerator } from "../tensor/rng.ts";
import { GraphBuilder } from "./builder.ts";
import { getOrBuildGraph, graphCacheKey } from "./cache.ts";
import { quantizePerRow, withInt8Weights } from "./int8-weights.ts";
import { conv2d, linear, silu } from "./ops/nn.ts";
import { reshape, transpose } from "./ops/shape.ts";
import { readSafetensorsIndex, writeSafetensors } from "./safetensors.ts";
import { createSafetensorsWeights } from "./weights.ts";

const work = mkdtempSync(join(tmpdir(), "easel-int8w-"));
after(() => rmSync(work, { recursive: true, force: true }));

test("per-output-channel symmetric quantisation: scale max|w| / 127, round to nearest", () => {
  const { q, scales } = quantizePerRow(new Float32Array([0.5, -1, 0.25, 0, 0, 0, 2, -0.01, 1]), 3, 3);
  assert.deepEqual([...scales], [Math.fround(1 / 127), 1, Math.fround(2 / 127)]);
  // 0.5 * 127 = 63.5 -> 64; 0.25 * 127 = 31.75 -> 32; -0.01 * 63.5 = -0.635 -> -1; 63.5 -> 64.
  assert.deepEqual([...q], [64, -127, 32, 0, 0, 0, 127, -1, 64]);
});

/** Normal float32 weights of a conv 8 -> 16 (3x3), a 1x1 conv "keep" (excluded), and a linear 16 -> 24. */
function writeWeights(file: string): void {
  const gen = new TorchGenerator(7);
  const t = (name: string, shape: number[], scale: number) => {
    const data = gen.randn(shape).map((v) => v * scale);
    return { name, dtype: "F32" as const, shape, data: new Uint8Array(data.buffer) };
  };
  writeSafetensors(file, [
    t("conv.weight", [16, 8, 3, 3], 1 / Math.sqrt(72)),
    t("conv.bias", [16], 0.1),
    t("keep.weight", [16, 16, 1, 1], 0.25),
    t("keep.bias", [16], 0.1),
    t("proj.weight", [24, 16], 0.25),
    t("proj.bias", [24], 0.1),
  ]);
}

function buildSmall(file: string) {
  const g = new GraphBuilder({ name: "small", weights: createSafetensorsWeights(readSafetensorsIndex([file]), work) });
  const x = g.input("x", "float32", [2, 8, 6, 6]);
  let h = silu(g, conv2d(g, x, "conv", { inChannels: 8, outChannels: 16, kernel: 3, padding: 1 })); // [2, 16, 6, 6]
  h = conv2d(g, h, "keep", { inChannels: 16, outChannels: 16, kernel: 1 });
  const seq = transpose(g, reshape(g, h, [2, 16, 36]), [0, 2, 1]); // [2, 36, 16]
  g.output(linear(g, seq, "proj", 16, 24), "y"); // [2, 36, 24]
  return g.build();
}

test("linears become DynamicQuantizeMatMul and convolutions ConvInteger; excluded layers stay; outputs within 2 % of fp32", async () => {
  const file = join(work, "w.safetensors");
  writeWeights(file);
  const plain = buildSmall(file);
  const q = withInt8Weights(plain, join(work, "w.int8.bin"), { exclude: ["keep."] });
  const ops = q.nodes.map((n) => n.opType);
  assert.equal(ops.filter((o) => o === "DynamicQuantizeMatMul").length, 1);
  assert.equal(ops.filter((o) => o === "ConvInteger").length, 1);
  assert.equal(ops.filter((o) => o === "Conv").length, 1, "the excluded 1x1 conv is untouched");
  assert.ok(!ops.includes("MatMul"));
  const dqmm = q.nodes.find((n) => n.opType === "DynamicQuantizeMatMul");
  assert.deepEqual(dqmm?.inputs.slice(3), ["", "proj.bias"], "the linear's bias is the kernel's bias input");
  assert.equal(q.nodes.filter((n) => n.opType === "Add").length, plain.nodes.filter((n) => n.opType === "Add").length, "its Add is gone (the conv's bias Add stays)");
  const dtypes = Object.fromEntries(q.initializers.map((i) => [i.name, [i.dtype, i.dims.join("x")]]));
  assert.deepEqual(dtypes["proj.weight"], ["int8", "16x24"], "stored transposed, [in, out]");
  assert.deepEqual(dtypes["conv.weight"], ["uint8", "16x8x3x3"]);
  assert.deepEqual(dtypes["keep.weight"], ["float32", "16x16x1x1"]);
  // conv 1152 bytes (rounded up to 64), linear 384.
  assert.equal(statSync(join(work, "w.int8.bin")).size, 1152 + 384);

  const key = { component: "small", weightFiles: [file], config: {}, builderVersion: "1", dtype: "float32", executionProvider: "cpu" };
  assert.equal(graphCacheKey({ ...key, int8: undefined }), graphCacheKey(key), "fp32 entries keep their keys");
  const fp32 = getOrBuildGraph(join(work, "cache"), key, () => buildSmall(file));
  const int8 = getOrBuildGraph(join(work, "cache"), { ...key, dtype: "int8", int8: { exclude: ["keep."] } }, () => buildSmall(file));
  assert.notEqual(fp32.modelPath, int8.modelPath);

  const x = { data: new TorchGenerator(3).randn([2, 8, 6, 6]), shape: [2, 8, 6, 6] };
  const [s32, s8] = await Promise.all([createSession(fp32.modelPath), createSession(int8.modelPath)]);
  try {
    const ref = (await s32.run({ x })).y.data as Float32Array;
    const got = (await s8.run({ x })).y.data as Float32Array;
    let num = 0;
    let den = 0;
    for (let i = 0; i < ref.length; i++) {
      num += (got[i] - ref[i]) ** 2;
      den += ref[i] ** 2;
    }
    const rel = Math.sqrt(num / den);
    assert.ok(rel < 0.02, `relative error ${rel}`);
    assert.ok(rel > 0, "int8 results differ from fp32");
  } finally {
    await Promise.all([s32.release(), s8.release()]);
  }
});

test("a weight read by two layers is left in float (quantising it once would change the other reader)", () => {
  const file = join(work, "shared.safetensors");
  writeWeights(file);
  const g = new GraphBuilder({ name: "shared", weights: createSafetensorsWeights(readSafetensorsIndex([file]), work) });
  const x = g.input("x", "float32", [3, 16]);
  const w = g.weight("proj.weight", [24, 16]);
  g.output(g.op("MatMul", [x, transpose(g, w, [1, 0])]), "a");
  g.output(g.op("ReduceSum", [w]), "b");
  const built = g.build();
  assert.equal(withInt8Weights(built, join(work, "shared.int8.bin")), built);
});
