import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { GraphBuilder } from "../graph/builder.ts";
import { saveModel } from "../graph/external-data.ts";
import { createInlineWeights } from "../graph/weights.ts";
import { createSession } from "./session.ts";

async function twoOutputModel() {
  const g = new GraphBuilder({ name: "two", weights: createInlineWeights({}) });
  const x = g.input("x", "float32", [3]);
  g.output(g.op("Add", [x, g.f32(1)]), "plus_one");
  g.output(g.op("Mul", [x, g.f32(2)]), "times_two");
  const { modelPath } = saveModel(g.build(), mkdtempSync(join(tmpdir(), "easel-session-")), "two.onnx");
  return createSession(modelPath);
}

test("a requested subset of outputs comes back under the right names", async () => {
  const s = await twoOutputModel();
  const feeds = { x: { data: new Float32Array([1, 2, 3]), shape: [3] } };
  const second = await s.run(feeds, ["times_two"]);
  assert.deepEqual(Object.keys(second), ["times_two"]);
  assert.deepEqual([...(second.times_two.data as Float32Array)], [2, 4, 6]);
  const all = await s.run(feeds);
  assert.deepEqual([...(all.plus_one.data as Float32Array)], [2, 3, 4]);
  await assert.rejects(s.run(feeds, ["nope"]), /no output "nope"/);
  await assert.rejects(s.run({}), /missing input "x"/);
  await s.release();
});

test("asking for CUDA without the CUDA build is a clear E_NOT_SUPPORTED", async () => {
  const g = new GraphBuilder({ name: "one", weights: createInlineWeights({}) });
  g.output(g.op("Identity", [g.input("x", "float32", [1])]), "y");
  const { modelPath } = saveModel(g.build(), mkdtempSync(join(tmpdir(), "easel-session-")), "one.onnx");
  await assert.rejects(createSession(modelPath, { executionProvider: "cuda" }), (e: { code?: string }) => e.code === "E_NOT_SUPPORTED");
});
