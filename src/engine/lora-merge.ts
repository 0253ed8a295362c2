/**
 * The LoRA merge with onnxruntime doing the products: out = W + s * (up @ down) per module, in a small graph with
 * dynamic sizes (one session for the whole set, released afterwards). JavaScript does the same sum in
 * models/components/lora.ts (mergeTensor) more slowly: on the SD1.5 UNet's 192 attention, feed-forward and projection
 * layers with a rank-32 LoRA (bench/lora.ts), 29.6 s here against 88.7 s in JavaScript, on a shared 2-core machine
 * at load average 23, both including reading the fp16 weights and writing 1 GiB of float32. The engine writes the
 * merged file here before a LoRA pipeline loads; the component builders then find it in the cache.
 */
import { existsSync } from "node:fs";
import type { Checkpoint } from "../checkpoint/checkpoint.ts";
import { EaselError } from "../core/errors.ts";
import { GraphBuilder } from "../graph/builder.ts";
import { getOrBuildGraph } from "../graph/cache.ts";
import { readTensorData } from "../graph/safetensors.ts";
import { createInlineWeights } from "../graph/weights.ts";
import { type LoraChoice, planLoraMerge, writeLoraMerge } from "../models/components/lora.ts";
import { createSession, type ModelSession } from "../runtime/session.ts";

/** Bump when the merge graph changes. */
const MERGE_GRAPH_VERSION = "lora-merge.1";

function buildMergeGraph() {
  const g = new GraphBuilder({ name: "lora_merge", weights: createInlineWeights({}) });
  const w = g.input("w", "float32", ["O", "K"]);
  const up = g.input("up", "float32", ["O", "R"]);
  const down = g.input("down", "float32", ["R", "K"]);
  const s = g.input("s", "float32", [1]);
  g.output(g.op("Add", [w, g.op("Mul", [g.op("MatMul", [up, down]), s])]), "out", "float32", ["O", "K"]);
  return g.build();
}

/** Writes the merged-weights file of every component of `ckpt` that `choices` touch (skipping files already there). */
export async function precomputeLoraMerges(ckpt: Checkpoint, choices: readonly LoraChoice[], rt: { cacheDir: string; intraOpThreads?: number }): Promise<void> {
  let session: ModelSession | undefined;
  const open = async () => {
    if (session) return session;
    const model = getOrBuildGraph(
      rt.cacheDir,
      { component: "lora-merge", weightFiles: [], config: {}, builderVersion: MERGE_GRAPH_VERSION, dtype: "float32", executionProvider: "cpu" },
      buildMergeGraph,
    );
    session = await createSession(model.modelPath, { executionProvider: "cpu", intraOpThreads: rt.intraOpThreads || undefined });
    return session;
  };
  try {
    for (const [name, c] of Object.entries(ckpt.components)) {
      if (!c) continue;
      const plan = planLoraMerge({ component: name, index: c.weights, weightFiles: c.weightFiles, choices, cacheDir: rt.cacheDir });
      if (!plan || existsSync(plan.file)) continue;
      const s = await open();
      await writeLoraMerge(plan, c.weights, async (base, deltas) => {
        let w = readTensorData(base);
        const rows = base.shape[0];
        const cols = w.length / rows;
        for (const { module: m, scale, file } of deltas) {
          const rank = m.down.shape[0];
          const inner = m.down.shape.slice(1).reduce((a, b) => a * b, 1);
          if (m.up.shape[0] !== rows || inner !== cols || m.up.shape.slice(2).some((d) => d !== 1)) {
            throw new EaselError("E_INPUT_INVALID", `LoRA ${file}: ${m.module}: up [${m.up.shape}] x down [${m.down.shape}] does not fit weight ${base.name} [${base.shape}]`, {
              param: "loras",
            });
          }
          const out = await s.run({
            w: { data: w, shape: [rows, cols] },
            up: { data: readTensorData(m.up), shape: [rows, rank] },
            down: { data: readTensorData(m.down), shape: [rank, cols] },
            s: { data: Float32Array.of((scale * (m.alpha ?? rank)) / rank), shape: [1] },
          });
          w = out.out.data as Float32Array;
        }
        return w;
      });
    }
  } finally {
    await session?.release();
  }
}
