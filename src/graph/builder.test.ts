import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { expectClose } from "../../test/helpers/tensors.ts";
import { createSession } from "../runtime/session.ts";
import { GraphBuilder } from "./builder.ts";
import { saveModel } from "./external-data.ts";
import { gelu, groupNorm, linear } from "./ops/nn.ts";
import { createInlineWeights, createRecordingWeights } from "./weights.ts";

const work = mkdtempSync(join(tmpdir(), "easel-builder-"));
after(() => rmSync(work, { recursive: true, force: true }));

/** Deterministic pseudo-random values in [-1, 1). */
function values(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 31 - 1;
  });
}

test("builder: linear + GroupNorm + exact GELU agree with a direct float64 computation", async () => {
  const [B, C, H, W, G, O] = [2, 6, 3, 2, 3, 4];
  const x = values(B * C * H * W, 1);
  const gamma = values(C, 2);
  const beta = values(C, 3);
  const wl = values(O * W, 4);
  const bl = values(O, 5);
  const weights = createInlineWeights({
    "gn.weight": { shape: [C], data: gamma },
    "gn.bias": { shape: [C], data: beta },
    "fc.weight": { shape: [O, W], data: wl },
    "fc.bias": { shape: [O], data: bl },
  });
  const g = new GraphBuilder({ name: "t", weights });
  const xin = g.input("x", "float32", ["b", C, H, W]);
  const y = gelu(g, linear(g, groupNorm(g, xin, "gn", { channels: C, groups: G, eps: 1e-5 }), "fc", W, O)); // [B, C, H, O]
  g.output(y, "y");
  const { modelPath } = saveModel(g.build(), join(work, "t"), "t.onnx");
  const s = await createSession(modelPath);
  const out = await s.run({ x: { data: x, shape: [B, C, H, W] } });
  await s.release();

  // Reference: group statistics over (C/G, H, W), affine, then x W^T + b, then 0.5 x (1 + erf(x / sqrt2)).
  const erf = (z: number) => {
    // Abramowitz-Stegun 7.1.26 is too coarse; integrate with Simpson's rule instead (float64, error << 1e-9).
    const n = 2000;
    const h = z / n;
    let sum = 0;
    for (let i = 0; i <= n; i++) sum += (i === 0 || i === n ? 1 : i % 2 ? 4 : 2) * Math.exp(-((i * h) ** 2));
    return ((2 / Math.sqrt(Math.PI)) * sum * h) / 3;
  };
  const normed = new Float64Array(x.length);
  const per = (C / G) * H * W;
  for (let b = 0; b < B; b++) {
    for (let gi = 0; gi < G; gi++) {
      const off = (b * G + gi) * per;
      let m = 0;
      for (let i = 0; i < per; i++) m += x[off + i];
      m /= per;
      let v = 0;
      for (let i = 0; i < per; i++) v += (x[off + i] - m) ** 2;
      v /= per;
      for (let i = 0; i < per; i++) {
        const c = Math.floor((off + i) / (H * W)) % C;
        normed[off + i] = ((x[off + i] - m) / Math.sqrt(v + 1e-5)) * gamma[c] + beta[c];
      }
    }
  }
  const ref = new Float64Array(B * C * H * O);
  for (let r = 0; r < B * C * H; r++) {
    for (let o = 0; o < O; o++) {
      let acc = bl[o];
      for (let k = 0; k < W; k++) acc += normed[r * W + k] * wl[o * W + k];
      ref[r * O + o] = 0.5 * acc * (1 + erf(acc / Math.SQRT2));
    }
  }
  assert.deepEqual(out.y.shape, [B, C, H, O]);
  expectClose(out.y.data as Float32Array, ref, { atol: 1e-5 });
});

test("builder: a recorded graph can be inspected but not saved", () => {
  const rec = createRecordingWeights();
  const g = new GraphBuilder({ name: "t", weights: rec.source });
  g.output(linear(g, g.input("x", "float32", [1, 3]), "fc", 3, 2), "y");
  assert.deepEqual(rec.recorded(), [
    { name: "fc.weight", shape: [2, 3], dtype: "F32" },
    { name: "fc.bias", shape: [2], dtype: "F32" },
  ]);
  assert.throws(() => saveModel(g.build(), join(work, "rec"), "r.onnx"), /recorded without data/);
});

test("builder: non-integer value for an integer attribute is a builder error", () => {
  const g = new GraphBuilder({ name: "t", weights: createInlineWeights({}) });
  assert.throws(() => g.op("Softmax", [g.input("x", "float32", [2])], { axis: 0.5 }), /Softmax.axis: 0.5 is not an integer/);
});

test("runtime: asking for CUDA without the CUDA provider fails with E_NOT_SUPPORTED (or runs where it is installed)", async () => {
  const g = new GraphBuilder({ name: "t", weights: createInlineWeights({}) });
  g.output(g.op("Relu", [g.input("x", "float32", [2])]), "y");
  const { modelPath } = saveModel(g.build(), join(work, "cuda"), "c.onnx");
  try {
    const s = await createSession(modelPath, { executionProvider: "cuda" });
    const out = await s.run({ x: { data: new Float32Array([-1, 2]), shape: [2] } });
    assert.deepEqual([...(out.y.data as Float32Array)], [0, 2]);
    await s.release();
  } catch (e) {
    assert.equal((e as { code?: string }).code, "E_NOT_SUPPORTED");
    assert.match((e as Error).message, /CUDA execution provider is not available/);
  }
});
