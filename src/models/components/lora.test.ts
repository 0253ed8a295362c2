/**
 * LoRA parity: a run with LoRA files applied equals a run of the checkpoint whose weights this test merged itself by
 * W + scale * alpha / rank * up @ down (float64, then float32), on tiny SD1.5 and SDXL checkpoints, with generated
 * files in the kohya (with and without alpha, LoCon 3x3 convolutions), PEFT and diffusers (lora.down/up,
 * lora_linear_layer, attention processors) layouts, several at once.
 */
import assert from "node:assert/strict";
import { cpSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { expectClose } from "../../../test/helpers/tensors.ts";
import { EaselError } from "../../core/errors.ts";
import { Engine } from "../../engine/engine.ts";
import { findComponentWeightFiles, readSafetensorsHeader, readTensorBytes, readTensorData, writeSafetensors } from "../../graph/safetensors.ts";
import { mulberry32, writeTinyCheckpoint } from "../testing/tiny-checkpoint.ts";
import { readLoraFile } from "./lora.ts";

type Format = "kohya" | "kohya-sgm" | "peft" | "diffusers";

/**
 * kohya's SDXL UNet module names: the original (SGM) block path with "_" for "." (input_blocks_<n>_<i>_..., n = 1 +
 * block * (layers_per_block + 1) + layer; output_blocks_<block * 3 + layer>_...; middle_block_1_...), written here
 * from the published layout for layers_per_block = 2. Resnets name their layers in_layers_2 / out_layers_3.
 */
function sgmModule(module: string): string {
  const per = 3;
  const resnet = (r: string) => r.replace(/^conv1$/, "in_layers_2").replace(/^conv2$/, "out_layers_3").replace(/^norm1$/, "in_layers_0");
  let m: RegExpExecArray | null;
  if ((m = /^down_blocks\.(\d+)\.attentions\.(\d+)\.(.+)$/.exec(module))) return `input_blocks_${1 + Number(m[1]) * per + Number(m[2])}_1_${m[3].replace(/\./g, "_")}`;
  if ((m = /^down_blocks\.(\d+)\.resnets\.(\d+)\.(.+)$/.exec(module))) return `input_blocks_${1 + Number(m[1]) * per + Number(m[2])}_0_${resnet(m[3])}`;
  if ((m = /^up_blocks\.(\d+)\.attentions\.(\d+)\.(.+)$/.exec(module))) return `output_blocks_${Number(m[1]) * per + Number(m[2])}_1_${m[3].replace(/\./g, "_")}`;
  if ((m = /^mid_block\.attentions\.0\.(.+)$/.exec(module))) return `middle_block_1_${m[1].replace(/\./g, "_")}`;
  throw new Error(`no SGM name for ${module}`);
}

interface Pair {
  component: "unet" | "text_encoder" | "text_encoder_2";
  /** Weight key in the checkpoint. */
  target: string;
  rank: number;
  alpha?: number;
  down: Float32Array;
  downShape: number[];
  up: Float32Array;
  upShape: number[];
}

const f32 = (a: Float32Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

function weightShape(dir: string, component: string, target: string): number[] {
  const files = findComponentWeightFiles(join(dir, component)).files;
  for (const f of files) {
    const e = readSafetensorsHeader(f).entries.find((x) => x.name === target);
    if (e) return e.shape;
  }
  throw new Error(`${component} has no ${target}`);
}

/** Random low-rank factors for `target`: linear [out, in] -> down [r, in], up [out, r]; conv [out, in, k, k] -> down [r, in, k, k], up [out, r, 1, 1]. */
function makePair(dir: string, component: Pair["component"], target: string, rank: number, alpha: number | undefined, seed: number): Pair {
  const shape = weightShape(dir, component, target);
  const rand = mulberry32(seed);
  const fill = (n: number) => Float32Array.from({ length: n }, () => (rand() * 2 - 1) * 0.5);
  const inner = shape.slice(1);
  const downShape = [rank, ...inner];
  const upShape = shape.length === 4 ? [shape[0], rank, 1, 1] : [shape[0], rank];
  return { component, target, rank, alpha, down: fill(downShape.reduce((a, b) => a * b, 1)), downShape, up: fill(shape[0] * rank), upShape };
}

const KOHYA_PREFIX = (family: "sd15" | "sdxl", c: Pair["component"]) =>
  c === "unet" ? "lora_unet" : family === "sd15" ? "lora_te" : c === "text_encoder" ? "lora_te1" : "lora_te2";

/** The file's keys for one pair, written the way each tool writes them (module = target without ".weight"). */
function pairKeys(format: Format, family: "sd15" | "sdxl", p: Pair, variant: number): { down: string; up: string; alpha?: string } {
  const module = p.target.slice(0, -".weight".length);
  if (format === "kohya" || format === "kohya-sgm") {
    const name = format === "kohya-sgm" && p.component === "unet" ? sgmModule(module) : module.replace(/\./g, "_");
    const base = `${KOHYA_PREFIX(family, p.component)}_${name}`;
    return { down: `${base}.lora_down.weight`, up: `${base}.lora_up.weight`, alpha: `${base}.alpha` };
  }
  if (format === "peft") return { down: `${p.component}.${module}.lora_A.weight`, up: `${p.component}.${module}.lora_B.weight`, alpha: `${p.component}.${module}.alpha` };
  // diffusers' older scripts: attention processors (unprefixed UNet keys), lora.down/up, lora_linear_layer.
  const proc = /^(.*)\.(to_q|to_k|to_v|to_out\.0)$/.exec(module);
  if (p.component === "unet" && proc && variant % 2 === 0) {
    const name = proc[2] === "to_out.0" ? "to_out" : proc[2];
    return { down: `${proc[1]}.processor.${name}_lora.down.weight`, up: `${proc[1]}.processor.${name}_lora.up.weight` };
  }
  const kind = p.component === "unet" ? "lora" : "lora_linear_layer";
  return { down: `${p.component}.${module}.${kind}.down.weight`, up: `${p.component}.${module}.${kind}.up.weight`, alpha: `${p.component}.${module}.alpha` };
}

function writeLora(file: string, format: Format, family: "sd15" | "sdxl", pairs: Pair[]): void {
  const tensors: Parameters<typeof writeSafetensors>[1] = [];
  pairs.forEach((p, i) => {
    const k = pairKeys(format, family, p, i);
    tensors.push({ name: k.down, dtype: "F32", shape: p.downShape, data: f32(p.down) });
    tensors.push({ name: k.up, dtype: "F32", shape: p.upShape, data: f32(p.up) });
    if (p.alpha !== undefined && k.alpha) tensors.push({ name: k.alpha, dtype: "F32", shape: [], data: f32(Float32Array.of(p.alpha)) });
  });
  writeSafetensors(file, tensors);
}

/** A copy of `dir` with every pair merged in by the formula, in float64. */
function mergedCopy(dir: string, out: string, sets: { pairs: Pair[]; scale: number }[]): void {
  cpSync(dir, out, { recursive: true });
  const byComponent = new Map<string, { pair: Pair; scale: number }[]>();
  for (const s of sets) for (const p of s.pairs) byComponent.set(p.component, [...(byComponent.get(p.component) ?? []), { pair: p, scale: s.scale }]);
  for (const [component, deltas] of byComponent) {
    for (const file of findComponentWeightFiles(join(out, component)).files) {
      const entries = readSafetensorsHeader(file).entries;
      const tensors = entries.map((e) => {
        const mine = deltas.filter((d) => d.pair.target === e.name);
        if (mine.length === 0) return { name: e.name, dtype: e.dtype, shape: e.shape, data: readTensorBytes(e) };
        const w = Float64Array.from(readTensorData(e));
        for (const { pair: p, scale } of mine) {
          const outDim = e.shape[0];
          const inner = w.length / outDim;
          const s = (scale * (p.alpha ?? p.rank)) / p.rank;
          for (let o = 0; o < outDim; o++) for (let i = 0; i < inner; i++) {
            let acc = 0;
            for (let r = 0; r < p.rank; r++) acc += p.up[o * p.rank + r] * p.down[r * inner + i];
            w[o * inner + i] += s * acc;
          }
        }
        return { name: e.name, dtype: "F32" as const, shape: e.shape, data: f32(Float32Array.from(w)) };
      });
      writeSafetensors(file, tensors);
    }
  }
}

describe("LoRA files applied per request equal the merged-weights checkpoint", () => {
  let tmp: string;
  let engine: Engine;
  const dirs = { sd15: "", sdxl: "" };
  before(() => {
    tmp = mkdtempSync(join(tmpdir(), "easel-lora-"));
    for (const f of ["sd15", "sdxl"] as const) {
      dirs[f] = join(tmp, f);
      writeTinyCheckpoint(dirs[f], { family: f, seed: 5 });
    }
    engine = new Engine({ executionProvider: "cpu", intraOpThreads: 1, cacheDir: join(tmp, "cache") });
  });
  after(async () => {
    await engine.close();
    rmSync(tmp, { recursive: true, force: true });
  });

  const params = { prompt: "a red cube", negativePrompt: "blur", n: 1, width: 64, height: 64, steps: 3, scheduler: "euler", seed: 9 };

  async function parity(family: "sd15" | "sdxl", name: string, sets: { format: Format; pairs: Pair[]; scale: number }[]) {
    const files = sets.map((s, i) => {
      const file = join(tmp, `${name}-${i}-${s.format}.safetensors`);
      writeLora(file, s.format, family, s.pairs);
      return { file, scale: s.scale };
    });
    const merged = join(tmp, `${name}-merged`);
    mergedCopy(dirs[family], merged, sets);
    const withLora = await engine.run(dirs[family], { ...params, loras: files });
    const reference = await engine.run(merged, params);
    const plain = await engine.run(dirs[family], params);
    expectClose(withLora.latents, reference.latents, { atol: 1e-4, rtol: 1e-4, what: `${name} latents` });
    const diff = withLora.latents.reduce((m, v, i) => Math.max(m, Math.abs(v - plain.latents[i])), 0);
    assert.ok(diff > 1e-2, `the LoRA changes the output (max difference ${diff})`);
  }

  test("sd15: kohya (alpha, no alpha, LoCon 3x3) at 0.8 with PEFT at -0.5, UNet and text encoder", async () => {
    const d = dirs.sd15;
    const kohya = [
      makePair(d, "unet", "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.weight", 2, 4, 1),
      makePair(d, "unet", "down_blocks.0.attentions.0.proj_in.weight", 2, undefined, 2),
      makePair(d, "unet", "down_blocks.0.resnets.0.conv1.weight", 3, 1.5, 3),
      makePair(d, "unet", "up_blocks.1.attentions.0.transformer_blocks.0.ff.net.0.proj.weight", 4, 2, 4),
      makePair(d, "text_encoder", "text_model.encoder.layers.0.self_attn.q_proj.weight", 2, 1, 5),
      makePair(d, "text_encoder", "text_model.encoder.layers.1.mlp.fc1.weight", 3, undefined, 6),
    ];
    const peft = [
      makePair(d, "unet", "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.weight", 4, 8, 7),
      makePair(d, "unet", "mid_block.attentions.0.transformer_blocks.0.attn2.to_out.0.weight", 2, undefined, 8),
      makePair(d, "text_encoder", "text_model.encoder.layers.0.self_attn.v_proj.weight", 2, 4, 9),
    ];
    await parity("sd15", "sd15-mix", [
      { format: "kohya", pairs: kohya, scale: 0.8 },
      { format: "peft", pairs: peft, scale: -0.5 },
    ]);
  });

  test("sd15: diffusers' attention processors, lora.down/up and lora_linear_layer", async () => {
    const d = dirs.sd15;
    const pairs = [
      makePair(d, "unet", "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight", 2, undefined, 11),
      // Odd positions take the lora.down/up form, which can carry an alpha; processors (even) carry none.
      makePair(d, "unet", "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_out.0.weight", 2, 3, 12),
      makePair(d, "unet", "up_blocks.1.attentions.0.transformer_blocks.0.attn1.to_v.weight", 2, undefined, 13),
      makePair(d, "text_encoder", "text_model.encoder.layers.1.self_attn.k_proj.weight", 2, undefined, 14),
    ];
    await parity("sd15", "sd15-diffusers", [{ format: "diffusers", pairs, scale: 1 }]);
  });

  test("sdxl: kohya lora_te1 / lora_te2 / lora_unet and PEFT on both text encoders", async () => {
    const d = dirs.sdxl;
    const kohya = [
      makePair(d, "unet", "down_blocks.1.attentions.0.transformer_blocks.1.attn1.to_q.weight", 2, 4, 21),
      makePair(d, "unet", "down_blocks.1.attentions.0.proj_in.weight", 2, undefined, 22),
      makePair(d, "text_encoder", "text_model.encoder.layers.0.mlp.fc1.weight", 2, 2, 23),
      makePair(d, "text_encoder_2", "text_model.encoder.layers.1.self_attn.q_proj.weight", 2, 1, 24),
    ];
    const peft = [
      makePair(d, "text_encoder", "text_model.encoder.layers.1.self_attn.out_proj.weight", 2, undefined, 25),
      makePair(d, "text_encoder_2", "text_model.encoder.layers.0.mlp.fc2.weight", 3, 6, 26),
      makePair(d, "unet", "down_blocks.1.attentions.0.transformer_blocks.0.ff.net.2.weight", 2, 2, 27),
    ];
    await parity("sdxl", "sdxl-mix", [
      { format: "kohya", pairs: kohya, scale: 1 },
      { format: "peft", pairs: peft, scale: 0.7 },
    ]);
  });

  test("sdxl: kohya files that name UNet modules the original (SGM) way", async () => {
    const d = dirs.sdxl;
    const pairs = [
      makePair(d, "unet", "down_blocks.1.attentions.0.transformer_blocks.1.attn2.to_v.weight", 2, 4, 51),
      makePair(d, "unet", "up_blocks.0.attentions.1.transformer_blocks.0.ff.net.2.weight", 2, undefined, 52),
      makePair(d, "unet", "mid_block.attentions.0.proj_out.weight", 3, 1, 53),
      makePair(d, "unet", "down_blocks.0.resnets.1.conv1.weight", 2, 2, 54),
      makePair(d, "text_encoder_2", "text_model.encoder.layers.0.self_attn.k_proj.weight", 2, 2, 55),
    ];
    await parity("sdxl", "sdxl-sgm", [{ format: "kohya-sgm", pairs, scale: 0.9 }]);
  });

  test("formats are read into modules with their alpha (none = rank)", () => {
    const d = dirs.sd15;
    const pairs = [makePair(d, "unet", "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.weight", 2, 4, 31), makePair(d, "text_encoder", "text_model.encoder.layers.0.mlp.fc1.weight", 3, undefined, 32)];
    const read = (format: Format) => {
      const file = join(tmp, `read-${format}.safetensors`);
      writeLora(file, format, "sd15", pairs);
      return readLoraFile(file)
        .map((m) => `${m.component} ${m.module} r${m.down.shape[0]} a${m.alpha ?? "-"}`)
        .sort();
    };
    assert.deepEqual(read("kohya"), [
      "text_encoder text_model_encoder_layers_0_mlp_fc1 r3 a-",
      "unet down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q r2 a4",
    ]);
    assert.deepEqual(read("peft"), ["text_encoder text_model.encoder.layers.0.mlp.fc1 r3 a-", "unet down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q r2 a4"]);
    assert.deepEqual(read("diffusers"), ["text_encoder text_model.encoder.layers.0.mlp.fc1 r3 a-", "unet down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q r2 a-"]);
  });

  test("refusals: unknown layouts, modules the model lacks, components the model does not have", async () => {
    const isCode = (code: string, re: RegExp) => (e: unknown) => {
      assert.ok(e instanceof EaselError, String(e));
      assert.equal(e.code, code, e.message);
      assert.match(e.message, re);
      return true;
    };
    const odd = join(tmp, "odd.safetensors");
    writeSafetensors(odd, [{ name: "model.diffusion_model.hada_w1_a", dtype: "F32", shape: [1], data: f32(Float32Array.of(1)) }]);
    assert.throws(() => readLoraFile(odd), isCode("E_INPUT_INVALID", /no known LoRA layout/));

    const sdxlLora = join(tmp, "for-sdxl.safetensors");
    writeLora(sdxlLora, "kohya", "sdxl", [makePair(dirs.sdxl, "unet", "down_blocks.1.attentions.0.transformer_blocks.1.attn1.to_q.weight", 2, 2, 41)]);
    await assert.rejects(engine.run(dirs.sd15, { ...params, loras: [{ file: sdxlLora, scale: 1 }] }), isCode("E_INPUT_INVALID", /matches no weight of this model's unet/));

    const te2 = join(tmp, "te2.safetensors");
    writeLora(te2, "peft", "sdxl", [makePair(dirs.sdxl, "text_encoder_2", "text_model.encoder.layers.0.mlp.fc1.weight", 2, 2, 42)]);
    await assert.rejects(engine.run(dirs.sd15, { ...params, loras: [{ file: te2, scale: 1 }] }), isCode("E_NOT_SUPPORTED", /text_encoder_2 weights/));
    await assert.rejects(engine.run(dirs.sd15, { ...params, loras: [{ file: join(tmp, "none.safetensors"), scale: 1 }] }), isCode("E_INPUT_INVALID", /file not found/));
  });
});
