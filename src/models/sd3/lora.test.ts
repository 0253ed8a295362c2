/**
 * SD3 LoRA parity: a run with LoRA files applied to the transformer (and both CLIPs) equals a run of a copy of the
 * checkpoint whose weights this test merged itself by W + scale * alpha / rank * up @ down (float64, then float32),
 * on the micro SD3 checkpoint, with generated files in the layouts SD3 LoRAs are published in: diffusers' PEFT
 * (`transformer.<module>.lora_A.weight`, unprefixed, alpha from `.alpha` or from `lora_adapter_metadata`) and kohya
 * (`lora_transformer_<module>.lora_down.weight`, `lora_te1_`, `lora_te2_`).
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
import { readLoraFile } from "../components/lora.ts";
import { mulberry32 } from "../testing/tiny-checkpoint.ts";

const MODEL = "test/fixtures/models/sd3";

type Component = "transformer" | "text_encoder" | "text_encoder_2";
/** peft: `transformer.` / `text_encoder.` prefixes; peft-bare: unprefixed transformer keys; kohya: lora_transformer_ / lora_te1_ / lora_te2_. */
type Format = "peft" | "peft-bare" | "kohya";

interface Pair {
  component: Component;
  /** Weight key in the checkpoint. */
  target: string;
  rank: number;
  /** Written as an `.alpha` tensor, or (metadata: true) through lora_adapter_metadata. */
  alpha?: number;
  metadata?: boolean;
  down: Float32Array;
  downShape: number[];
  up: Float32Array;
  upShape: number[];
}

const f32 = (a: Float32Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

function weightShape(component: Component, target: string): number[] {
  for (const f of findComponentWeightFiles(join(MODEL, component)).files) {
    const e = readSafetensorsHeader(f).entries.find((x) => x.name === target);
    if (e) return e.shape;
  }
  throw new Error(`${component} has no ${target}`);
}

function makePair(component: Component, target: string, rank: number, alpha: number | undefined, seed: number, metadata = false): Pair {
  const shape = weightShape(component, target);
  const rand = mulberry32(seed);
  const fill = (n: number) => Float32Array.from({ length: n }, () => (rand() * 2 - 1) * 0.5);
  const downShape = [rank, ...shape.slice(1)];
  return { component, target, rank, alpha, metadata, down: fill(downShape.reduce((a, b) => a * b, 1)), downShape, up: fill(shape[0] * rank), upShape: [shape[0], rank] };
}

const KOHYA_PREFIX: Record<Component, string> = { transformer: "lora_transformer", text_encoder: "lora_te1", text_encoder_2: "lora_te2" };

function pairKeys(format: Format, p: Pair): { down: string; up: string; alpha: string } {
  const module = p.target.slice(0, -".weight".length);
  if (format === "kohya") {
    const base = `${KOHYA_PREFIX[p.component]}_${module.replace(/\./g, "_")}`;
    return { down: `${base}.lora_down.weight`, up: `${base}.lora_up.weight`, alpha: `${base}.alpha` };
  }
  const prefix = format === "peft-bare" && p.component === "transformer" ? "" : `${p.component}.`;
  return { down: `${prefix}${module}.lora_A.weight`, up: `${prefix}${module}.lora_B.weight`, alpha: `${prefix}${module}.alpha` };
}

/**
 * The file; pairs whose alpha goes through metadata get diffusers' `lora_adapter_metadata` (LoraConfig per
 * component: `lora_alpha` for the first, `alpha_pattern` for the rest), keyed with the component prefix except for
 * peft-bare's transformer.
 */
function writeLora(file: string, format: Format, pairs: Pair[]): void {
  const tensors: Parameters<typeof writeSafetensors>[1] = [];
  const config: Record<string, unknown> = {};
  for (const p of pairs) {
    const k = pairKeys(format, p);
    tensors.push({ name: k.down, dtype: "F32", shape: p.downShape, data: f32(p.down) });
    tensors.push({ name: k.up, dtype: "F32", shape: p.upShape, data: f32(p.up) });
    if (p.alpha === undefined) continue;
    if (!p.metadata) {
      tensors.push({ name: k.alpha, dtype: "F32", shape: [], data: f32(Float32Array.of(p.alpha)) });
      continue;
    }
    const prefix = format === "peft-bare" && p.component === "transformer" ? "" : `${p.component}.`;
    const module = p.target.slice(0, -".weight".length);
    if (config[`${prefix}lora_alpha`] === undefined) {
      config[`${prefix}r`] = p.rank;
      config[`${prefix}lora_alpha`] = p.alpha;
    } else {
      const patterns = (config[`${prefix}alpha_pattern`] ??= {}) as Record<string, number>;
      patterns[`^${module}`] = p.alpha;
    }
  }
  writeSafetensors(file, tensors, Object.keys(config).length > 0 ? { format: "pt", lora_adapter_metadata: JSON.stringify(config) } : undefined);
}

/** A copy of the checkpoint with every pair merged in by the formula, in float64. */
function mergedCopy(out: string, sets: { pairs: Pair[]; scale: number }[]): void {
  cpSync(MODEL, out, { recursive: true });
  const byComponent = new Map<string, { pair: Pair; scale: number }[]>();
  for (const s of sets) for (const p of s.pairs) byComponent.set(p.component, [...(byComponent.get(p.component) ?? []), { pair: p, scale: s.scale }]);
  for (const [component, deltas] of byComponent) {
    for (const file of findComponentWeightFiles(join(out, component)).files) {
      const tensors = readSafetensorsHeader(file).entries.map((e) => {
        const mine = deltas.filter((d) => d.pair.target === e.name);
        if (mine.length === 0) return { name: e.name, dtype: e.dtype, shape: e.shape, data: readTensorBytes(e) };
        const w = Float64Array.from(readTensorData(e));
        for (const { pair: p, scale } of mine) {
          const rows = e.shape[0];
          const inner = w.length / rows;
          const s = (scale * (p.alpha ?? p.rank)) / p.rank;
          for (let o = 0; o < rows; o++) {
            for (let i = 0; i < inner; i++) {
              let acc = 0;
              for (let r = 0; r < p.rank; r++) acc += p.up[o * p.rank + r] * p.down[r * inner + i];
              w[o * inner + i] += s * acc;
            }
          }
        }
        return { name: e.name, dtype: "F32" as const, shape: e.shape, data: f32(Float32Array.from(w)) };
      });
      writeSafetensors(file, tensors);
    }
  }
}

describe("SD3 LoRA files applied per request equal the merged-weights checkpoint", () => {
  let tmp: string;
  let engine: Engine;
  before(() => {
    tmp = mkdtempSync(join(tmpdir(), "easel-sd3-lora-"));
    engine = new Engine({ executionProvider: "cpu", intraOpThreads: 1, cacheDir: join(tmp, "cache") });
  });
  after(async () => {
    await engine.close();
    rmSync(tmp, { recursive: true, force: true });
  });

  const params = { prompt: "a red cube", negativePrompt: "blur", n: 1, width: 64, height: 64, steps: 3, seed: 9 };

  async function parity(name: string, sets: { format: Format; pairs: Pair[]; scale: number }[]) {
    const files = sets.map((s, i) => {
      const file = join(tmp, `${name}-${i}-${s.format}.safetensors`);
      writeLora(file, s.format, s.pairs);
      return { file, scale: s.scale };
    });
    const merged = join(tmp, `${name}-merged`);
    mergedCopy(merged, sets);
    const withLora = await engine.run(MODEL, { ...params, loras: files });
    const reference = await engine.run(merged, params);
    const plain = await engine.run(MODEL, params);
    expectClose(withLora.latents, reference.latents, { atol: 1e-4, rtol: 1e-4, what: `${name} latents` });
    const diff = withLora.latents.reduce((m, v, i) => Math.max(m, Math.abs(v - plain.latents[i])), 0);
    assert.ok(diff > 1e-2, `the LoRA changes the output (max difference ${diff})`);
  }

  test("PEFT (transformer., text_encoder., text_encoder_2.; alpha tensors, one alpha != rank) at 0.8", async () => {
    await parity("peft", [
      {
        format: "peft",
        scale: 0.8,
        pairs: [
          makePair("transformer", "transformer_blocks.0.attn.to_q.weight", 2, 6, 1),
          makePair("transformer", "transformer_blocks.0.attn.add_q_proj.weight", 3, undefined, 2),
          makePair("transformer", "transformer_blocks.1.ff.net.0.proj.weight", 2, undefined, 3),
          makePair("transformer", "transformer_blocks.0.norm1.linear.weight", 2, 2, 4),
          makePair("transformer", "transformer_blocks.1.attn.to_out.0.weight", 4, undefined, 5),
          makePair("text_encoder", "text_model.encoder.layers.0.self_attn.q_proj.weight", 2, undefined, 6),
          makePair("text_encoder_2", "text_model.encoder.layers.0.mlp.fc1.weight", 2, 1, 7),
        ],
      },
    ]);
  });

  test("kohya (lora_transformer_, lora_te1_, lora_te2_; alpha != rank and none) at -0.6 with unprefixed PEFT (metadata alpha) at 1.1", async () => {
    await parity("kohya", [
      {
        format: "kohya",
        scale: -0.6,
        pairs: [
          makePair("transformer", "transformer_blocks.0.attn.to_k.weight", 2, 8, 11),
          makePair("transformer", "transformer_blocks.0.ff_context.net.2.weight", 3, undefined, 12),
          makePair("transformer", "transformer_blocks.1.norm1_context.linear.weight", 2, 1, 13),
          makePair("transformer", "transformer_blocks.0.attn.to_out.0.weight", 2, 2, 14),
          makePair("transformer", "context_embedder.weight", 2, undefined, 15),
          makePair("text_encoder", "text_model.encoder.layers.0.mlp.fc2.weight", 2, 4, 16),
          makePair("text_encoder_2", "text_model.encoder.layers.0.self_attn.v_proj.weight", 3, undefined, 17),
        ],
      },
      {
        format: "peft-bare",
        scale: 1.1,
        pairs: [
          makePair("transformer", "transformer_blocks.0.attn.to_k.weight", 2, 3, 21, true),
          makePair("transformer", "transformer_blocks.1.attn.add_v_proj.weight", 4, 1, 22, true),
          makePair("transformer", "proj_out.weight", 2, 3, 23, true),
        ],
      },
    ]);
  });

  test("files are read into transformer modules with their alpha (tensor, metadata, none = rank)", () => {
    const pairs = [
      makePair("transformer", "transformer_blocks.0.attn.add_q_proj.weight", 2, 4, 31),
      makePair("transformer", "transformer_blocks.1.ff.net.0.proj.weight", 3, undefined, 32),
      makePair("text_encoder", "text_model.encoder.layers.0.mlp.fc1.weight", 2, 1, 33),
    ];
    const read = (format: Format, ps = pairs) => {
      const file = join(tmp, `read-${format}.safetensors`);
      writeLora(file, format, ps);
      return readLoraFile(file)
        .map((m) => `${m.component} ${m.module} r${m.down.shape[0]} a${m.alpha ?? "-"}`)
        .sort();
    };
    assert.deepEqual(read("kohya"), [
      "text_encoder text_model_encoder_layers_0_mlp_fc1 r2 a1",
      "transformer transformer_blocks_0_attn_add_q_proj r2 a4",
      "transformer transformer_blocks_1_ff_net_0_proj r3 a-",
    ]);
    assert.deepEqual(read("peft"), [
      "text_encoder text_model.encoder.layers.0.mlp.fc1 r2 a1",
      "transformer transformer_blocks.0.attn.add_q_proj r2 a4",
      "transformer transformer_blocks.1.ff.net.0.proj r3 a-",
    ]);
    const meta = [
      makePair("transformer", "transformer_blocks.0.attn.to_q.weight", 2, 16, 34, true),
      makePair("transformer", "transformer_blocks.1.attn.to_q.weight", 2, 5, 35, true),
      makePair("transformer", "transformer_blocks.0.attn.to_v.weight", 2, undefined, 36),
    ];
    assert.deepEqual(read("peft-bare", meta), [
      "transformer transformer_blocks.0.attn.to_q r2 a16",
      "transformer transformer_blocks.0.attn.to_v r2 a16",
      "transformer transformer_blocks.1.attn.to_q r2 a5",
    ]);
  });

  test("refusals: transformer modules the model lacks (first unmatched key named), UNet LoRAs, T5 weights", async () => {
    const isCode = (code: string, re: RegExp) => (e: unknown) => {
      assert.ok(e instanceof EaselError, String(e));
      assert.equal(e.code, code, e.message);
      assert.match(e.message, re);
      return true;
    };
    const t = (name: string, shape: number[]) => ({ name, dtype: "F32" as const, shape, data: f32(new Float32Array(shape.reduce((a, b) => a * b, 1))) });
    const peft = join(tmp, "elsewhere-peft.safetensors");
    writeSafetensors(peft, [
      t("transformer.transformer_blocks.0.attn.to_q.lora_A.weight", [2, 16]),
      t("transformer.transformer_blocks.0.attn.to_q.lora_B.weight", [16, 2]),
      t("transformer.transformer_blocks.7.attn.to_q.lora_A.weight", [2, 16]),
      t("transformer.transformer_blocks.7.attn.to_q.lora_B.weight", [16, 2]),
    ]);
    await assert.rejects(
      engine.run(MODEL, { ...params, loras: [{ file: peft, scale: 1 }] }),
      isCode("E_INPUT_INVALID", /transformer module "transformer_blocks\.7\.attn\.to_q" \(key transformer\.transformer_blocks\.7\.attn\.to_q\.lora_A\.weight\) matches no weight of this model's transformer/),
    );
    const kohya = join(tmp, "elsewhere-kohya.safetensors");
    writeSafetensors(kohya, [t("lora_transformer_joint_blocks_0_x_block_attn_qkv.lora_down.weight", [2, 16]), t("lora_transformer_joint_blocks_0_x_block_attn_qkv.lora_up.weight", [48, 2])]);
    await assert.rejects(
      engine.run(MODEL, { ...params, loras: [{ file: kohya, scale: 1 }] }),
      isCode("E_INPUT_INVALID", /key lora_transformer_joint_blocks_0_x_block_attn_qkv\.lora_down\.weight\) matches no weight of this model's transformer/),
    );
    const unet = join(tmp, "unet.safetensors");
    writeSafetensors(unet, [t("lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight", [2, 16]), t("lora_unet_down_blocks_0_attentions_0_proj_in.lora_up.weight", [16, 2])]);
    await assert.rejects(engine.run(MODEL, { ...params, loras: [{ file: unet, scale: 1 }] }), isCode("E_NOT_SUPPORTED", /unet weights this sd3 model does not apply LoRAs to/));
    const t5 = join(tmp, "t5.safetensors");
    writeSafetensors(t5, [t("lora_te3_encoder_block_0_layer_0_SelfAttention_q.lora_down.weight", [2, 16]), t("lora_te3_encoder_block_0_layer_0_SelfAttention_q.lora_up.weight", [16, 2])]);
    await assert.rejects(engine.run(MODEL, { ...params, loras: [{ file: t5, scale: 1 }] }), isCode("E_NOT_SUPPORTED", /T5 \(text_encoder_3\)/));
  });
});
