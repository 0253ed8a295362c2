/**
 * `node --import tsx bench/lora.ts [--model sd15|sdxl] [--rank 32] [--js]`: what applying a LoRA set costs with
 * Easel's merged-weights approach (src/models/components/lora.ts), on the real UNet shapes (bench/configs.ts) with
 * random weights: the layers a kohya LoRA trains (every attention projection, the feed-forward and the transformer
 * in/out projections), a rank-r LoRA over all of them, and the merge as the engine does it (onnxruntime products,
 * src/engine/lora-merge.ts; `--js`: the JavaScript fallback): seconds, the merged file's size and the process's
 * peak RSS. The merge runs once per LoRA set (files and scales); later requests with the same set reuse
 * its file and its loaded pipeline, and each step then costs what it costs without a LoRA. A new set also loads
 * the touched components' sessions again (see the e2e bench's first-image-after-a-start figure for that time).
 */
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { readSafetensorsIndex } from "../src/graph/safetensors.ts";
import { createRecordingWeights } from "../src/graph/weights.ts";
import { precomputeLoraMerges } from "../src/engine/lora-merge.ts";
import { mergeLorasIntoComponent, planLoraMerge } from "../src/models/components/lora.ts";
import { buildUnetGraph } from "../src/models/components/unet.graph.ts";
import { unetConfigFromJson } from "../src/models/components/unet-config.ts";
import { writeRandomSafetensors } from "../src/models/testing/tiny-checkpoint.ts";
import { BENCH_MODELS } from "./configs.ts";

/** The modules kohya's sd-scripts train by default in a UNet (its LoRA target list for Transformer2DModel). */
const TARGET = /\.(attn[12]\.(to_q|to_k|to_v|to_out\.0)|ff\.net\.0\.proj|ff\.net\.2|proj_in|proj_out)\.weight$/;

export interface LoraBenchResult {
  model: string;
  engine: "onnxruntime" | "javascript";
  rank: number;
  modules: number;
  targetParams: number;
  mergeSeconds: number;
  mergedBytes: number;
  peakRssBytes: number;
}

export async function benchLora(model: "sd15" | "sdxl", rank: number, js = false): Promise<LoraBenchResult> {
  const m = BENCH_MODELS[model];
  const cfg = unetConfigFromJson(m.config, `${model} unet config`);
  const rec = createRecordingWeights({ dtype: "F16" });
  buildUnetGraph(cfg, rec.source);
  const targets = rec.recorded().filter((w) => TARGET.test(w.name));
  const dir = mkdtempSync(join(tmpdir(), "easel-bench-lora-"));
  try {
    const base = join(dir, "unet.safetensors");
    writeRandomSafetensors(base, targets, { seed: 1, dtype: "F16" });
    const lora = join(dir, "lora.safetensors");
    const factors = targets.flatMap((t) => {
      const module = `lora_unet_${t.name.slice(0, -7).replace(/\./g, "_")}`;
      const inner = t.shape.slice(1);
      return [
        { name: `${module}.lora_down.weight`, shape: [rank, ...inner], dtype: "F16" as const },
        { name: `${module}.lora_up.weight`, shape: t.shape.length === 4 ? [t.shape[0], rank, 1, 1] : [t.shape[0], rank], dtype: "F16" as const },
      ];
    });
    writeRandomSafetensors(lora, factors, { seed: 2, dtype: "F16" });
    const index = readSafetensorsIndex([base]);
    const t0 = performance.now();
    const input = { component: "unet", index, weightFiles: [base], choices: [{ file: lora, scale: 0.8 }], cacheDir: join(dir, "cache") };
    if (js) mergeLorasIntoComponent(input);
    else {
      const components = { unet: { name: "unet", library: "diffusers", className: "UNet2DConditionModel", dir, config: {}, weights: index, weightFiles: [base] } };
      await precomputeLoraMerges({ components } as never, input.choices, { cacheDir: input.cacheDir });
    }
    const mergeSeconds = (performance.now() - t0) / 1000;
    const merged = planLoraMerge(input);
    return {
      model: m.label,
      engine: js ? "javascript" : "onnxruntime",
      rank,
      modules: targets.length,
      targetParams: targets.reduce((a, t) => a + t.shape.reduce((x, y) => x * y, 1), 0),
      mergeSeconds,
      mergedBytes: merged ? statSync(merged.file).size : 0,
      peakRssBytes: process.resourceUsage().maxRSS * 1024,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export function printLoraBench(r: LoraBenchResult): void {
  const mib = (b: number) => `${(b / 1024 ** 2).toFixed(0)} MiB`;
  console.log(`LoRA merge, ${r.engine} (${r.model}, rank ${r.rank}, ${r.modules} modules, ${(r.targetParams / 1e6).toFixed(0)} M parameters touched)`);
  console.log(`  merge ${r.mergeSeconds.toFixed(1)} s once per LoRA set; merged tensors ${mib(r.mergedBytes)} on disk; peak RSS ${mib(r.peakRssBytes)}`);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const arg = (k: string) => {
    const i = process.argv.indexOf(k);
    return i > 0 ? process.argv[i + 1] : undefined;
  };
  const model = (arg("--model") ?? "sd15") as "sd15" | "sdxl";
  if (model !== "sd15" && model !== "sdxl") throw new Error("--model is sd15 or sdxl");
  const rank = Number(arg("--rank") ?? 32);
  const r = await benchLora(model, rank, process.argv.includes("--js"));
  printLoraBench(r);
  console.log(`BENCH_JSON ${JSON.stringify({ lora: r })}`);
}
