import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { after, test } from "node:test";
import { loadCheckpoint } from "../../checkpoint/checkpoint.ts";
import { EaselError } from "../../core/errors.ts";
import type { BuiltGraph } from "../../graph/builder.ts";
import { saveModel } from "../../graph/external-data.ts";
import { bytesToFloat32, openComponentWeights } from "../../graph/safetensors.ts";
import { createSafetensorsWeights } from "../../graph/weights.ts";
import { createSession, type HostTensor } from "../../runtime/session.ts";
import { buildClipTextGraph, clipTextConfigFromJson } from "../components/clip-text.graph.ts";
import { buildUnetGraph } from "../components/unet.graph.ts";
import { unetConfigFromJson } from "../components/unet-config.ts";
import { buildVaeDecoderGraph, buildVaeEncoderGraph } from "../components/vae.graph.ts";
import { vaeConfigFromJson } from "../components/vae-config.ts";
import { familyFor } from "../index.ts";
import { sd3TransformerConfigFromJson, sd3Variant } from "../sd3/config.ts";
import { sd3Family } from "../sd3/index.ts";
import { buildMmditGraph } from "../sd3/mmdit.graph.ts";
import { loadClipTokenizer } from "../text/clip-tokenizer.ts";
import { loadT5Tokenizer } from "../text/t5-tokenizer.ts";
import { floatToHalfBits, type TinyFamily, type TinyTransformerBuilder, writeTinyCheckpoint } from "./tiny-checkpoint.ts";

const work = mkdtempSync(join(tmpdir(), "easel-tiny-"));
after(() => rmSync(work, { recursive: true, force: true }));

const readJson = (file: string) => JSON.parse(readFileSync(file, "utf8"));

function listFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const n of readdirSync(d).sort()) {
      const p = join(d, n);
      if (statSync(p).isDirectory()) walk(p);
      else out.push(relative(dir, p));
    }
  };
  walk(dir);
  return out;
}

function assertFinite(t: HostTensor, what: string): void {
  const d = t.data as Float32Array;
  assert.ok(d.length > 0, `${what} is empty`);
  let min = Infinity;
  let max = -Infinity;
  for (const v of d) {
    assert.ok(Number.isFinite(v), `${what} has a non-finite value ${v}`);
    min = Math.min(min, v);
    max = Math.max(max, v);
  }
  assert.ok(max > min, `${what} is constant (${min})`);
}

/** Builds a graph over a component folder's safetensors, runs it once and returns the outputs. */
async function runComponent(dir: string, build: (weights: ReturnType<typeof createSafetensorsWeights>) => BuiltGraph, feeds: Record<string, HostTensor>) {
  const graph = build(createSafetensorsWeights(openComponentWeights(dir), dir));
  const { modelPath } = saveModel(graph, join(work, "models", relative(work, dir).replaceAll("/", "_")), "model.onnx");
  const session = await createSession(modelPath, { intraOpThreads: 1 });
  try {
    return await session.run(feeds);
  } finally {
    await session.release();
  }
}

const filled = (shape: number[], f: (i: number) => number): HostTensor => {
  const n = shape.reduce((a, b) => a * b, 1);
  return { data: Float32Array.from({ length: n }, (_, i) => f(i)), shape };
};

for (const family of ["sd15", "sdxl", "playground"] as TinyFamily[]) {
  test(`tiny ${family} checkpoint: tokenizers, text encoders, UNet and VAE load and run with finite outputs`, async () => {
    const dir = join(work, family);
    writeTinyCheckpoint(dir, { family, seed: 1 });
    const index = readJson(join(dir, "model_index.json"));
    const xl = family !== "sd15";
    assert.equal(index._class_name, xl ? "StableDiffusionXLPipeline" : "StableDiffusionPipeline");
    assert.equal(readJson(join(dir, "scheduler/scheduler_config.json"))._class_name, index.scheduler[1]);

    // Tokenizers: the merges apply and the special tokens frame the prompt.
    const contexts: Float32Array[] = [];
    let pooled: HostTensor | undefined;
    const encoders = xl ? ["text_encoder", "text_encoder_2"] : ["text_encoder"];
    for (const [i, name] of encoders.entries()) {
      const tok = loadClipTokenizer(join(dir, i === 0 ? "tokenizer" : "tokenizer_2"));
      const vocab = readJson(join(dir, i === 0 ? "tokenizer/vocab.json" : "tokenizer_2/vocab.json"));
      const { ids } = tok.encodeForModel("A red cat and the dog");
      assert.deepEqual([...ids.slice(0, 8)], [vocab["<|startoftext|>"], vocab["a</w>"], vocab["red</w>"], vocab["cat</w>"], vocab["and</w>"], vocab["the</w>"], vocab["dog</w>"], vocab["<|endoftext|>"]]);
      assert.equal(ids[76], i === 0 ? vocab["<|endoftext|>"] : vocab["!"]);

      const cfgJson = readJson(join(dir, name, "config.json"));
      const cfg = clipTextConfigFromJson(cfgJson);
      assert.equal(cfg.vocabSize, Object.keys(vocab).length);
      const out = await runComponent(join(dir, name), (w) => buildClipTextGraph(cfg, w), {
        input_ids: { data: BigInt64Array.from(ids, (x) => BigInt(x)), shape: [1, 77] },
      });
      assertFinite(out.last_hidden_state, `${family} ${name} last_hidden_state`);
      assert.deepEqual(out.last_hidden_state.shape, [1, 77, cfg.hiddenSize]);
      contexts.push((xl ? out.penultimate_hidden_state : out.last_hidden_state).data as Float32Array);
      if (i === 1) {
        assertFinite(out.text_embeds, `${family} text_embeds`);
        pooled = out.text_embeds;
      }
    }

    // UNet on the encoders' context ([1, 77, 16 + 32] for the SDXL layout), batch 1, 8x8 latent.
    const unetJson = readJson(join(dir, "unet/config.json"));
    const unetCfg = unetConfigFromJson(unetJson);
    const ctxDim = unetCfg.crossAttentionDim[0];
    const widths = contexts.map((c) => c.length / 77);
    assert.equal(widths.reduce((a, b) => a + b, 0), ctxDim);
    const ctx = new Float32Array(77 * ctxDim);
    for (let s = 0; s < 77; s++) {
      let off = 0;
      contexts.forEach((c, k) => {
        ctx.set(c.subarray(s * widths[k], (s + 1) * widths[k]), s * ctxDim + off);
        off += widths[k];
      });
    }
    const feeds: Record<string, HostTensor> = {
      sample: filled([1, 4, 8, 8], (i) => Math.sin(i * 0.37)),
      timestep: filled([1], () => 500),
      encoder_hidden_states: { data: ctx, shape: [1, 77, ctxDim] },
    };
    if (xl) {
      assert.ok(pooled);
      feeds.text_embeds = pooled;
      feeds.time_ids = filled([1, 6], (i) => [64, 64, 0, 0, 64, 64][i]);
    }
    const unetOut = await runComponent(join(dir, "unet"), (w) => buildUnetGraph(unetCfg, w), feeds);
    assert.deepEqual(unetOut.out_sample.shape, [1, 4, 8, 8]);
    assertFinite(unetOut.out_sample, `${family} unet out_sample`);

    const vaeJson = readJson(join(dir, "vae/config.json"));
    const vaeCfg = vaeConfigFromJson(vaeJson);
    assert.equal(vaeCfg.latentsMean !== null, family === "playground");
    const decoded = await runComponent(join(dir, "vae"), (w) => buildVaeDecoderGraph(vaeCfg, w), { latent: unetOut.out_sample });
    assert.deepEqual(decoded.sample.shape, [1, 3, 64, 64]);
    assertFinite(decoded.sample, `${family} vae sample`);
    const encoded = await runComponent(join(dir, "vae"), (w) => buildVaeEncoderGraph(vaeCfg, w), { image: decoded.sample });
    assert.deepEqual(encoded.moments.shape, [1, 8, 8, 8]);
    assertFinite(encoded.moments, `${family} vae moments`);
  });
}

test("tiny checkpoint: the same seed gives identical bytes, another seed other weights and the same configs", () => {
  const a = join(work, "seed-a");
  const b = join(work, "seed-b");
  const c = join(work, "seed-c");
  writeTinyCheckpoint(a, { family: "sdxl", seed: 7 });
  writeTinyCheckpoint(b, { family: "sdxl", seed: 7 });
  writeTinyCheckpoint(c, { family: "sdxl", seed: 8 });
  const files = listFiles(a);
  assert.deepEqual(listFiles(b), files);
  assert.deepEqual(listFiles(c), files);
  for (const f of files) {
    assert.ok(readFileSync(join(a, f)).equals(readFileSync(join(b, f))), `${f} differs between two runs with seed 7`);
    const same = readFileSync(join(a, f)).equals(readFileSync(join(c, f)));
    assert.equal(same, !f.endsWith(".safetensors"), `${f}: seeds 7 and 8 ${same ? "agree" : "differ"}`);
  }
  // The two text encoders are seeded apart even where their shapes agree.
  const e1 = openComponentWeights(join(a, "text_encoder"));
  const e2 = openComponentWeights(join(a, "text_encoder_2"));
  const bytesOf = (e: { file: string; offset: number; byteLength: number }) => readFileSync(e.file).subarray(e.offset, e.offset + e.byteLength);
  const p1 = e1.get("text_model.embeddings.position_embedding.weight")!;
  const p2 = e2.get("text_model.embeddings.position_embedding.weight")!;
  assert.ok(!bytesOf(p1).subarray(0, 64).equals(bytesOf(p2).subarray(0, 64)));
});

test("tiny checkpoint: F16 weights are stored as F16, initialised like the F32 ones, and the graphs run", async () => {
  const dir = join(work, "f16");
  writeTinyCheckpoint(dir, { family: "sd15", seed: 3, dtype: "F16" });
  const entries = openComponentWeights(join(dir, "unet"));
  for (const e of entries.values()) assert.equal(e.dtype, "F16", e.name);
  const norm = entries.get("conv_norm_out.weight")!;
  const values = bytesToFloat32(readFileSync(norm.file).subarray(norm.offset, norm.offset + norm.byteLength), "F16");
  for (const v of values) assert.ok(v >= 0.9 && v <= 1.1 && v !== 1, `norm weight ${v} not in [0.9, 1.1] \\ {1}`);
  const cfg = unetConfigFromJson(readJson(join(dir, "unet/config.json")));
  const out = await runComponent(join(dir, "unet"), (w) => buildUnetGraph(cfg, w), {
    sample: filled([2, 4, 8, 8], (i) => Math.cos(i)),
    timestep: filled([2], (i) => 10 + i * 900),
    encoder_hidden_states: filled([2, 77, 32], (i) => Math.sin(i * 0.01)),
  });
  assertFinite(out.out_sample, "f16 unet out_sample");
});

const mmdit: TinyTransformerBuilder = (json, w) => buildMmditGraph(sd3TransformerConfigFromJson(json), w);

for (const [family, aliases, variant] of [
  ["sd3", ["sd3"], "sd3-medium"],
  ["sd3_5", ["sd3_5", "sd3.5"], "sd3.5-large"],
] as const) {
  test(`tiny ${family} checkpoint: detected as SD3 (${variant}), T5 tokenizer loads, a 64x64 two-step generation is finite`, async () => {
    const dir = join(work, family);
    writeTinyCheckpoint(dir, { family, seed: 1, transformer: mmdit });
    const ckpt = loadCheckpoint(dir);
    assert.equal(familyFor(ckpt).id, "sd3");
    assert.equal(ckpt.pipelineClass, "StableDiffusion3Pipeline");
    assert.deepEqual(sd3Family.aliases(ckpt), aliases);
    assert.equal(sd3Variant(ckpt), variant);
    const defaults = sd3Family.defaults(ckpt);
    assert.deepEqual([defaults.width, defaults.height], [1024, 1024]);
    const tcfg = sd3TransformerConfigFromJson(readJson(join(dir, "transformer/config.json")));
    assert.ok(tcfg.posEmbedMaxSize * tcfg.patchSize * 8 >= 1024, "positions must reach 1024x1024");
    assert.equal(readJson(join(dir, "scheduler/scheduler_config.json")).shift, 3);

    // The project's T5 tokenizer reads the Unigram tokenizer.json: whole-word pieces win, </s> then <pad> follow.
    const t5 = loadT5Tokenizer(join(dir, "tokenizer_3"));
    const ids = Object.fromEntries((readJson(join(dir, "tokenizer_3/tokenizer.json")).model.vocab as [string, number][]).map(([p], i) => [p, i]));
    assert.deepEqual([t5.padId, t5.eosId, t5.unkId], [0, 1, 2]);
    assert.deepEqual(
      [...t5.encodeForModel("A red cat and the dog", 10).ids],
      [ids["▁"], ids.A, ids["▁red"], ids["▁cat"], ids["▁and"], ids["▁the"], ids["▁dog"], 1, 0, 0],
    );
    // Sentinels are added tokens that swallow the spaces around them (lstrip/rstrip in tokenizer_config.json).
    assert.deepEqual([...t5.encodeForModel("x <extra_id_0> y", 6).ids], [ids["▁"], ids.x, ids["<extra_id_0>"], ids["▁"], ids.y, 1]);

    // The memory plan is told of a large machine: this test is about the checkpoint, not about the host's free memory.
    const rt = { executionProvider: "cpu" as const, intraOpThreads: 1, cacheDir: join(work, `cache-${family}`), memory: { totalBytes: 64 * 2 ** 30, freeBytes: 32 * 2 ** 30 } };
    const pipe = await sd3Family.load(ckpt, rt);
    try {
      const out = await pipe.run({ prompt: "a red cat", n: 1, width: 64, height: 64, steps: 2, seed: 3 });
      assert.deepEqual(out.latentShape, [1, 16, 8, 8]);
      assertFinite({ data: out.latents, shape: out.latentShape }, `${family} final latents`);
      assert.equal(out.images.length, 1);
      assert.deepEqual([out.images[0].width, out.images[0].height], [64, 64]);
      assert.ok(new Set(out.images[0].rgb).size > 16, `${family} image is nearly flat`);
    } finally {
      await pipe.release();
    }
  });
}

test("tiny sd3_5 checkpoint: the same seed gives identical bytes, another seed other weights", () => {
  const a = join(work, "sd3-seed-a");
  const b = join(work, "sd3-seed-b");
  const c = join(work, "sd3-seed-c");
  writeTinyCheckpoint(a, { family: "sd3_5", seed: 7, transformer: mmdit });
  writeTinyCheckpoint(b, { family: "sd3_5", seed: 7, transformer: mmdit });
  writeTinyCheckpoint(c, { family: "sd3_5", seed: 8, transformer: mmdit });
  const files = listFiles(a);
  assert.ok(files.includes("tokenizer_3/tokenizer.json") && files.includes("text_encoder_3/model.safetensors"), files.join(", "));
  assert.deepEqual(listFiles(b), files);
  assert.deepEqual(listFiles(c), files);
  for (const f of files) {
    assert.ok(readFileSync(join(a, f)).equals(readFileSync(join(b, f))), `${f} differs between two runs with seed 7`);
    const same = readFileSync(join(a, f)).equals(readFileSync(join(c, f)));
    assert.equal(same, !f.endsWith(".safetensors"), `${f}: seeds 7 and 8 ${same ? "agree" : "differ"}`);
  }
  assert.ok(openComponentWeights(join(a, "transformer")).has("transformer_blocks.0.attn.norm_q.weight"), "sd3_5 has qk RMS norm weights");
});

test("floatToHalfBits: IEEE half encodings, round to nearest even, overflow and subnormals", () => {
  assert.equal(floatToHalfBits(1), 0x3c00);
  assert.equal(floatToHalfBits(-2), 0xc000);
  assert.equal(floatToHalfBits(0.1), 0x2e66);
  assert.equal(floatToHalfBits(65504), 0x7bff);
  assert.equal(floatToHalfBits(65520), 0x7c00); // halfway to the next (nonexistent) binade rounds up to inf
  assert.equal(floatToHalfBits(2 ** -24), 0x0001);
  assert.equal(floatToHalfBits(2 ** -26), 0x0000);
  assert.equal(floatToHalfBits(1 + 2 ** -11), 0x3c00); // tie, to even
  assert.equal(floatToHalfBits(1 + 3 * 2 ** -11), 0x3c02); // tie, to even (up)
  assert.equal(floatToHalfBits(-0), 0x8000);
  assert.equal(floatToHalfBits(Number.NaN) & 0x7c00, 0x7c00);
  // Round trip through the safetensors reader's exact half -> float: error at most half an ulp.
  const xs = Float32Array.from({ length: 1000 }, (_, i) => Math.sin(i * 1.7) * 2 ** ((i % 30) - 20));
  const halves = Uint16Array.from(xs, (x) => floatToHalfBits(x));
  const back = bytesToFloat32(new Uint8Array(halves.buffer), "F16");
  xs.forEach((x, i) => {
    const ulp = 2 ** (Math.max(Math.floor(Math.log2(Math.abs(x))), -14) - 10);
    assert.ok(Math.abs(back[i] - x) <= ulp / 2, `${x} -> ${back[i]}`);
  });
});

test("writeTinyCheckpoint rejects bad options by name", () => {
  assert.throws(() => writeTinyCheckpoint(join(work, "bad"), { family: "flux" as TinyFamily, seed: 1 }), /family must be one of sd15, sdxl, playground, sd3, sd3_5/);
  assert.throws(() => writeTinyCheckpoint(join(work, "bad"), { family: "sd3", seed: 1 }), (e: unknown) => e instanceof EaselError && e.param === "transformer");
  assert.throws(() => writeTinyCheckpoint(join(work, "bad"), { family: "sd15", seed: -1 }), /seed must be an integer in \[0, 2\^32\)/);
});
