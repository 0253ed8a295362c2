/**
 * Measured fp32 GEMM throughput of this machine through onnxruntime: one MatMul [n, n] x [n, n] graph, best of
 * a few runs after a warm-up. This is the practical peak the UNet numbers are compared against.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GraphBuilder } from "../src/graph/builder.ts";
import { saveModel } from "../src/graph/external-data.ts";
import { createInlineWeights } from "../src/graph/weights.ts";
import { createSession } from "../src/runtime/session.ts";

export interface GemmResult {
  n: number;
  runs: number;
  bestSeconds: number;
  medianSeconds: number;
  /** 2 n^3 / best time. */
  gflops: number;
}

export async function measureGemm(n: number, runs: number, opts: { intraOpThreads?: number } = {}): Promise<GemmResult> {
  const dir = mkdtempSync(join(tmpdir(), "easel-bench-gemm-"));
  try {
    const g = new GraphBuilder({ name: "gemm", weights: createInlineWeights({}) });
    const a = g.input("a", "float32", [n, n]);
    const b = g.input("b", "float32", [n, n]);
    g.output(g.op("MatMul", [a, b]), "c", "float32", [n, n]);
    const { modelPath } = saveModel(g.build(), dir, "gemm.onnx");
    const session = await createSession(modelPath, { intraOpThreads: opts.intraOpThreads });
    try {
      const fill = (phase: number) => Float32Array.from({ length: n * n }, (_, i) => Math.sin(i * 0.001 + phase));
      const feeds = { a: { data: fill(0), shape: [n, n] }, b: { data: fill(1), shape: [n, n] } };
      await session.run(feeds);
      const times: number[] = [];
      for (let r = 0; r < runs; r++) {
        const t0 = performance.now();
        await session.run(feeds);
        times.push((performance.now() - t0) / 1000);
      }
      const sorted = [...times].sort((x, y) => x - y);
      const best = sorted[0];
      return { n, runs, bestSeconds: best, medianSeconds: sorted[Math.floor(sorted.length / 2)], gflops: (2 * n ** 3) / best / 1e9 };
    } finally {
      await session.release();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
