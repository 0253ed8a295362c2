import assert from "node:assert/strict";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { createSession } from "../runtime/session.ts";
import { GraphBuilder } from "./builder.ts";
import { getOrBuildGraph } from "./cache.ts";
import { withFloat32Weights } from "./float32-weights.ts";
import { readSafetensorsIndex, writeSafetensors } from "./safetensors.ts";
import { createSafetensorsWeights } from "./weights.ts";

const work = mkdtempSync(join(tmpdir(), "easel-f32w-"));
after(() => rmSync(work, { recursive: true, force: true }));

/** Half-precision bits of n values in (-2, 2) (both float16 and bfloat16 decode any pattern below 0x4000 finitely). */
function halfBits(n: number, seed: number): Uint8Array {
  const u = new Uint16Array(n);
  for (let i = 0; i < n; i++) u[i] = ((i * 2654435761 + seed) >>> 7) % 0x3c00 | (i % 2 ? 0x8000 : 0);
  return new Uint8Array(u.buffer);
}

test("half-precision weights become float32 in one file: no Cast left, the same outputs bit for bit", async () => {
  const file = join(work, "w.safetensors");
  writeSafetensors(file, [
    { name: "a", dtype: "F16", shape: [3, 4], data: halfBits(12, 1) },
    { name: "b", dtype: "BF16", shape: [4], data: halfBits(4, 2) },
    { name: "c", dtype: "F32", shape: [4], data: new Uint8Array(new Float32Array([1, 2, 3, 4]).buffer) },
  ]);
  const build = () => {
    const g = new GraphBuilder({ name: "t", weights: createSafetensorsWeights(readSafetensorsIndex([file]), work) });
    const x = g.input("x", "float32", [2, 3]);
    const y = g.op("Add", [g.op("Mul", [g.op("MatMul", [x, g.weight("a", [3, 4])]), g.weight("b", [4])]), g.weight("c", [4])]);
    g.output(y, "y");
    return g.build();
  };
  const plain = build();
  const f32 = withFloat32Weights(plain, join(work, "w.f32.bin"));
  assert.equal(plain.nodes.filter((n) => n.opType === "Cast").length, 2);
  assert.equal(f32.nodes.filter((n) => n.opType === "Cast").length, 0);
  assert.deepEqual(
    f32.initializers.map((i) => [i.name, i.dtype]),
    [["a", "float32"], ["b", "float32"], ["c", "float32"]],
  );
  assert.equal(statSync(join(work, "w.f32.bin")).size, 4096 + 16, "page-aligned tensor starts");

  const key = { component: "t", weightFiles: [file], config: {}, builderVersion: "1", dtype: "float32", executionProvider: "cpu" };
  const withCasts = getOrBuildGraph(join(work, "cache"), key, build);
  const converted = getOrBuildGraph(join(work, "cache"), { ...key, float32Weights: true }, build);
  assert.notEqual(withCasts.modelPath, converted.modelPath);
  const x = { data: Float32Array.from({ length: 6 }, (_, i) => i - 2.5), shape: [2, 3] };
  const [s1, s2] = await Promise.all([createSession(withCasts.modelPath), createSession(converted.modelPath)]);
  try {
    assert.deepEqual((await s2.run({ x })).y.data, (await s1.run({ x })).y.data);
  } finally {
    await Promise.all([s1.release(), s2.release()]);
  }
});
