import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { GraphBuilder } from "../../graph/builder.ts";
import { saveModel } from "../../graph/external-data.ts";
import { createInlineWeights } from "../../graph/weights.ts";
import { createSession } from "../../runtime/session.ts";
import { upsample2D } from "./blocks.ts";

const work = mkdtempSync(join(tmpdir(), "easel-blocks-"));
after(() => rmSync(work, { recursive: true, force: true }));

test("upsample2D to a skip's odd size picks torch's nearest source pixels (floor(dst * in/out) in float32)", async () => {
  // An identity 3x3 conv isolates the resize.
  const kernel = new Float32Array(9);
  kernel[4] = 1;
  const weights = createInlineWeights({ "up.conv.weight": { shape: [1, 1, 3, 3], data: kernel }, "up.conv.bias": { shape: [1], data: new Float32Array(1) } });
  const g = new GraphBuilder({ name: "up", weights });
  const x = g.input("x", "float32", [1, 1, "h", "w"]);
  const skip = g.input("skip", "float32", [1, 1, "H", "W"]);
  g.output(upsample2D(g, x, "up", 1, skip), "y");
  const { modelPath } = saveModel(g.build(), join(work, "up"), "up.onnx");
  const s = await createSession(modelPath);
  try {
    for (const [h, w, H, W] of [
      [7, 5, 13, 9],
      [4, 3, 8, 6],
      [3, 2, 7, 5],
    ]) {
      const xs = Float32Array.from({ length: h * w }, (_, i) => i);
      const out = await s.run({ x: { data: xs, shape: [1, 1, h, w] }, skip: { data: new Float32Array(H * W), shape: [1, 1, H, W] } });
      assert.deepEqual(out.y.shape, [1, 1, H, W]);
      const f = Math.fround;
      const src = (dst: number, inn: number, out: number) => Math.min(Math.floor(f(dst * f(inn / out))), inn - 1);
      const expected = Float32Array.from({ length: H * W }, (_, k) => src(Math.floor(k / W), h, H) * w + src(k % W, w, W));
      assert.deepEqual([...(out.y.data as Float32Array)], [...expected], `${h}x${w} -> ${H}x${W}`);
    }
  } finally {
    await s.release();
  }
});
